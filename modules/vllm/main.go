// Serve any checkpoint with vLLM's OpenAI-compatible server as a Dagger
// service, on all or some of the engine's GPUs.
package main

import (
	"strconv"

	"dagger/vllm/internal/dagger"
)

// Vllm serves checkpoints with vLLM.
type Vllm struct {
	// vLLM image.
	Image string
}

// New configures the vLLM image.
func New(
	// vLLM image (pinned).
	// +default="vllm/vllm-openai:v0.11.0"
	image string,
) *Vllm {
	return &Vllm{Image: image}
}

// Container is vLLM ready to serve the checkpoint (mounted read-only at
// /models/current) on port: GPUs attached, `vllm serve` arguments set.
func (v *Vllm) Container(
	// Checkpoint directory (config.json + safetensors, or a GGUF file's directory).
	model *dagger.Directory,
	// Model name clients send.
	// +default="current"
	servedModelName string,
	// Port of the OpenAI API.
	// +default=8000
	port int,
	// GPU UUIDs; empty means every GPU of the engine.
	// +optional
	gpus []string,
	// Extra vllm serve arguments, e.g. ["--max-model-len", "4096"].
	// +optional
	args []string,
) *dagger.Container {
	ctr := dag.Container().From(v.Image).
		WithMountedDirectory("/models/current", model).
		WithMountedCache("/root/.cache/huggingface", dag.CacheVolume("vllm-hf-cache")).
		WithEnvVariable("HF_HUB_OFFLINE", "1").
		WithExposedPort(port).
		WithEntrypoint([]string{"vllm", "serve"}).
		WithDefaultArgs(append([]string{"/models/current", "--served-model-name", servedModelName,
			"--host", "0.0.0.0", "--port", strconv.Itoa(port)}, args...))
	if len(gpus) > 0 {
		return ctr.ExperimentalWithGPU(gpus)
	}
	return ctr.ExperimentalWithAllGPUs()
}

// Serve is Container as a service: bind it to a client container and call
// http://NAME:PORT/v1/.
func (v *Vllm) Serve(
	// Checkpoint directory.
	model *dagger.Directory,
	// Model name clients send.
	// +default="current"
	servedModelName string,
	// Port of the OpenAI API.
	// +default=8000
	port int,
	// GPU UUIDs; empty means every GPU of the engine.
	// +optional
	gpus []string,
	// Extra vllm serve arguments.
	// +optional
	args []string,
) *dagger.Service {
	return v.Container(model, servedModelName, port, gpus, args).
		AsService(dagger.ContainerAsServiceOpts{UseEntrypoint: true})
}
