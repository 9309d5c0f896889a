// Tests of the vllm module.
package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"dagger/tests/internal/dagger"
)

// Tests of the vllm module.
type Tests struct{}

// All checks how the vLLM container is built (entrypoint, arguments, port,
// model mount), with a stand-in image since no vLLM image can be pulled
// here.
func (t *Tests) All(
	ctx context.Context,
	// Image standing in for vLLM's (only its configuration is read).
	// +default="debian:bookworm-slim"
	image string,
) error {
	model := dag.Directory().WithNewFile("config.json", `{"architectures":["LlamaForCausalLM"]}`)
	ctr := dag.Vllm(dagger.VllmOpts{Image: image}).Container(model, dagger.VllmContainerOpts{
		ServedModelName: "tiny", Port: 8100, Args: []string{"--max-model-len", "4096"},
	})
	ep, err := ctr.Entrypoint(ctx)
	if err != nil {
		return err
	}
	if !slices.Equal(ep, []string{"vllm", "serve"}) {
		return fmt.Errorf("entrypoint %q, want vllm serve", ep)
	}
	args, err := ctr.DefaultArgs(ctx)
	if err != nil {
		return err
	}
	want := "/models/current --served-model-name tiny --host 0.0.0.0 --port 8100 --max-model-len 4096"
	if got := strings.Join(args, " "); got != want {
		return fmt.Errorf("args %q, want %q", got, want)
	}
	ports, err := ctr.ExposedPorts(ctx)
	if err != nil {
		return err
	}
	if len(ports) != 1 {
		return fmt.Errorf("%d exposed ports, want 1", len(ports))
	}
	if p, err := ports[0].Port(ctx); err != nil || p != 8100 {
		return fmt.Errorf("exposed port %d (%v), want 8100", p, err)
	}
	got, err := ctr.File("/models/current/config.json").Contents(ctx)
	if err != nil || !strings.Contains(got, "LlamaForCausalLM") {
		return fmt.Errorf("model not mounted at /models/current: %q %v", got, err)
	}
	return nil
}
