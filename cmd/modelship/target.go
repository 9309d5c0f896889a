package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"

	corev1 "k8s.io/api/core/v1"

	"github.com/modelship/modelship/internal/config"
	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/compose"
	"github.com/modelship/modelship/internal/deploy/docker"
	"github.com/modelship/modelship/internal/deploy/kubernetes"
	"github.com/modelship/modelship/internal/registryauth"
)

// newTarget is the deploy target of environment name of cfg
// (environments.NAME.target): a Docker host, a service of a docker compose
// project on a Docker host, or a Kubernetes cluster. out receives the
// target's notes. The returned URL is where verify reaches the environment
// when it has no url of its own ("" for Docker, whose url always has a
// default).
//
// creds are sent when the target pulls (deploy, rollback); nil for commands
// that pull nothing.
func newTarget(cfg *config.Config, name string, env *config.Environment, kube kubeFlags, out io.Writer, creds *registryauth.Store) (deploy.Target, string, func(), error) {
	if err := kube.check(name, env); err != nil {
		return nil, "", nil, err
	}
	switch env.Target {
	case "docker", "compose":
		opts := docker.Options{Host: env.Docker.Host, TLSVerify: env.Docker.TLSVerify, CertPath: env.Docker.CertPath,
			AllowPlaintext: env.Docker.AllowPlaintext, Out: out,
			Credentials: creds}
		if env.Target == "compose" {
			svc, err := composeService(cfg, name, env)
			if err != nil {
				return nil, "", nil, err
			}
			fmt.Fprintf(out, "environment %s deploys service %s of compose project %s (the release image replaces its image %s)\n", name, svc.Name, svc.Project, svc.Image)
			if len(svc.Profiles) == 0 {
				fmt.Fprintf(out, "note: service %s has no profiles: a bare `docker compose up` recreates it from image %s, replacing the live release; give it `profiles: [modelship]` (compose then leaves it to modelship) or name the services to start\n", svc.Name, svc.Image)
			}
			opts.Attach = &svc.Attach
		}
		tg, err := docker.New(opts)
		if err != nil {
			return nil, "", nil, fmt.Errorf("environments.%s.docker: %w", name, err)
		}
		return tg, "", func() { tg.Close() }, nil
	case "kubernetes":
		opts := kubernetesOptions(env, kube, out)
		opts.Credentials = creds
		tg, err := kubernetes.New(opts)
		if err != nil {
			return nil, "", nil, fmt.Errorf("environments.%s.kubernetes: %w", name, err)
		}
		url, err := tg.ServiceURL()
		if err != nil {
			tg.Close()
			return nil, "", nil, err
		}
		return tg, url, func() { tg.Close() }, nil
	}
	return nil, "", nil, fmt.Errorf("environments.%s.target: expected docker, compose or kubernetes, got %q", name, env.Target)
}

// composeService reads environment name's compose project (its files
// relative to the config file) and the service it deploys.
func composeService(cfg *config.Config, name string, env *config.Environment) (*compose.Service, error) {
	files, envFiles, dir := cfg.ComposePaths(env)
	svc, err := compose.Load(context.Background(), compose.Options{Files: files, Service: env.Compose.Service,
		Project: env.Compose.Project, WorkingDir: dir, EnvFiles: envFiles})
	if err != nil {
		return nil, fmt.Errorf("environments.%s.compose: %w", name, err)
	}
	return svc, nil
}

// kubeFlags say how to reach a kubernetes target's cluster from where
// modelship runs, over what the environment says: a kubeconfig mounted
// elsewhere (a secret in a container) and the API server's address as
// seen from there.
type kubeFlags struct{ kubeconfig, server string }

func (k *kubeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig `file` for a kubernetes target, instead of environments.ENV.kubernetes.kubeconfig, $KUBECONFIG or ~/.kube/config")
	fs.StringVar(&k.server, "kube-server", "", "Kubernetes API server `URL` to use instead of the kubeconfig's (e.g. from a container, where a kubeconfig's 127.0.0.1 is the container itself)")
}

// check says what is wrong with the flags for environment name.
func (k kubeFlags) check(name string, env *config.Environment) error {
	if k.kubeconfig == "" && k.server == "" {
		return nil
	}
	if env.Target != "kubernetes" {
		return fmt.Errorf("--kubeconfig and --kube-server are for a kubernetes target; environments.%s.target is %s", name, env.Target)
	}
	if k.server != "" {
		u, err := url.Parse(k.server)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("--kube-server %q: expected the API server's URL, e.g. https://10.0.0.5:6443", k.server)
		}
	}
	return nil
}

// kubernetesOptions maps environments.NAME.kubernetes, and the flags over
// it, onto the target's options.
func kubernetesOptions(env *config.Environment, kube kubeFlags, out io.Writer) kubernetes.Options {
	k := env.Kubernetes
	o := kubernetes.Options{Kubeconfig: firstSet(kube.kubeconfig, k.Kubeconfig), Server: kube.server, Context: k.Context, Namespace: k.Namespace, Name: k.Name,
		Replicas: k.Replicas, GPUs: k.GPUs, NodeSelector: k.NodeSelector, ServicePort: k.ServicePort,
		ImagePullPolicy: corev1.PullPolicy(k.ImagePullPolicy), RuntimeClassName: k.RuntimeClassName, Out: out}
	for _, t := range k.Tolerations {
		tol := corev1.Toleration{Key: t.Key, Operator: corev1.TolerationOperator(t.Operator), Value: t.Value, Effect: corev1.TaintEffect(t.Effect)}
		if t.TolerationSeconds != nil {
			s := int64(*t.TolerationSeconds)
			tol.TolerationSeconds = &s
		}
		o.Tolerations = append(o.Tolerations, tol)
	}
	return o
}

// writerFunc is an io.Writer from a function.
type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// openEnvTarget is what a command about one environment starts with:
// --env NAME and nothing else, the config loaded, the environment's target
// opened (pulling nothing). A nil target comes with the exit code, the
// reason already printed.
func openEnvTarget(s stdio, cmd string, pos []string, envName, cfgFile string, kube kubeFlags) (deploy.Target, func(), int) {
	if len(pos) > 0 || envName == "" {
		fmt.Fprintf(s.err, "modelship %s: --env NAME is required and nothing else\n", cmd)
		return nil, nil, exitUsage
	}
	cfg, ok := loadConfig(s, cfgFile)
	if !ok {
		return nil, nil, exitUsage
	}
	env, err := cfg.Environment(envName)
	if err != nil {
		fmt.Fprintf(s.err, "modelship %s: %v\n", cmd, err)
		return nil, nil, exitUsage
	}
	tg, _, closeTarget, err := newTarget(cfg, envName, env, kube, s.err, nil)
	if err != nil {
		fmt.Fprintf(s.err, "modelship %s: %v\n", cmd, err)
		return nil, nil, exitUsage
	}
	return tg, closeTarget, exitOK
}

// envTargetFlags are the flags of a command about one environment's
// target: --env (required), --config and how to reach a cluster.
type envTargetFlags struct {
	env, cfgFile string
	kube         kubeFlags
}

func (f *envTargetFlags) flags(fs *flag.FlagSet) {
	fs.StringVar(&f.env, "env", "", "`environment` of modelship.yaml (required)")
	fs.StringVar(&f.cfgFile, "config", config.DefaultFile, "modelship.yaml `file`")
	f.kube.register(fs)
}

// parse is how a command about one environment's target starts: these
// flags, and those more defines (when not nil), on the flag set of the
// command name (usage is its help text); args parsed; the target opened by
// openEnvTarget. A nil target comes with the exit code, the reason already
// printed.
func (f *envTargetFlags) parse(name, usage string, args []string, s stdio, more func(fs *flag.FlagSet)) (deploy.Target, func(), int) {
	fs := newFlagSet(name, s, usage)
	f.flags(fs)
	if more != nil {
		more(fs)
	}
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return nil, nil, code
	}
	return openEnvTarget(s, name, pos, f.env, f.cfgFile, f.kube)
}
