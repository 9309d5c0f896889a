package main

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"dagger/modelship/internal/dagger"

	"github.com/modelship/modelship/serving"
)

// The deploy stages run against the constructor's target. A Docker target
// is driven from the Docker host itself (modelship deploy probes releases
// on the host's loopback, which a Dagger container cannot reach): `modelship
// host-run` runs the serving image's modelship in a short-lived container
// there, with the host's network and the engine's socket. A Kubernetes
// target is reached through its API server, so the serving image's
// modelship runs in a Dagger container with the kubeconfig mounted as a
// secret.

// Deploy runs `modelship deploy --env ENV --image IMAGE` against the
// environment's target (the constructor's --docker or --kubeconfig): waits
// for /ready, switches, verifies, rolls back automatically on failure.
//
// +cache="never"
func (m *Modelship) Deploy(
	ctx context.Context,
	// Environment of the config to deploy to, e.g. staging or production.
	env string,
	// Published serving image (repository@sha256:...).
	image string,
	// Directory with the config and the files it names (suites); default this repository's.
	// +optional
	config *dagger.Directory,
	// Config file in config.
	// +default="modelship.yaml"
	configFile string,
	// Deploy strategy: auto, recreate, blue-green or rolling (Kubernetes); default the environment's.
	// +optional
	strategy string,
	// Bound on the whole stage (pull, deploy, verify, rollback on failure),
	// a Go duration; past it the stage fails naming the step that hung.
	// +default="30m"
	timeout string,
) (*StageResult, error) {
	args := []string{"deploy", "--env", env, "--image", image, "--config", configFile}
	if rev, _ := dag.Container().From(image).Label(ctx, serving.LabelRevision); rev != "" {
		args = append(args, "--git-sha", rev)
	}
	if strategy != "" {
		args = append(args, "--strategy", strategy)
	}
	return m.onTarget(ctx, "deploy", image, m.configDir(config), args, timeout)
}

// Rollback runs `modelship rollback --env ENV` against the environment's
// target: the previous live release (or the one given) is put back and
// verified, without a pull on Docker.
//
// +cache="never"
func (m *Modelship) Rollback(
	ctx context.Context,
	// Environment to roll back.
	env string,
	// A serving image whose modelship binary runs the rollback (e.g. the current one).
	image string,
	// Directory with the config and the files it names; default this repository's.
	// +optional
	config *dagger.Directory,
	// Config file in config.
	// +default="modelship.yaml"
	configFile string,
	// Release id to go back to; default the newest earlier live release.
	// +optional
	to string,
	// Bound on the whole stage, a Go duration.
	// +default="30m"
	timeout string,
) (*StageResult, error) {
	args := []string{"rollback", "--env", env, "--config", configFile}
	if to != "" {
		args = append(args, "--to", to)
	}
	return m.onTarget(ctx, "rollback", image, m.configDir(config), args, timeout)
}

// VerifyDeployment smoke-tests a deployed endpoint from where the target
// reaches it: the model is listed, one generation succeeds, and /version
// reports the image's model digest and the image. On a Docker host, the
// endpoint given (as the host reaches it); on Kubernetes, the
// environment's url or else its Service through the API server.
//
// +cache="never"
func (m *Modelship) VerifyDeployment(
	ctx context.Context,
	// The serving image that should be live there.
	image string,
	// Endpoint as the Docker host reaches it, e.g. http://127.0.0.1:8000.
	// +optional
	endpoint string,
	// Environment of the config: its endpoint is checked when endpoint is
	// not given; either way it names the environment in the notifications.
	// +optional
	env string,
	// Directory with the config (environments, notifications); default this repository's.
	// +optional
	config *dagger.Directory,
	// Config file in config.
	// +default="modelship.yaml"
	configFile string,
	// Served model name.
	// +default="current"
	model string,
	// Bound on the whole stage, a Go duration.
	// +default="5m"
	timeout string,
) (*StageResult, error) {
	if endpoint == "" && env == "" {
		return nil, fmt.Errorf("verify: endpoint (as the target reaches it) or env (of the config) is required")
	}
	args := []string{"smoke", "--config", configFile, "--model", model, "--expect-image", image}
	if endpoint != "" {
		args = append(args, "--endpoint", endpoint)
	}
	if env != "" {
		args = append(args, "--env", env)
	}
	if digest, _ := dag.Container().From(image).Label(ctx, serving.LabelModelDigest); digest != "" {
		args = append(args, "--expect-digest", digest)
	}
	return m.onTarget(ctx, "verify", image, m.configDir(config), args, timeout)
}

// stageMargin is how long before a stage's bound a deploy in it must be
// over (pulling the runner, starting it, reading its output).
const stageMargin = 45 * time.Second

// Where the kubeconfig and, for host-run, the secrets are mounted.
const (
	kubeconfigPath = "/run/secrets/modelship/kubeconfig"
	secretsDir     = "/run/modelship-secrets"
)

// onTarget runs modelship ARGS from image where the target is reached,
// bounded by timeout (a Go duration), with the config bundle in its
// working directory and the secrets under their references.
func (m *Modelship) onTarget(ctx context.Context, stage, image string, config *dagger.Directory, args []string, timeout string) (*StageResult, error) {
	switch {
	case m.Docker != nil && m.Kubeconfig != nil:
		return nil, fmt.Errorf("%s: give docker (a Docker target) or kubeconfig (a Kubernetes target), not both", stage)
	case m.Docker == nil && m.Kubeconfig == nil:
		return nil, fmt.Errorf("%s: no target: give docker (a Docker engine's socket, e.g. --docker /var/run/docker.sock) or kubeconfig (a Kubernetes cluster, e.g. --kubeconfig file:$HOME/.kube/config) to the constructor", stage)
	case m.KubeServer != "" && m.Kubeconfig == nil:
		return nil, fmt.Errorf("%s: kubeServer is for a Kubernetes target; give kubeconfig too", stage)
	}
	limit, err := time.ParseDuration(timeout)
	if err != nil || limit <= 0 {
		return nil, fmt.Errorf("%s: timeout %q: expected a positive Go duration such as 30m or 90s", stage, timeout)
	}
	if (args[0] == "deploy" || args[0] == "rollback") && limit > 2*time.Minute {
		// The deploy ends, its undo included, before the stage is killed.
		args = append(args, "--deadline", (limit - stageMargin).String())
	}
	var ctr *dagger.Container
	if m.Docker != nil {
		ctr = m.Tools().WithUnixSocket("/var/run/docker.sock", m.Docker).WithDirectory("/in/bundle", config)
		run := []string{"modelship", "host-run", "--stage", stage, "--image", image, "--bundle", "/in/bundle",
			"--socket-path", m.DockerSocketPath, "--timeout", limit.String()}
		for _, kv := range append(m.CiEnv, "MODELSHIP_LOG_FORMAT=text") {
			run = append(run, "--env", kv)
		}
		if len(m.Secrets) > 0 {
			run = append(run, "--secrets", secretsDir)
		}
		args = append(append(run, "--"), args...)
	} else {
		ctr = m.withCIEnv(dag.Container().From(image)).
			WithDirectory("/tmp/modelship", config).
			WithWorkdir("/tmp/modelship").
			WithMountedSecret(kubeconfigPath, m.Kubeconfig).
			WithEnvVariable("MODELSHIP_LOG_FORMAT", "text")
		// A smoke test of a given endpoint does not go through the cluster.
		if !slices.Contains(args, "--endpoint") {
			args = append(args, "--kubeconfig", kubeconfigPath)
			if m.KubeServer != "" {
				args = append(args, "--kube-server", m.KubeServer)
			}
		}
		// SIGTERM past the bound (a deploy undoes what it started), SIGKILL 30 s later.
		secs := strconv.Itoa(int(limit.Round(time.Second).Seconds()))
		args = append([]string{"timeout", "-k", "30", secs, serving.BinaryPath}, args...)
	}
	for i, sec := range m.Secrets {
		uri, err := sec.URI(ctx)
		if err != nil {
			return nil, stageError(fmt.Sprintf("%s: secrets[%d]", stage, i), err)
		}
		kind, ref, _ := strings.Cut(uri, ":")
		ref = strings.TrimPrefix(ref, "//")
		switch {
		case kind != "env" && (kind != "file" || !path.IsAbs(ref)):
			return nil, fmt.Errorf("%s: secrets[%d]: expected env:NAME or file:/absolute/path (the reference the config uses), got a %q secret", stage, i, kind)
		case m.Docker != nil: // host-run copies them in; secrets-exec applies them there
			ctr = ctr.WithMountedSecret(path.Join(secretsDir, kind, ref), sec)
		case kind == "env":
			ctr = ctr.WithSecretVariable(ref, sec)
		default:
			ctr = ctr.WithMountedSecret(ref, sec)
		}
	}
	// A deploy changes the world: never replay one from the cache.
	ctr = ctr.WithEnvVariable("MODELSHIP_RUN_AT", time.Now().UTC().Format(time.RFC3339Nano))
	return runStage(ctx, stage, ctr, args, "/tmp/reports")
}

// configDir is the config bundle: the one given, or this repository's
// modelship.yaml with its suites and prompts.
func (m *Modelship) configDir(config *dagger.Directory) *dagger.Directory {
	if config != nil {
		return config
	}
	return dag.Directory().
		WithFile("modelship.yaml", m.Source.File("modelship.yaml")).
		WithDirectory("testdata/suites", m.Source.Directory("testdata/suites")).
		WithDirectory("testdata/prompts", m.Source.Directory("testdata/prompts"))
}
