// GPUs for Dagger containers: check that the engine can give containers
// NVIDIA GPUs (failing early with a hint when it cannot), and report the
// GPUs a container sees with `modelship gpu`.
package main

import (
	"context"
	"errors"
	"fmt"

	"dagger/gpu/internal/dagger"
)

// Gpu attaches and reports NVIDIA GPUs.
type Gpu struct{}

// Hint is added to the engine's error when it cannot give containers GPUs.
const Hint = "hint: this Dagger engine cannot give containers GPUs. Start the engine with\n" +
	"_EXPERIMENTAL_DAGGER_GPU_SUPPORT=1 on a host with an NVIDIA driver and the\n" +
	"NVIDIA Container Toolkit (nvidia-container-runtime-hook), or run on the CPU\n" +
	"with --engine sim"

// Attach gives a container every GPU of the engine, or those listed.
func (g *Gpu) Attach(
	// Container to give GPUs to.
	ctr *dagger.Container,
	// GPU UUIDs; empty means all.
	// +optional
	gpus []string,
) *dagger.Container {
	if len(gpus) > 0 {
		return ctr.ExperimentalWithGPU(gpus)
	}
	return ctr.ExperimentalWithAllGPUs()
}

// Check runs a no-op in a container with the GPUs asked for and fails, with
// the engine's message and a hint, when the engine cannot attach them.
func (g *Gpu) Check(
	ctx context.Context,
	// GPU UUIDs; empty means all.
	// +optional
	gpus []string,
	// Image of the probe container.
	// +default="debian:bookworm-slim"
	image string,
) error {
	_, err := g.Attach(dag.Container().From(image), gpus).WithExec([]string{"true"}).Sync(ctx)
	if err == nil {
		return nil
	}
	msg := err.Error()
	var execErr *dagger.ExecError
	if errors.As(err, &execErr) {
		msg = execErr.Message()
	}
	return fmt.Errorf("GPUs requested but not available: %s\n%s", msg, Hint)
}

// Report runs `modelship gpu --json` in a container with the GPUs attached:
// driver and CUDA versions, and each GPU's UUID, name, memory and compute
// capability, as NVML sees them inside the container.
func (g *Gpu) Report(
	ctx context.Context,
	// The modelship binary (linux/amd64, cgo: it loads libnvidia-ml.so.1).
	modelship *dagger.File,
	// GPU UUIDs; empty means all.
	// +optional
	gpus []string,
	// Image the binary runs in (glibc).
	// +default="debian:bookworm-slim"
	image string,
) (string, error) {
	if err := g.Check(ctx, gpus, image); err != nil {
		return "", err
	}
	return g.Attach(dag.Container().From(image), gpus).
		WithFile("/usr/local/bin/modelship", modelship).
		WithExec([]string{"modelship", "gpu", "--json"}).
		Stdout(ctx)
}
