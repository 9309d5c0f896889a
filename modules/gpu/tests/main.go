// Tests of the gpu module.
package main

import (
	"context"
	"fmt"
	"strings"
)

// Tests of the gpu module.
type Tests struct{}

// All runs every test. On an engine without GPU support, Check must fail
// with the engine's message and the hint; with support it must pass.
func (t *Tests) All(
	ctx context.Context,
	// Set when the engine has GPU support (_EXPERIMENTAL_DAGGER_GPU_SUPPORT).
	// +optional
	engineHasGpus bool,
) error {
	err := dag.Gpu().Check(ctx)
	if engineHasGpus {
		return err
	}
	if err == nil {
		return fmt.Errorf("check passed on an engine without GPU support")
	}
	for _, want := range []string{"GPU support is not enabled", "_EXPERIMENTAL_DAGGER_GPU_SUPPORT", "NVIDIA Container Toolkit"} {
		if !strings.Contains(err.Error(), want) {
			return fmt.Errorf("check error lacks %q: %v", want, err)
		}
	}
	return nil
}
