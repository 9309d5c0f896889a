// The modelship module's own tests: every public function of ci/ called
// at least once on the engine, on the repository's tiny models (engine
// sim, on the CPU), asserting what a user of `dagger call` would check.
package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"dagger/tests/internal/dagger"
)

// Tests of the modelship module.
type Tests struct{}

// All runs every test; the first failure ends it, naming the function.
func (t *Tests) All(
	ctx context.Context,
	// This repository's good model.
	// +defaultPath="/testdata/models/good"
	good *dagger.Directory,
	// This repository's regressed model (fails validation).
	// +defaultPath="/testdata/models/regressed"
	regressed *dagger.Directory,
	// Repository the release test publishes to (a registry the engine reaches).
	// +default="localhost:5000/modelship-tests/good"
	registry string,
) error {
	for _, test := range []struct {
		name string
		run  func(context.Context) error
	}{
		{"stages", func(ctx context.Context) error { return stages(ctx, good, regressed) }},
		{"image", func(ctx context.Context) error { return image(ctx, good) }},
		{"release", func(ctx context.Context) error { return release(ctx, good, registry) }},
		{"targets", targets},
	} {
		if err := test.run(ctx); err != nil {
			return fmt.Errorf("%s: %w", test.name, err)
		}
	}
	return nil
}

// stages: preflight, validate and benchmark return their verdict and
// reports, a failed gate too; check fails on it.
func stages(ctx context.Context, good, regressed *dagger.Directory) error {
	ms := dag.Modelship()
	sim := dagger.ModelshipValidateOpts{Engine: "sim"}
	if err := expect(ctx, ms.Preflight(good), "passed", "preflight.json"); err != nil {
		return fmt.Errorf("preflight: %w", err)
	}
	if _, err := ms.Preflight(good, dagger.ModelshipPreflightOpts{ExpectDigest: "sha256:" + strings.Repeat("0", 64)}).Verdict(ctx); err == nil || !strings.Contains(err.Error(), "refusing to release another checkpoint") {
		return fmt.Errorf("preflight --expect-digest of another digest: %v, want a refusal", err)
	}
	if err := expect(ctx, ms.Validate(good, sim), "passed", "validation.json"); err != nil {
		return fmt.Errorf("validate good: %w", err)
	}
	failed := ms.Validate(regressed, sim)
	if err := expect(ctx, failed, "failed", "summary.md"); err != nil {
		return fmt.Errorf("validate regressed: %w", err)
	}
	if _, err := failed.Check(ctx); err == nil || !strings.Contains(err.Error(), "validate failed") {
		return fmt.Errorf("check of a failed validation: %v, want an error", err)
	}
	bench := ms.Benchmark(good, dagger.ModelshipBenchmarkOpts{Engine: "sim", Requests: 16})
	if err := expect(ctx, bench, "passed", "bench.json"); err != nil {
		return fmt.Errorf("benchmark: %w", err)
	}
	if js, err := bench.JSON(ctx); err != nil || !strings.Contains(js, `"output_tokens_per_s"`) {
		return fmt.Errorf("benchmark json %q (%v), want its figures", js, err)
	}
	return nil
}

// expect checks a stage's verdict, message and that its reports hold file.
func expect(ctx context.Context, res *dagger.ModelshipStageResult, verdict, file string) error {
	got, err := res.Verdict(ctx)
	if err != nil {
		return err
	}
	msg, _ := res.Message(ctx)
	if got != verdict || !strings.HasPrefix(msg, verdict) {
		log, _ := res.Log(ctx)
		return fmt.Errorf("verdict %s (%q), want %s\n%s", got, msg, verdict, log)
	}
	files, err := res.Reports().Entries(ctx)
	if err != nil || file != "" && !slices.Contains(files, file) {
		return fmt.Errorf("reports %v (%v), want %s", files, err, file)
	}
	return nil
}

// image: the binary, the tools, inspect and digest, the serving image and
// the service it runs.
func image(ctx context.Context, good *dagger.Directory) error {
	ms := dag.Modelship()
	if size, err := ms.Binary().Size(ctx); err != nil || size < 1<<20 {
		return fmt.Errorf("binary: %d bytes (%v)", size, err)
	}
	if out, err := ms.Tools().WithExec([]string{"modelship", "version"}).Stdout(ctx); err != nil || out == "" {
		return fmt.Errorf("tools: modelship version: %q (%v)", out, err)
	}
	info, err := ms.Inspect(ctx, good)
	if err != nil || !strings.Contains(info, `"format"`) {
		return fmt.Errorf("inspect: %.200s (%v)", info, err)
	}
	digest, err := ms.Digest(ctx, good)
	if err != nil || !strings.HasPrefix(digest, "sha256:") {
		return fmt.Errorf("digest %q (%v)", digest, err)
	}
	img := ms.Build(good, dagger.ModelshipBuildOpts{Engine: "sim"})
	if got, err := img.Label(ctx, "modelship.model-digest"); err != nil || got != digest {
		return fmt.Errorf("build: label modelship.model-digest %q (%v), want %s", got, err, digest)
	}
	svc := ms.Serve(good, dagger.ModelshipServeOpts{Engine: "sim"})
	out, err := ms.Tools().WithServiceBinding("model", svc).
		WithExec([]string{"modelship", "wait-ready", "--endpoint", "http://model:8000", "--model", "current", "--timeout", "2m"}).
		WithExec([]string{"modelship", "smoke", "--endpoint", "http://model:8000", "--model", "current"}).Stdout(ctx)
	if err != nil || !strings.Contains(out, "passed") {
		return fmt.Errorf("serve: smoke %q (%v)", out, err)
	}
	return nil
}

// release: the good model through every stage without a target, its
// published image verified again.
func release(ctx context.Context, good *dagger.Directory, registry string) error {
	ms := dag.Modelship()
	out := ms.Release(good, registry, dagger.ModelshipReleaseOpts{Engine: "sim", BenchRequests: 16})
	report, err := out.File("report.md").Contents(ctx)
	if err != nil {
		return err
	}
	for _, st := range []string{"preflight", "validate", "benchmark", "build", "publish", "verify"} {
		if !strings.Contains(report, "| "+st+" | ok |") {
			return fmt.Errorf("report: stage %s not ok:\n%s", st, report)
		}
	}
	ref, err := out.File("release.txt").Contents(ctx)
	if err != nil || !strings.Contains(ref, "@sha256:") {
		return fmt.Errorf("release.txt %q (%v)", ref, err)
	}
	if err := expect(ctx, ms.Verify(strings.TrimSpace(ref), dagger.ModelshipVerifyOpts{Engine: "sim"}), "passed", ""); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	pushed, err := ms.Publish(ctx, registry, dagger.ModelshipPublishOpts{Model: good, Engine: "sim", Tag: "tests"})
	if err != nil || !strings.HasPrefix(pushed, registry+"@sha256:") {
		return fmt.Errorf("publish: %q (%v)", pushed, err)
	}
	return nil
}

// targets: the deploy stages refuse to run without a target, or with two,
// before anything is deployed. (Deploys to Docker and Kubernetes are
// tested end to end in internal/e2e.)
func targets(ctx context.Context) error {
	ms := dag.Modelship()
	for name, err := range map[string]error{
		"deploy":            check(ctx, ms.Deploy("staging", "x")),
		"rollback":          check(ctx, ms.Rollback("staging", "x")),
		"verify-deployment": check(ctx, ms.VerifyDeployment("x", dagger.ModelshipVerifyDeploymentOpts{Env: "staging"})),
	} {
		if err == nil || !strings.Contains(err.Error(), "no target: give docker") {
			return fmt.Errorf("%s without a target: %v, want the reason", name, err)
		}
	}
	if _, err := ms.Ollama().Name(ctx); err != nil {
		return fmt.Errorf("ollama: %w", err)
	}
	if _, err := ms.Demo(dagger.ModelshipDemoOpts{Registry: "localhost:5000/modelship-tests/demo"}).File("report.md").Contents(ctx); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}

func check(ctx context.Context, res *dagger.ModelshipStageResult) error {
	_, err := res.Check(ctx)
	return err
}
