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

const renderUsage = `Usage: modelship render --env NAME [--image REF] [--config modelship.yaml] [--git-sha SHA] [--strategy S]

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
`

// renderOptions are render's flags.
type renderOptions struct {
	env, cfgFile, image, gitSHA, strategy string
	kube                                  kubeFlags
	rbac                                  bool
	readyTimeout                          time.Duration
}

func (o *renderOptions) flags(fs *flag.FlagSet) {
	fs.StringVar(&o.env, "env", "", "`environment` of modelship.yaml to render for (required; its target must be kubernetes)")
	fs.StringVar(&o.cfgFile, "config", config.DefaultFile, "modelship.yaml `file`")
	fs.StringVar(&o.image, "image", "", "serving image `reference` (default: the image of the release serving the environment now, read from the cluster)")
	fs.StringVar(&o.gitSHA, "git-sha", os.Getenv("GITHUB_SHA"), "git `commit` the image was built from, for /version and history (default $GITHUB_SHA)")
	fs.StringVar(&o.strategy, "strategy", "", "rolling or blue-green (default: the environment's strategy; auto renders rolling)")
	o.kube.register(fs)
	fs.BoolVar(&o.rbac, "rbac", false, "print instead the least-privilege RBAC a deployer needs in the environment's namespace (ServiceAccount "+kubernetes.DeployerAccount+", Role, RoleBinding; a ClusterRole to read nodes and pods only when pods use GPUs), for an administrator to apply once")
	fs.DurationVar(&o.readyTimeout, "ready-timeout", 0, "load budget that sizes the startup probe and progress deadline (0: the environment's ready-timeout, else 60s + 30s per GiB of weights)")
}

func runRender(ctx context.Context, args []string, s stdio) int {
	var o renderOptions
	bad := newUsageErr(s, "render", "")
	if code, ok := parseOptions(s, "render", renderUsage, &o, args, bad); !ok {
		return code
	}
	if o.env == "" {
		return bad("--env NAME is required")
	}
	cfg, env, code, ok := o.load(s, bad)
	if !ok {
		return code
	}
	opts := kubernetesOptions(env, o.kube, s.err)
	if o.rbac {
		objs := kubernetes.RBAC(opts)
		docs := make([]any, len(objs))
		for i, obj := range objs {
			docs[i] = obj
		}
		return renderYAML(s, docs...)
	}
	m, code, ok := o.manifest(ctx, cfg, env, opts, s, bad)
	if !ok {
		return code
	}
	w := kubernetes.Render(opts, m, uint16(rand.Uint32()))
	d, svc := w.Objects()
	return renderYAML(s, d, svc)
}

// load reads --config and the --env environment, which must target
// Kubernetes.
func (o *renderOptions) load(s stdio, bad usageErr) (*config.Config, *config.Environment, int, bool) {
	cfg, ok := loadConfig(s, o.cfgFile)
	if !ok {
		return nil, nil, exitUsage, false
	}
	env, err := cfg.Environment(o.env)
	if err != nil {
		return nil, nil, bad("%v", err), false
	}
	if env.Target != "kubernetes" {
		return nil, nil, bad("environments.%s.target is %s; render describes Kubernetes objects only", o.env, env.Target), false
	}
	if err := o.kube.check(o.env, env); err != nil {
		return nil, nil, bad("%v", err), false
	}
	return cfg, env, exitOK, true
}

// renderYAML prints objs as YAML documents.
func renderYAML(s stdio, objs ...any) int {
	y, err := kubernetes.YAML(objs...)
	if err != nil {
		fmt.Fprintf(s.err, "modelship render: %v\n", err)
		return exitFailed
	}
	s.out.Write(y)
	return exitOK
}

// manifest is what the Deployment and Service are rendered from: the
// flags and the environment, the checkpoint's size and digest, and what
// the cluster tells (the serving image, the surge free GPUs allow).
func (o *renderOptions) manifest(ctx context.Context, cfg *config.Config, env *config.Environment, opts kubernetes.Options, s stdio, bad usageErr) (kubernetes.Manifest, int, bool) {
	m := kubernetes.Manifest{Env: o.env, Image: o.image, GitSHA: o.gitSHA, ServedName: cfg.Model.ServedName, Aliases: cfg.Model.Aliases,
		Strategy: firstSet(o.strategy, env.Strategy), ReadyTimeout: firstDuration(o.readyTimeout, time.Duration(env.ReadyTimeout)),
		DeployedBy: deploy.DeployedBy(), MaxSurge: 1, Settings: cfg.ServingFor(o.env), Engine: cfg.Serving.Engine}
	cr := cfg.CredentialsFor(o.env)
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
		return m, bad("strategy %q: expected rolling or blue-green", m.Strategy), false
	}
	if p := cfg.ModelPath(); p != "" {
		info, _, _, err := inspectCheckpoint(ctx, p, true, true, "", 0, s.err)
		switch {
		case err == nil:
			m.WeightBytes, m.ModelDigest = info.WeightBytes, info.Digest
		case cfg.Serving.Engine == "vllm":
			return m, bad("%s: model.path: %v", o.cfgFile, err), false
		}
	}
	code, ok := renderFromCluster(ctx, opts, &m, s, bad)
	return m, code, ok
}

// renderFromCluster completes m from the cluster, which is optional: only
// the surge (with GPUs) and a default image need it.
func renderFromCluster(ctx context.Context, opts kubernetes.Options, m *kubernetes.Manifest, s stdio, bad usageErr) (int, bool) {
	var tg *kubernetes.Target
	var err error
	if opts.GPUs > 0 || m.Image == "" {
		if tg, err = kubernetes.New(opts); err == nil {
			defer tg.Close()
		}
	}
	if m.Image == "" {
		if tg == nil {
			return bad("--image REF is required (the cluster could not be read for the serving release: %v)", err), false
		}
		if code, ok := renderServingImage(ctx, tg, m, bad); !ok {
			return code, false
		}
	}
	if opts.GPUs > 0 && (m.Strategy == deploy.Rolling || m.Strategy == deploy.Auto) {
		renderSurge(ctx, tg, m, s)
	}
	return exitOK, true
}

// renderServingImage sets m's image to that of the release serving the
// environment.
func renderServingImage(ctx context.Context, tg *kubernetes.Target, m *kubernetes.Manifest, bad usageErr) (int, bool) {
	rels, err := tg.Releases(ctx, m.Env)
	if err != nil {
		return bad("--image REF is required (reading the serving release: %v)", err), false
	}
	for _, r := range rels {
		if r.Serving {
			m.Image, m.ImageID = r.Image, r.ImageID
		}
	}
	if m.Image == "" {
		return bad("--image REF is required: nothing serves %s yet", m.Env), false
	}
	return exitOK, true
}

// renderSurge sets the rolling update's surge of pods that need GPUs from
// the cluster's free GPUs (tg, when not nil), else to no spare GPU.
func renderSurge(ctx context.Context, tg *kubernetes.Target, m *kubernetes.Manifest, s stdio) {
	m.MaxSurge, m.MaxUnavailable = 0, 1
	if tg == nil {
		fmt.Fprintln(s.err, "modelship render: no cluster to count free GPUs: rendering maxSurge 0, maxUnavailable 1 (no spare GPU assumed)")
		return
	}
	if plan, err := tg.Plan(ctx, deploy.Placement{Strategy: deploy.Rolling}); err == nil {
		m.MaxSurge, m.MaxUnavailable = tg.Surge()
		fmt.Fprintf(s.err, "modelship render: %s\n", plan.Why)
	} else {
		fmt.Fprintf(s.err, "modelship render: free GPUs unknown (%v): rendering maxSurge 0, maxUnavailable 1 (no spare GPU assumed)\n", err)
	}
}

func firstDuration(v ...time.Duration) time.Duration {
	for _, d := range v {
		if d > 0 {
			return d
		}
	}
	return 0
}
