// The modelship pipeline: take a model checkpoint to a production
// OpenAI-compatible (vLLM) endpoint, and stop a bad or slow model on the way.
//
// Every stage runs the modelship binary, built from this repository inside a
// Go container, in a small tools container: preflight, validate, benchmark,
// build, publish, deploy, verify, rollback, and release for all of them in
// order. With engine "sim" the same pipeline runs on a CPU against modelship's
// vLLM simulator; with engine "vllm" the model is served by vLLM on GPUs;
// with engine "ollama" a GGUF checkpoint is served by Ollama (llama.cpp) on
// the CPU, a real engine.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"dagger/modelship/internal/dagger"

	"github.com/modelship/modelship/serving"
)

// Modelship is the pipeline. Its settings (images, sources, the deploy
// target and its secrets) come from the constructor; every function takes
// the model checkpoint or image it works on.
type Modelship struct {
	// Sources of modelship (go.mod, cmd/, internal/, ...) the binary is built from.
	Source *dagger.Directory
	// Go toolchain image modelship is built in (a golang image with gcc: cgo
	// for NVML).
	GoImage string
	// Image the tools containers and the simulator's serving image start from.
	BaseImage string
	// vLLM image that serves checkpoints with engine "vllm".
	VllmImage string
	// modelship.yaml whose serving section (engine settings) is baked into
	// every serving image; nil leaves vLLM's defaults.
	Config *dagger.File
	// The repository's git metadata, for the revision and time of a build.
	Git *dagger.Directory
	// CI run variables (NAME=VALUE) set in every stage container.
	CiEnv []string
	// The deploy target: a Docker engine's socket and its path on the host,
	// or a Kubernetes cluster's kubeconfig and API server URL.
	Docker           *dagger.Socket
	DockerSocketPath string
	Kubeconfig       *dagger.Secret
	KubeServer       string
	// Secrets the config's env: and file: references name.
	Secrets []*dagger.Secret
}

// New configures the pipeline.
func New(
	// The modelship repository; the binary every stage runs is built from it.
	// +defaultPath="/"
	// +ignore=[".git", ".cache", ".github", "bin", "ci", "modules", "**/testdata/fuzz", "*.test", "*.out"]
	source *dagger.Directory,
	// Go toolchain image modelship is built in (needs gcc for cgo).
	// +default="golang:1.26-bookworm"
	goImage string,
	// Image the tools containers and the simulator's serving image start from.
	// +default="debian:bookworm-slim"
	baseImage string,
	// vLLM image serving checkpoints with engine "vllm"; default the pinned
	// release whose flags and startup rules modelship checks settings against.
	// +optional
	vllmImage string,
	// The repository's git metadata, read for the revision of an image.
	// +defaultPath="/.git"
	// +ignore=["logs", "hooks", "index", "lfs", "modules", "worktrees"]
	// +optional
	git *dagger.Directory,
	// modelship.yaml: its serving section (max-model-len,
	// tensor-parallel-size, dtype, engine-args, ...) becomes the engine's
	// flags in every image this module builds and serves; checked against
	// vLLM's recorded flags first.
	// +optional
	config *dagger.File,
	// The CI run's variables, NAME=VALUE, set in every stage container: a
	// Dagger function cannot read its caller's environment. With
	// GITHUB_ACTOR, GITHUB_WORKFLOW, GITHUB_RUN_ID, GITHUB_SERVER_URL and
	// GITHUB_REPOSITORY the releases record who deployed from which run
	// and the notifications link to it. Also GITHUB_RUN_ATTEMPT,
	// GITHUB_SHA, GITHUB_REF, GITHUB_JOB, GITHUB_EVENT_NAME; other
	// variables are refused (GITHUB_TOKEN is a secret: use --secrets).
	// +optional
	ciEnv []string,
	// Deploy target (deploy, rollback, verify-deployment, release, demo): a
	// Docker engine's socket, e.g. --docker /var/run/docker.sock.
	// +optional
	docker *dagger.Socket,
	// Path of that socket on the Docker host (bound into the runner).
	// +default="/var/run/docker.sock"
	dockerSocketPath string,
	// Deploy target: a Kubernetes cluster's kubeconfig with its credentials
	// inline (kubectl config view --raw --minify --flatten), e.g.
	// --kubeconfig file:$HOME/.kube/config or env:KUBECONFIG_DATA; mounted
	// as a secret, never logged.
	// +optional
	kubeconfig *dagger.Secret,
	// The Kubernetes API server's URL as the pipeline's containers reach it,
	// instead of the kubeconfig's (one naming 127.0.0.1 or localhost means
	// the container itself), e.g. https://10.0.0.5:6443.
	// +optional
	kubeServer string,
	// Secrets the config's env: and file: references name (the
	// notifications' Slack URL, webhook secret, Grafana token), e.g.
	// --secrets env:MODELSHIP_WEBHOOK_SECRET,file:/run/secrets/slack-url:
	// the deploy stages' modelship gets each under the same variable or
	// path. Never logged.
	// +optional
	secrets []*dagger.Secret,
) (*Modelship, error) {
	if vllmImage == "" {
		vllmImage = serving.VLLMImage()
	}
	env, err := serving.StageEnv(ciEnv)
	if err != nil {
		return nil, err
	}
	if len(secrets) > 0 && docker == nil && kubeconfig == nil {
		return nil, fmt.Errorf("secrets: only the deploy stages read them, and no deploy target was given (docker or kubeconfig)")
	}
	return &Modelship{Source: source, GoImage: goImage, BaseImage: baseImage, VllmImage: vllmImage, Git: git, Config: config, CiEnv: env,
		Docker: docker, DockerSocketPath: dockerSocketPath, Kubeconfig: kubeconfig, KubeServer: kubeServer, Secrets: secrets}, nil
}

// Binary builds the modelship binary (linux, cgo for NVML) from Source.
func (m *Modelship) Binary() *dagger.File {
	src := dag.Directory().WithDirectory("/", m.Source, dagger.DirectoryWithDirectoryOpts{
		Exclude: []string{"testdata", "**/testdata", "*.md", ".ci", "modelship.yaml", "dagger.json", "LICENSE"},
	})
	return dag.Container().From(m.GoImage).
		WithMountedCache("/go/pkg/mod", dag.CacheVolume("modelship-go-mod")).
		WithMountedCache("/root/.cache/go-build", dag.CacheVolume("modelship-go-build")).
		WithEnvVariable("CGO_ENABLED", "1").
		WithEnvVariable("CGO_CFLAGS", "-Wno-deprecated-declarations").
		WithEnvVariable("GOFLAGS", "-buildvcs=false").
		WithDirectory("/src", src).
		WithWorkdir("/src").
		WithExec([]string{"go", "build", "-trimpath", "-ldflags", "-s -w", "-o", "/out/modelship", "./cmd/modelship"}).
		File("/out/modelship")
}

// Ollama builds the ollama binary (Ollama v0.12.6, CPU: its llama.cpp
// runner through cgo) from the Go module proxy in a Go container, with the
// repository's .ci/deps/ollama-build.sh; the result stays in a cache
// volume, so only the first call builds (minutes on two cores). Serving
// images of engine "ollama" run it.
func (m *Modelship) Ollama() *dagger.File {
	return dag.Container().From(m.GoImage).
		WithMountedCache("/go/pkg/mod", dag.CacheVolume("modelship-go-mod")).
		WithMountedCache("/root/.cache/go-build", dag.CacheVolume("modelship-go-build")).
		WithMountedCache("/var/cache/modelship-ollama", dag.CacheVolume("modelship-ollama-"+serving.OllamaVersion)).
		WithEnvVariable("OLLAMA_CI_CACHE", "/var/cache/modelship-ollama").
		WithFile("/src/ollama-build.sh", m.Source.File(".ci/deps/ollama-build.sh")).
		WithExec([]string{"sh", "-c", `cp "$(bash /src/ollama-build.sh)" /out-ollama`}).
		File("/out-ollama")
}

// Tools is the container every stage runs modelship in: BaseImage with the
// binary at /usr/local/bin/modelship.
func (m *Modelship) Tools() *dagger.Container {
	return m.withCIEnv(dag.Container().From(m.BaseImage).
		WithFile("/usr/local/bin/modelship", m.Binary()).
		WithWorkdir("/work"))
}

// withCIEnv sets the CI run's variables (--ci-env) in ctr.
func (m *Modelship) withCIEnv(ctr *dagger.Container) *dagger.Container {
	for _, kv := range m.CiEnv {
		name, value, _ := strings.Cut(kv, "=")
		ctr = ctr.WithEnvVariable(name, value)
	}
	return ctr
}

// Inspect describes a checkpoint (format, parameters, dtype, digest) as
// modelship inspect --json prints it.
func (m *Modelship) Inspect(
	ctx context.Context,
	// Checkpoint directory (safetensors + config.json, or a GGUF file's directory).
	model *dagger.Directory,
) (string, error) {
	return m.Tools().
		WithMountedDirectory("/model", model).
		WithExec([]string{"modelship", "inspect", "/model", "--json", "--no-cache"}).
		Stdout(ctx)
}

// Digest returns the content digest (sha256:...) of a checkpoint.
func (m *Modelship) Digest(
	ctx context.Context,
	// Checkpoint directory.
	model *dagger.Directory,
) (string, error) {
	out, err := m.Inspect(ctx, model)
	if err != nil {
		return "", err
	}
	var info struct {
		Digest string `json:"digest"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		return "", fmt.Errorf("modelship inspect --json: %w", err)
	}
	if info.Digest == "" {
		return "", fmt.Errorf("modelship inspect --json reported no digest")
	}
	return info.Digest, nil
}
