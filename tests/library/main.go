// A module that uses modelship as a library, the way another repository
// would after `dagger install github.com/modelship/modelship`: it validates,
// benchmarks and builds its own model with modelship's functions.
package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"dagger/library/internal/dagger"
)

// Library tests modelship used as a dependency.
type Library struct{}

// All runs every test: validate, benchmark and build of a good model
// succeed with their reports and labels; validate of a regressed model
// fails, with its reports.
func (l *Library) All(
	ctx context.Context,
	// This repository's good model.
	// +defaultPath="/testdata/models/good"
	good *dagger.Directory,
	// This repository's regressed model.
	// +defaultPath="/testdata/models/regressed"
	regressed *dagger.Directory,
) error {
	ms := dag.Modelship()
	sim := dagger.ModelshipValidateOpts{Engine: "sim"}

	reports, err := ms.Validate(good, sim).Reports().Entries(ctx)
	if err != nil {
		return fmt.Errorf("validate good model: %w", err)
	}
	if !slices.Contains(reports, "validation.json") || !slices.Contains(reports, "junit.xml") {
		return fmt.Errorf("validate reports %v, want validation.json and junit.xml", reports)
	}

	// A failed gate still returns its reports; check fails on it.
	failed := ms.Validate(regressed, sim)
	if verdict, err := failed.Verdict(ctx); err != nil || verdict != "failed" {
		return fmt.Errorf("validate of the regressed model: verdict %q (%v), want failed", verdict, err)
	}
	if reports, err := failed.Reports().Entries(ctx); err != nil || !slices.Contains(reports, "summary.md") {
		return fmt.Errorf("validate of the regressed model: reports %v (%v), want summary.md", reports, err)
	}
	if _, err := failed.Check(ctx); err == nil || !strings.Contains(err.Error(), "validate failed") {
		return fmt.Errorf("check of the regressed model's validation: %v, want a failed gate", err)
	}

	bench, err := ms.Benchmark(good, dagger.ModelshipBenchmarkOpts{Engine: "sim", Requests: 16}).Reports().File("bench.json").Contents(ctx)
	if err != nil {
		return fmt.Errorf("benchmark: %w", err)
	}
	if !strings.Contains(bench, "ttft") {
		return fmt.Errorf("bench.json lacks TTFT figures: %.200s", bench)
	}

	img := ms.Build(good, dagger.ModelshipBuildOpts{Engine: "sim", Revision: "0123456789abcdef"})
	digest, err := ms.Digest(ctx, good)
	if err != nil {
		return err
	}
	for label, want := range map[string]string{
		"modelship.model-digest":            digest,
		"org.opencontainers.image.revision": "0123456789abcdef",
		"modelship.engine":                  "sim",
	} {
		got, err := img.Label(ctx, label)
		if err != nil || got != want {
			return fmt.Errorf("label %s = %q (%v), want %q", label, got, err, want)
		}
	}
	ep, err := img.Entrypoint(ctx)
	if err != nil || !slices.Equal(ep, []string{"/usr/local/bin/modelship", "serve"}) {
		return fmt.Errorf("entrypoint %q (%v), want modelship serve", ep, err)
	}
	files, err := img.Directory("/models/current").Entries(ctx)
	if err != nil || !slices.Contains(files, "model.safetensors") {
		return fmt.Errorf("/models/current holds %v (%v), want the weights", files, err)
	}
	return nil
}
