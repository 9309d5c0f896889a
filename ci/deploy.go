package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"dagger/modelship/internal/dagger"

	"github.com/modelship/modelship/serving"
)

// Deploy targets. A Docker target is driven from the Docker host itself:
// modelship deploy probes the releases it starts on the host's loopback
// (ports published on 127.0.0.1), which a Dagger container cannot reach. So
// each of deploy, verify and rollback runs the modelship binary of the
// serving image in a short-lived container on the target engine, with the
// host's network and the engine's socket; a tools container with curl
// drives it through the Docker Engine API (create, copy the config in,
// start, wait, logs, remove).
//
// A Kubernetes target is reached through its API server only (rollouts,
// the Service through the API server's service proxy), so the same
// modelship runs in a Dagger container from the serving image, with the
// kubeconfig mounted as a secret.

// Deploy runs `modelship deploy --env ENV --image IMAGE` against the
// environment's target: a Docker host (--docker: blue-green or recreate,
// from GPU memory) or a Kubernetes cluster (--kubeconfig: rolling or
// blue-green on the Service selector); waits for /ready, switches,
// verifies, rolls back automatically on failure. Returns its log.
//
// +cache="never"
func (m *Modelship) Deploy(
	ctx context.Context,
	// Environment of the config to deploy to, e.g. staging or production.
	env string,
	// Published serving image (repository@sha256:...).
	image string,
	// For a Docker target: the Docker engine's socket, e.g. --docker /var/run/docker.sock.
	// +optional
	docker *dagger.Socket,
	// Path of that socket on the Docker host (mounted into the deployer container).
	// +default="/var/run/docker.sock"
	dockerSocketPath string,
	// For a Kubernetes target: a kubeconfig with its credentials inline
	// (kubectl config view --raw --minify --flatten), e.g.
	// --kubeconfig file:$HOME/.kube/config or env:KUBECONFIG_DATA. Mounted
	// as a secret: never logged, never in a layer.
	// +optional
	kubeconfig *dagger.Secret,
	// The same kubeconfig as a file, for one that is not secret-managed;
	// it is turned into a secret before use.
	// +optional
	kubeconfigFile *dagger.File,
	// The Kubernetes API server's URL as the pipeline's containers reach it,
	// instead of the kubeconfig's (a kubeconfig naming 127.0.0.1 or
	// localhost means the container itself), e.g. https://10.0.0.5:6443.
	// +optional
	kubeServer string,
	// Secrets the config's env: and file: references name (the
	// notifications' Slack URL, webhook secret, Grafana token), e.g.
	// --secrets env:MODELSHIP_WEBHOOK_SECRET,file:/run/secrets/slack-url:
	// modelship gets each under the same variable or path. Never logged.
	// +optional
	secrets []*dagger.Secret,
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
) (string, error) {
	tg, err := newTarget(ctx, "deploy", docker, dockerSocketPath, kubeconfig, kubeconfigFile, kubeServer, secrets)
	if err != nil {
		return "", err
	}
	return m.deploy(ctx, tg, env, image, m.configDir(config), configFile, strategy, timeout)
}

func (m *Modelship) deploy(ctx context.Context, tg *target, env, image string, config *dagger.Directory, configFile, strategy, timeout string) (string, error) {
	args := []string{"deploy", "--env", env, "--image", image, "--config", configFile}
	if rev := m.imageRevision(ctx, image); rev != "" {
		args = append(args, "--git-sha", rev)
	}
	if strategy != "" {
		args = append(args, "--strategy", strategy)
	}
	return m.onTarget(ctx, "deploy", tg, image, config, args, timeout)
}

// Rollback runs `modelship rollback --env ENV` against the environment's
// target (a Docker host or a Kubernetes cluster): the previous live
// release (or the one given) is put back and verified, without a pull on
// Docker. image is any serving image (its modelship binary runs it).
//
// +cache="never"
func (m *Modelship) Rollback(
	ctx context.Context,
	// Environment to roll back.
	env string,
	// A serving image whose modelship binary runs the rollback (e.g. the current one).
	image string,
	// For a Docker target: the Docker engine's socket.
	// +optional
	docker *dagger.Socket,
	// Path of that socket on the Docker host.
	// +default="/var/run/docker.sock"
	dockerSocketPath string,
	// For a Kubernetes target: a kubeconfig with its credentials inline (see deploy).
	// +optional
	kubeconfig *dagger.Secret,
	// The same kubeconfig as a file.
	// +optional
	kubeconfigFile *dagger.File,
	// The Kubernetes API server's URL as the pipeline's containers reach it (see deploy).
	// +optional
	kubeServer string,
	// Secrets the config's env: and file: references name (the
	// notifications' Slack URL, webhook secret, Grafana token), e.g.
	// --secrets env:MODELSHIP_WEBHOOK_SECRET,file:/run/secrets/slack-url:
	// modelship gets each under the same variable or path. Never logged.
	// +optional
	secrets []*dagger.Secret,
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
) (string, error) {
	tg, err := newTarget(ctx, "rollback", docker, dockerSocketPath, kubeconfig, kubeconfigFile, kubeServer, secrets)
	if err != nil {
		return "", err
	}
	return m.rollback(ctx, tg, env, image, m.configDir(config), configFile, to, timeout)
}

func (m *Modelship) rollback(ctx context.Context, tg *target, env, image string, config *dagger.Directory, configFile, to, timeout string) (string, error) {
	args := []string{"rollback", "--env", env, "--config", configFile}
	if to != "" {
		args = append(args, "--to", to)
	}
	return m.onTarget(ctx, "rollback", tg, image, config, args, timeout)
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
	// not given (on Kubernetes its Service through the API server); either
	// way it names the environment in the verify stage's notifications.
	// +optional
	env string,
	// For a Docker target: the Docker engine's socket.
	// +optional
	docker *dagger.Socket,
	// Path of that socket on the Docker host.
	// +default="/var/run/docker.sock"
	dockerSocketPath string,
	// For a Kubernetes target: a kubeconfig with its credentials inline (see deploy).
	// +optional
	kubeconfig *dagger.Secret,
	// The same kubeconfig as a file.
	// +optional
	kubeconfigFile *dagger.File,
	// The Kubernetes API server's URL as the pipeline's containers reach it (see deploy).
	// +optional
	kubeServer string,
	// Secrets the config's env: and file: references name (the
	// notifications' Slack URL, webhook secret, Grafana token), e.g.
	// --secrets env:MODELSHIP_WEBHOOK_SECRET,file:/run/secrets/slack-url:
	// modelship gets each under the same variable or path. Never logged.
	// +optional
	secrets []*dagger.Secret,
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
) (string, error) {
	tg, err := newTarget(ctx, "verify", docker, dockerSocketPath, kubeconfig, kubeconfigFile, kubeServer, secrets)
	if err != nil {
		return "", err
	}
	return m.verifyDeployment(ctx, tg, image, endpoint, env, m.configDir(config), configFile, model, timeout)
}

func (m *Modelship) verifyDeployment(ctx context.Context, tg *target, image, endpoint, env string, config *dagger.Directory, configFile, model, timeout string) (string, error) {
	if endpoint == "" && env == "" {
		return "", fmt.Errorf("verify: endpoint (as the target reaches it) or env (of the config) is required")
	}
	// The config's notifications hear of the check (stage verify).
	args := []string{"smoke", "--config", configFile}
	if endpoint != "" {
		args = append(args, "--endpoint", endpoint)
	}
	if env != "" {
		args = append(args, "--env", env)
	}
	args = append(args, "--model", model, "--expect-image", image)
	digest, err := dag.Container().From(image).Label(ctx, serving.LabelModelDigest)
	if err == nil && digest != "" {
		args = append(args, "--expect-digest", digest)
	}
	return m.onTarget(ctx, "verify", tg, image, config, args, timeout)
}

// target is where a deploy stage's modelship runs: on a Docker host
// (docker, its socket) or against a Kubernetes cluster (kubeconfig), and
// the secrets its config refers to.
type target struct {
	docker     *dagger.Socket
	socketPath string
	kubeconfig *dagger.Secret
	kubeServer string
	secrets    []namedSecret
}

// namedSecret is a secret and the config reference it answers: env:NAME
// (a variable) or file:PATH (a file).
type namedSecret struct {
	ref    string // "env:NAME" or "file:/abs/path"
	secret *dagger.Secret
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// nameSecrets reads each secret's URI (env://NAME, file://PATH, as the
// CLI's env:NAME and file:PATH make them) for the reference it answers.
func nameSecrets(ctx context.Context, stage string, secrets []*dagger.Secret) ([]namedSecret, error) {
	var out []namedSecret
	for i, sec := range secrets {
		uri, err := sec.URI(ctx)
		if err != nil {
			return nil, stageError(fmt.Sprintf("%s: secrets[%d]", stage, i), err)
		}
		scheme, rest, _ := strings.Cut(uri, ":")
		rest = strings.TrimPrefix(rest, "//")
		switch {
		case scheme == "env" && envName.MatchString(rest):
			out = append(out, namedSecret{"env:" + rest, sec})
		case scheme == "file" && strings.HasPrefix(rest, "/") && !strings.ContainsAny(rest, "\n\r "):
			out = append(out, namedSecret{"file:" + rest, sec})
		default:
			return nil, fmt.Errorf("%s: secrets[%d]: expected env:NAME or file:/absolute/path (the reference the config uses), got a %q secret", stage, i, scheme)
		}
	}
	return out, nil
}

// newTarget checks that exactly one target is given and makes a file
// kubeconfig a secret.
func newTarget(ctx context.Context, stage string, docker *dagger.Socket, socketPath string, kubeconfig *dagger.Secret, kubeconfigFile *dagger.File, kubeServer string, secrets []*dagger.Secret) (*target, error) {
	if kubeconfig != nil && kubeconfigFile != nil {
		return nil, fmt.Errorf("%s: give kubeconfig (a secret) or kubeconfigFile, not both", stage)
	}
	if kubeconfigFile != nil {
		digest, err := kubeconfigFile.Digest(ctx)
		if err != nil {
			return nil, stageError(stage+": kubeconfigFile", err)
		}
		data, err := kubeconfigFile.Contents(ctx)
		if err != nil {
			return nil, stageError(stage+": kubeconfigFile", err)
		}
		kubeconfig = dag.SetSecret("modelship-kubeconfig-"+strings.TrimPrefix(digest, "sha256:")[:16], data)
	}
	switch {
	case docker != nil && kubeconfig != nil:
		return nil, fmt.Errorf("%s: give docker (a Docker target) or kubeconfig (a Kubernetes target), not both", stage)
	case docker == nil && kubeconfig == nil:
		return nil, fmt.Errorf("%s: no target: give docker (a Docker engine's socket, e.g. --docker /var/run/docker.sock) or kubeconfig (a Kubernetes cluster, e.g. --kubeconfig file:$HOME/.kube/config)", stage)
	case kubeServer != "" && kubeconfig == nil:
		return nil, fmt.Errorf("%s: kubeServer is for a Kubernetes target; give kubeconfig too", stage)
	}
	named, err := nameSecrets(ctx, stage, secrets)
	if err != nil {
		return nil, err
	}
	return &target{docker: docker, socketPath: socketPath, kubeconfig: kubeconfig, kubeServer: kubeServer, secrets: named}, nil
}

// stageMargin is how long before a stage's bound a deploy in it must be
// over (pulling the runner, starting it, reading its output).
const stageMargin = 45 * time.Second

// onTarget runs modelship ARGS from image where tg is reached, bounded by
// timeout (a Go duration), with the config bundle in its working directory.
func (m *Modelship) onTarget(ctx context.Context, stage string, tg *target, image string, config *dagger.Directory, args []string, timeout string) (string, error) {
	limit, err := time.ParseDuration(timeout)
	if err != nil || limit <= 0 {
		return "", fmt.Errorf("%s: timeout %q: expected a positive Go duration such as 30m or 90s", stage, timeout)
	}
	if len(args) > 0 && (args[0] == "deploy" || args[0] == "rollback") && limit > 2*time.Minute {
		// The deploy ends, its undo included, before the stage is killed:
		// it stops early enough to leave the undo its whole budget.
		args = append(args, "--deadline", (limit - stageMargin).String())
	}
	if tg.docker != nil {
		return m.onDockerHost(ctx, stage, tg, image, config, args, limit)
	}
	return m.onCluster(ctx, stage, tg, image, config, args, limit)
}

// kubeconfigPath is where the kubeconfig secret is mounted.
const kubeconfigPath = "/run/secrets/modelship/kubeconfig"

// onCluster runs modelship ARGS from image in a Dagger container that
// reaches the cluster through the kubeconfig secret; stopped (SIGTERM, so
// a deploy undoes what it started, then SIGKILL 30 s later) past limit.
func (m *Modelship) onCluster(ctx context.Context, stage string, tg *target, image string, config *dagger.Directory, args []string, limit time.Duration) (string, error) {
	// A smoke test of a given endpoint does not go through the cluster.
	if !slices.Contains(args, "--endpoint") {
		args = append(args, "--kubeconfig", kubeconfigPath)
		if tg.kubeServer != "" {
			args = append(args, "--kube-server", tg.kubeServer)
		}
	}
	secs := strconv.Itoa(int(limit.Round(time.Second).Seconds()))
	ctr := m.withCIEnv(dag.Container().From(image)).
		WithDirectory("/tmp/modelship", config).
		WithWorkdir("/tmp/modelship").
		WithMountedSecret(kubeconfigPath, tg.kubeconfig)
	for _, sec := range tg.secrets {
		if name, ok := strings.CutPrefix(sec.ref, "env:"); ok {
			ctr = ctr.WithSecretVariable(name, sec.secret)
		} else {
			ctr = ctr.WithMountedSecret(strings.TrimPrefix(sec.ref, "file:"), sec.secret)
		}
	}
	ctr = ctr.WithEnvVariable("MODELSHIP_LOG_FORMAT", "text").
		// A deploy changes the world: never replay one from the cache.
		WithEnvVariable("MODELSHIP_RUN_AT", time.Now().UTC().Format(time.RFC3339Nano)).
		WithExec(append([]string{"timeout", "-k", "30", secs, serving.BinaryPath}, args...),
			dagger.ContainerWithExecOpts{Expect: dagger.ReturnTypeAny})
	code, err := ctr.ExitCode(ctx)
	if err != nil {
		return "", stageError(stage, err)
	}
	stdout, err := ctr.Stdout(ctx)
	if err != nil {
		return "", stageError(stage, err)
	}
	stderr, err := ctr.Stderr(ctx)
	if err != nil {
		return "", stageError(stage, err)
	}
	out := stderr + stdout
	cmd := "modelship " + strings.Join(args, " ")
	switch code {
	case 0:
		return out, nil
	case 124, 137:
		return "", fmt.Errorf("%s: timed out after %s against the cluster (%s; raise it with --timeout, --deploy-timeout on release):\n%s", stage, limit, cmd, out)
	}
	return "", fmt.Errorf("%s: %s exited %d:\n%s", stage, cmd, code, out)
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

func (m *Modelship) imageRevision(ctx context.Context, image string) string {
	rev, err := dag.Container().From(image).Label(ctx, serving.LabelRevision)
	if err != nil {
		return ""
	}
	return rev
}

// curlInstall puts curl in the client container, bounded (5 minutes, 30 s
// per connection) and saying why when the package mirror is out of reach.
const curlInstall = `timeout 300 sh -c 'apt-get -o Acquire::http::Timeout=30 -o Acquire::Retries=2 update -qq &&
	apt-get -o Acquire::http::Timeout=30 install -y -qq --no-install-recommends curl >/dev/null' ||
	{ rc=$?; echo "installing curl in the deploy client failed (exit $rc; 124: no answer from the package mirror in 5m)" >&2; exit $rc; }`

// dockerScript drives the Docker Engine API (1.41, Docker 20.10 and later)
// over /var/run/docker.sock: pull, create, copy /in/bundle.tar to /tmp,
// start, stream the logs while it runs, wait, remove; exits with the
// container's status. Nothing in it can hang silently: every API call has
// a connect and a total timeout, the pull and the run say what they do and
// stream their output, and the whole stage is bounded by $TIMEOUT seconds;
// past it the container is removed and the script exits 124 naming the
// step that did not finish.
const dockerScript = `set -eu
base=http://docker/v1.41
start=$(date +%s)
left() { l=$((TIMEOUT - ($(date +%s) - start))); [ "$l" -gt 0 ] || l=1; echo "$l"; }
api() { curl -sS --connect-timeout 10 --max-time 120 --fail-with-body --unix-socket /var/run/docker.sock "$@"; }
stream() { curl -sS -N --connect-timeout 10 --max-time "$(left)" --fail-with-body --unix-socket /var/run/docker.sock "$@"; }
timedout() {
	echo "$STAGE: $1 did not finish within the stage's timeout of ${TIMEOUT}s on the Docker host (raise it with --timeout; --deploy-timeout on release)" >&2
	exit 124
}
echo "$STAGE: pulling $IMAGE on the Docker host" >&2
rc=0
stream -X POST "$base/images/create?fromImage=$(printf %s "$IMAGE" | sed 's/@/%40/; s/:/%3A/g')" > /tmp/pull.log || rc=$?
[ "$rc" != 28 ] || timedout "pulling $IMAGE"
if [ "$rc" != 0 ]; then cat /tmp/pull.log >&2; exit 125; fi
if grep -q '"error"' /tmp/pull.log; then
	echo "pull $IMAGE:" >&2; grep '"error"' /tmp/pull.log >&2; exit 125
fi
id=$(api -X POST -H 'Content-Type: application/json' --data-binary @/in/create.json "$base/containers/create" |
	sed -n 's/.*"Id":"\([0-9a-f]*\)".*/\1/p')
[ -n "$id" ] || { echo "could not create the $STAGE container" >&2; exit 125; }
trap 'api -X DELETE "$base/containers/$id?force=1" >/dev/null || true' EXIT
api -X PUT -H 'Content-Type: application/x-tar' --data-binary @/in/bundle.tar "$base/containers/$id/archive?path=/tmp" >/dev/null
if [ -n "${SECRETS:-}" ]; then
	# The secrets, as files for the runner's wrapper to read: written on a
	# tmpfs here (never in a snapshot), copied in, deleted.
	s=/secrets/b/modelship-secrets
	mkdir -p "$s/env" "$s/file"
	printf '%s\n' "$SECRETS" | while read -r i ref; do
		eval "v=\${MODELSHIP_SECRET_$i}"
		case $ref in
		env:*) printf '%s' "$v" >"$s/env/${ref#env:}" ;;
		file:*) printf '%s' "$v" >"$s/file/$i"; echo "$i ${ref#file:}" >>"$s/files" ;;
		esac
	done
	tar -C /secrets/b -cf /secrets/secrets.tar modelship-secrets
	rm -rf /secrets/b
	api -X PUT -H 'Content-Type: application/x-tar' --data-binary @/secrets/secrets.tar "$base/containers/$id/archive?path=/tmp" >/dev/null
	rm -f /secrets/secrets.tar
fi
api -X POST "$base/containers/$id/start" >/dev/null
echo "$STAGE: modelship $ARGS (container $(printf %.12s "$id") on the Docker host, up to $(left)s)" >&2
rc=0
stream "$base/containers/$id/logs?follow=1&stdout=1&stderr=1" || rc=$?
[ "$rc" != 28 ] || timedout "modelship $ARGS"
rc=0
status=$(stream -X POST "$base/containers/$id/wait") || rc=$?
[ "$rc" != 28 ] || timedout "modelship $ARGS"
status=$(printf %s "$status" | sed -n 's/.*"StatusCode":\([0-9]*\).*/\1/p')
exit "${status:-125}"
`

// secretsWrapper runs in the runner container when secrets were given: it
// exports each env: secret and writes each file: secret at its path (from
// the files dockerScript copied in), deletes those, then runs modelship.
const secretsWrapper = `set -eu
d=/tmp/modelship-secrets
for f in "$d"/env/*; do
	[ -e "$f" ] || continue
	v=$(cat "$f"); export "${f##*/}=$v"
done
if [ -f "$d/files" ]; then
	while read -r i p; do mkdir -p "${p%/*}"; cp "$d/file/$i" "$p"; chmod 600 "$p"; done <"$d/files"
fi
rm -rf "$d"
exec ` + serving.BinaryPath + ` "$@"`

// onDockerHost runs modelship ARGS from image on the Docker host behind
// tg's socket, with the host's network, the engine's socket, the config
// bundle in its working directory and the secrets under their names,
// bounded by limit.
func (m *Modelship) onDockerHost(ctx context.Context, stage string, tg *target, image string, config *dagger.Directory, args []string, limit time.Duration) (string, error) {
	entrypoint := []string{serving.BinaryPath}
	if len(tg.secrets) > 0 {
		entrypoint = []string{"/bin/sh", "-c", secretsWrapper, "modelship"}
	}
	create, err := json.Marshal(map[string]any{
		"Image":      image,
		"Entrypoint": entrypoint,
		"Cmd":        args,
		"WorkingDir": "/tmp/modelship",
		"Env":        append([]string{"DOCKER_HOST=unix:///var/run/docker.sock"}, m.CiEnv...),
		"Tty":        true,
		"Labels":     map[string]string{"modelship.role": "runner", "modelship.stage": stage},
		"HostConfig": map[string]any{
			"NetworkMode": "host",
			"Binds":       []string{tg.socketPath + ":/var/run/docker.sock"},
		},
	})
	if err != nil {
		return "", err
	}
	client := dag.Container().From(m.BaseImage).
		WithExec([]string{"sh", "-c", curlInstall}).
		WithDirectory("/bundle/modelship", config).
		WithExec([]string{"sh", "-c", "mkdir -p /in && tar -C /bundle -cf /in/bundle.tar modelship"}).
		WithNewFile("/in/create.json", string(create)).
		WithUnixSocket("/var/run/docker.sock", tg.docker).
		WithMountedTemp("/secrets").
		WithEnvVariable("IMAGE", image).
		WithEnvVariable("STAGE", stage).
		WithEnvVariable("ARGS", strings.Join(args, " ")).
		WithEnvVariable("TIMEOUT", strconv.Itoa(int(limit.Round(time.Second).Seconds()))).
		// A deploy changes the world: never replay one from the cache.
		WithEnvVariable("MODELSHIP_RUN_AT", time.Now().UTC().Format(time.RFC3339Nano))
	var refs []string
	for i, sec := range tg.secrets {
		client = client.WithSecretVariable(fmt.Sprintf("MODELSHIP_SECRET_%d", i), sec.secret)
		refs = append(refs, fmt.Sprintf("%d %s", i, sec.ref))
	}
	client = client.WithEnvVariable("SECRETS", strings.Join(refs, "\n"))
	out, code, err := run(ctx, client, []string{"sh", "-c", dockerScript})
	if err != nil {
		return "", stageError(stage, err)
	}
	if code == 124 {
		return "", fmt.Errorf("%s: timed out after %s on the Docker host (modelship %s):\n%s", stage, limit, strings.Join(args, " "), out)
	}
	if code != 0 {
		return "", fmt.Errorf("%s: modelship %s exited %d on the Docker host:\n%s", stage, strings.Join(args, " "), code, out)
	}
	return out, nil
}
