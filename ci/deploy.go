package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"dagger/modelship/internal/dagger"
)

// A Docker target is driven from the Docker host itself: modelship deploy
// probes the releases it starts on the host's loopback (ports published on
// 127.0.0.1), which a Dagger container cannot reach. So each of deploy,
// verify and rollback runs the modelship binary of the serving image in a
// short-lived container on the target engine, with the host's network and
// the engine's socket; a tools container with curl drives it through the
// Docker Engine API (create, copy the config in, start, wait, logs, remove).

// Deploy runs `modelship deploy --env ENV --image IMAGE` against a Docker
// host: blue-green or recreate (from GPU memory), wait for /ready, switch
// the gateway, verify, roll back automatically on failure. Returns its log.
//
// +cache="never"
func (m *Modelship) Deploy(
	ctx context.Context,
	// Environment of the config to deploy to, e.g. staging or production.
	env string,
	// Published serving image (repository@sha256:...).
	image string,
	// The Docker engine's socket, e.g. --docker /var/run/docker.sock.
	docker *dagger.Socket,
	// Path of that socket on the Docker host (mounted into the deployer container).
	// +default="/var/run/docker.sock"
	dockerSocketPath string,
	// Directory with the config and the files it names (suites); default this repository's.
	// +optional
	config *dagger.Directory,
	// Config file in config.
	// +default="modelship.yaml"
	configFile string,
	// Deploy strategy: auto, recreate or blue-green; default the environment's.
	// +optional
	strategy string,
) (string, error) {
	args := []string{"deploy", "--env", env, "--image", image, "--config", configFile}
	if rev := m.imageRevision(ctx, image); rev != "" {
		args = append(args, "--git-sha", rev)
	}
	if strategy != "" {
		args = append(args, "--strategy", strategy)
	}
	return m.onDockerHost(ctx, "deploy", docker, dockerSocketPath, image, m.configDir(config), args)
}

// Rollback runs `modelship rollback --env ENV` against a Docker host: the
// previous live release (or the one given) is put back, verified, without
// a pull. image is any serving image (its modelship binary runs it).
//
// +cache="never"
func (m *Modelship) Rollback(
	ctx context.Context,
	// Environment to roll back.
	env string,
	// A serving image whose modelship binary runs the rollback (e.g. the current one).
	image string,
	// The Docker engine's socket.
	docker *dagger.Socket,
	// Path of that socket on the Docker host.
	// +default="/var/run/docker.sock"
	dockerSocketPath string,
	// Directory with the config and the files it names; default this repository's.
	// +optional
	config *dagger.Directory,
	// Config file in config.
	// +default="modelship.yaml"
	configFile string,
	// Release id to go back to; default the newest earlier live release.
	// +optional
	to string,
) (string, error) {
	args := []string{"rollback", "--env", env, "--config", configFile}
	if to != "" {
		args = append(args, "--to", to)
	}
	return m.onDockerHost(ctx, "rollback", docker, dockerSocketPath, image, m.configDir(config), args)
}

// VerifyDeployment smoke-tests a deployed endpoint from the Docker host:
// the model is listed, one generation succeeds, and /version reports the
// image's model digest and the image.
//
// +cache="never"
func (m *Modelship) VerifyDeployment(
	ctx context.Context,
	// Endpoint as the Docker host reaches it, e.g. http://127.0.0.1:8000.
	endpoint string,
	// The serving image that should be live there.
	image string,
	// The Docker engine's socket.
	docker *dagger.Socket,
	// Path of that socket on the Docker host.
	// +default="/var/run/docker.sock"
	dockerSocketPath string,
	// Served model name.
	// +default="current"
	model string,
) (string, error) {
	args := []string{"smoke", "--endpoint", endpoint, "--model", model, "--expect-image", image}
	digest, err := dag.Container().From(image).Label(ctx, labelModelDigest)
	if err == nil && digest != "" {
		args = append(args, "--expect-digest", digest)
	}
	return m.onDockerHost(ctx, "verify", docker, dockerSocketPath, image, dag.Directory(), args)
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
	rev, err := dag.Container().From(image).Label(ctx, labelRevision)
	if err != nil {
		return ""
	}
	return rev
}

// dockerScript drives the Docker Engine API (1.41, Docker 20.10 and later)
// over /var/run/docker.sock: pull, create, copy /in/bundle.tar to /tmp,
// start, wait, print the logs, remove; exits with the container's status.
const dockerScript = `set -eu
api() { curl -sS --fail-with-body --unix-socket /var/run/docker.sock "$@"; }
base=http://docker/v1.41
if ! api -X POST "$base/images/create?fromImage=$(printf %s "$IMAGE" | sed 's/@/%40/; s/:/%3A/g')" > /tmp/pull.log; then
	cat /tmp/pull.log >&2; exit 125
fi
if grep -q '"error"' /tmp/pull.log; then
	echo "pull $IMAGE:" >&2; grep '"error"' /tmp/pull.log >&2; exit 125
fi
id=$(api -X POST -H 'Content-Type: application/json' --data-binary @/in/create.json "$base/containers/create" |
	sed -n 's/.*"Id":"\([0-9a-f]*\)".*/\1/p')
[ -n "$id" ] || { echo "could not create the $STAGE container" >&2; exit 125; }
trap 'api -X DELETE "$base/containers/$id?force=1" >/dev/null || true' EXIT
api -X PUT -H 'Content-Type: application/x-tar' --data-binary @/in/bundle.tar "$base/containers/$id/archive?path=/tmp" >/dev/null
api -X POST "$base/containers/$id/start" >/dev/null
status=$(api -X POST "$base/containers/$id/wait" | sed -n 's/.*"StatusCode":\([0-9]*\).*/\1/p')
api "$base/containers/$id/logs?stdout=1&stderr=1"
exit "${status:-125}"
`

// onDockerHost runs modelship ARGS from image on the Docker host behind
// docker, with the host's network, the engine's socket and the config
// bundle in its working directory.
func (m *Modelship) onDockerHost(ctx context.Context, stage string, docker *dagger.Socket, socketPath, image string, config *dagger.Directory, args []string) (string, error) {
	create, err := json.Marshal(map[string]any{
		"Image":      image,
		"Entrypoint": []string{binaryPath},
		"Cmd":        args,
		"WorkingDir": "/tmp/modelship",
		"Env":        []string{"DOCKER_HOST=unix:///var/run/docker.sock"},
		"Tty":        true,
		"Labels":     map[string]string{"modelship.role": "runner", "modelship.stage": stage},
		"HostConfig": map[string]any{
			"NetworkMode": "host",
			"Binds":       []string{socketPath + ":/var/run/docker.sock"},
		},
	})
	if err != nil {
		return "", err
	}
	client := dag.Container().From(m.BaseImage).
		WithExec([]string{"sh", "-c", "apt-get update -qq && apt-get install -y -qq --no-install-recommends curl >/dev/null"}).
		WithDirectory("/bundle/modelship", config).
		WithExec([]string{"sh", "-c", "mkdir -p /in && tar -C /bundle -cf /in/bundle.tar modelship"}).
		WithNewFile("/in/create.json", string(create)).
		WithUnixSocket("/var/run/docker.sock", docker).
		WithEnvVariable("IMAGE", image).
		WithEnvVariable("STAGE", stage).
		// A deploy changes the world: never replay one from the cache.
		WithEnvVariable("MODELSHIP_RUN_AT", time.Now().UTC().Format(time.RFC3339Nano))
	out, code, err := run(ctx, client, []string{"sh", "-c", dockerScript})
	if err != nil {
		return "", stageError(stage, err)
	}
	if code != 0 {
		return "", fmt.Errorf("%s: modelship %s exited %d on the Docker host:\n%s", stage, strings.Join(args, " "), code, out)
	}
	return out, nil
}
