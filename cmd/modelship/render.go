package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/modelship/modelship/internal/config"
	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/kubernetes"
	"github.com/modelship/modelship/serving"
)

func init() {
	register(command{name: "render", summary: "print the Kubernetes manifests a deploy would apply (for GitOps), without applying them", run: runRender})
}

func runRender(ctx context.Context, args []string, s stdio) int {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	fs.SetOutput(s.err)
	envName := fs.String("env", "", "`environment` of modelship.yaml to render for (required; its target must be kubernetes)")
	cfgFile := fs.String("config", config.DefaultFile, "modelship.yaml `file`")
	image := fs.String("image", "", "serving image `reference` (default: the image of the release serving the environment now, read from the cluster)")
	gitSHA := fs.String("git-sha", os.Getenv("GITHUB_SHA"), "git `commit` the image was built from, for /version and history (default $GITHUB_SHA)")
	strategy := fs.String("strategy", "", "rolling or blue-green (default: the environment's strategy; auto renders rolling)")
	var kube kubeFlags
	kube.register(fs)
	rbac := fs.Bool("rbac", false, "print instead the least-privilege RBAC a deployer needs in the environment's namespace (ServiceAccount "+kubernetes.DeployerAccount+", Role, RoleBinding; a ClusterRole to read nodes and pods only when pods use GPUs), for an administrator to apply once")
	readyTimeout := fs.Duration("ready-timeout", 0, "load budget that sizes the startup probe and progress deadline (0: the environment's ready-timeout, else 60s + 30s per GiB of weights)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: modelship render --env NAME [--image REF] [--config modelship.yaml] [--git-sha SHA] [--strategy S]

Prints, as YAML, the Deployment and the Service that modelship deploy would
apply to the environment's Kubernetes cluster, for people who deploy
through GitOps: the container runs the image's modelship serve with a
startup probe sized from the checkpoint, readiness on /ready (health, the
served name in /v1/models, one generation), a preStop drain, and the
release's facts (image, model digest, git SHA, deploy time) as annotations.
Nothing is applied. The cluster is read only to choose the rolling update's
surge from free GPUs (when pods need GPUs) and, without --image, to find the
serving release.

--rbac prints the rights a deployer needs instead: a ServiceAccount, a Role
limited to the namespace's objects modelship manages, its RoleBinding, and
only when pods use GPUs a ClusterRole that reads nodes and pods (free-GPU
accounting). Give modelship that ServiceAccount's token (a kubeconfig with
it, or run in-cluster as it).

Flags:
`)
		fs.PrintDefaults()
	}
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(s.err, "modelship render: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	if *envName == "" {
		fmt.Fprintln(s.err, "modelship render: --env NAME is required")
		return exitUsage
	}
	cfg, ok := loadConfig(s, *cfgFile)
	if !ok {
		return exitUsage
	}
	env, err := cfg.Environment(*envName)
	if err != nil {
		fmt.Fprintf(s.err, "modelship render: %v\n", err)
		return exitUsage
	}
	if env.Target != "kubernetes" {
		fmt.Fprintf(s.err, "modelship render: environments.%s.target is %s; render describes Kubernetes objects only\n", *envName, env.Target)
		return exitUsage
	}
	if err := kube.check(*envName, env); err != nil {
		fmt.Fprintf(s.err, "modelship render: %v\n", err)
		return exitUsage
	}
	opts := kubernetesOptions(env, kube, s.err)
	if *rbac {
		objs := kubernetes.RBAC(opts)
		docs := make([]any, len(objs))
		for i, o := range objs {
			docs[i] = o
		}
		out, err := kubernetes.YAML(docs...)
		if err != nil {
			fmt.Fprintf(s.err, "modelship render: %v\n", err)
			return exitFailed
		}
		s.out.Write(out)
		return exitOK
	}
	m := kubernetes.Manifest{Env: *envName, Image: *image, GitSHA: *gitSHA, ServedName: cfg.Model.ServedName, Aliases: cfg.Model.Aliases,
		Strategy: firstSet(*strategy, env.Strategy), ReadyTimeout: firstDuration(*readyTimeout, time.Duration(env.ReadyTimeout)),
		DeployedBy: deploy.DeployedBy(), MaxSurge: 1, Settings: cfg.ServingFor(*envName), Engine: cfg.Serving.Engine}
	cr := cfg.CredentialsFor(*envName)
	if cr.HFToken.IsSet() {
		m.SecretEnv = append(m.SecretEnv, serving.EnvHFToken)
	}
	if cr.APIKey.IsSet() {
		m.SecretEnv = append(m.SecretEnv, serving.EnvAPIKey)
	}
	if len(m.SecretEnv) > 0 {
		// Render prints no secret: the pods read them from a Secret that a
		// deploy writes, or whoever applies these objects creates.
		fmt.Fprintf(s.err, "modelship render: the pods read %s from Secret %s (keys of the same names), which `modelship deploy` writes; applying these objects yourself, create it first\n",
			strings.Join(m.SecretEnv, " and "), kubernetes.ServingSecretName(opts.Name))
	}
	if m.Strategy != deploy.Auto && m.Strategy != deploy.Rolling && m.Strategy != deploy.BlueGreen {
		fmt.Fprintf(s.err, "modelship render: strategy %q: expected rolling or blue-green\n", m.Strategy)
		return exitUsage
	}
	if p := cfg.ModelPath(); p != "" {
		info, _, _, err := inspectCheckpoint(ctx, p, true, true, "", 0, s.err)
		switch {
		case err == nil:
			m.WeightBytes, m.ModelDigest = info.WeightBytes, info.Digest
		case cfg.Serving.Engine == "vllm":
			fmt.Fprintf(s.err, "modelship render: %s: model.path: %v\n", *cfgFile, err)
			return exitUsage
		}
	}
	// The cluster is optional: only the surge (with GPUs) and a default
	// image need it.
	var tg *kubernetes.Target
	if opts.GPUs > 0 || m.Image == "" {
		if tg, err = kubernetes.New(opts); err == nil {
			defer tg.Close()
		}
	}
	if m.Image == "" {
		if tg == nil {
			fmt.Fprintf(s.err, "modelship render: --image REF is required (the cluster could not be read for the serving release: %v)\n", err)
			return exitUsage
		}
		rels, err := tg.Releases(ctx, *envName)
		if err != nil {
			fmt.Fprintf(s.err, "modelship render: --image REF is required (reading the serving release: %v)\n", err)
			return exitUsage
		}
		for _, r := range rels {
			if r.Serving {
				m.Image, m.ImageID = r.Image, r.ImageID
			}
		}
		if m.Image == "" {
			fmt.Fprintf(s.err, "modelship render: --image REF is required: nothing serves %s yet\n", *envName)
			return exitUsage
		}
	}
	if opts.GPUs > 0 && (m.Strategy == deploy.Rolling || m.Strategy == deploy.Auto) {
		m.MaxSurge, m.MaxUnavailable = 0, 1
		if tg != nil {
			if plan, err := tg.Plan(ctx, deploy.Placement{Strategy: deploy.Rolling}); err == nil {
				m.MaxSurge, m.MaxUnavailable = tg.Surge()
				fmt.Fprintf(s.err, "modelship render: %s\n", plan.Why)
			} else {
				fmt.Fprintf(s.err, "modelship render: free GPUs unknown (%v): rendering maxSurge 0, maxUnavailable 1 (no spare GPU assumed)\n", err)
			}
		} else {
			fmt.Fprintln(s.err, "modelship render: no cluster to count free GPUs: rendering maxSurge 0, maxUnavailable 1 (no spare GPU assumed)")
		}
	}
	w := kubernetes.Render(opts, m, uint16(rand.Uint32()))
	d, svc := w.Objects()
	y, err := kubernetes.YAML(d, svc)
	if err != nil {
		fmt.Fprintf(s.err, "modelship render: %v\n", err)
		return exitFailed
	}
	s.out.Write(y)
	return exitOK
}

func firstDuration(v ...time.Duration) time.Duration {
	for _, d := range v {
		if d > 0 {
			return d
		}
	}
	return 0
}
