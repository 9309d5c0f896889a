package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"dagger/modelship/internal/dagger"

	"github.com/modelship/modelship/serving"
)

// Build makes the serving image of a checkpoint: the base image (the
// config's serving.image when it names one; else vLLM for engine "vllm",
// BaseImage for "sim", BaseImage with the ollama binary of Ollama for
// "ollama"; the rest is identical), the weights
// in their own layer at /models/current (below the binary, so a change of
// serving code reuses the weight layer), and the environment, entrypoint,
// port and labels the serving contract lays out (serving.Contract.Layout):
// `modelship serve` as entrypoint on port 8000, the serving settings of the
// constructor's config as the environment that `modelship serve` turns
// into vLLM's flags, and labels
// org.opencontainers.image.{revision,source,created,base.name,base.digest},
// modelship.model-digest, modelship.engine, modelship.binary,
// modelship.engine-flags (the flags the settings become), and
// modelship.healthcheck: the health check command (JSON, Docker's
// HEALTHCHECK CMD form), `modelship smoke` against the image's own port.
// Dagger v0.19 images carry OCI configs, which have no HEALTHCHECK field
// (an imported Docker config loses it), so the command travels as a label
// for the deploy target to set on the containers it creates.
func (m *Modelship) Build(
	ctx context.Context,
	// Checkpoint directory.
	model *dagger.Directory,
	// Inference engine the image runs: vllm, sim or ollama (a GGUF
	// checkpoint).
	// +default="vllm"
	engine string,
	// Git commit the image is built from; default the repository's HEAD.
	// +optional
	revision string,
) (*dagger.Container, error) {
	ctr, _, err := m.build(ctx, model, engine, revision)
	return ctr, err
}

// build is Build, also returning the serving contract the image carries.
func (m *Modelship) build(ctx context.Context, model *dagger.Directory, engine, revision string) (*dagger.Container, *serving.Contract, error) {
	if err := checkEngine(engine); err != nil {
		return nil, nil, err
	}
	// The settings first: a setting vLLM would refuse stops the build
	// before anything is pulled or built.
	contract, err := m.contract(ctx)
	if err != nil {
		return nil, nil, err
	}
	digest, err := m.Digest(ctx, model)
	if err != nil {
		return nil, nil, stageError("build: model digest", err)
	}
	rev, created := m.commit(ctx)
	if revision != "" {
		rev = revision
	}
	// The config's serving.image (for the config's engine), else the
	// engine's default base.
	image := ""
	if contract.Engine == engine {
		image = contract.Image
	}
	baseRef := m.BaseImage
	switch {
	case image != "":
		baseRef = image
	case engine == serving.EngineVLLM:
		baseRef = m.VllmImage
	}
	base := dag.Container().From(baseRef)
	baseDigest, err := base.ImageRef(ctx)
	if err != nil {
		return nil, nil, stageError("build: base image "+baseRef, err)
	}
	if i := strings.LastIndex(baseDigest, "@"); i >= 0 {
		baseDigest = baseDigest[i+1:]
	}
	layout, err := contract.Layout(serving.ImageFacts{Engine: engine, ModelDigest: digest, Revision: rev, Created: created,
		BaseName: baseRef, BaseDigest: baseDigest})
	if err != nil {
		return nil, nil, err
	}
	if engine == serving.EngineOllama && image == "" {
		// Below the weights: a new model reuses the engine's layer. (An
		// image given, e.g. ollama/ollama:0.12.6, has its own ollama.)
		base = base.WithFile("/usr/local/bin/ollama", m.Ollama())
	}
	ctr := base.
		WithDirectory(serving.ModelDir, model).
		WithFile(serving.BinaryPath, m.Binary())
	for _, kv := range layout.Env {
		k, v, _ := strings.Cut(kv, "=")
		ctr = ctr.WithEnvVariable(k, v)
	}
	ctr = ctr.
		WithExposedPort(layout.Port).
		WithEntrypoint(layout.Entrypoint).
		WithDefaultArgs(nil)
	for _, l := range layout.Labels {
		ctr = ctr.WithLabel(l[0], l[1])
	}
	return ctr, contract, nil
}

// commit returns HEAD's commit and commit time (RFC 3339) from Git, or
// empty strings when there is no repository metadata.
func (m *Modelship) commit(ctx context.Context) (sha, created string) {
	if m.Git == nil {
		return "", ""
	}
	out, err := dag.Container().From(m.GoImage).
		WithMountedDirectory("/repo.git", m.Git).
		WithExec([]string{"git", "--git-dir", "/repo.git", "log", "-1", "--format=%H %cI", "HEAD"}).
		Stdout(ctx)
	if err != nil {
		return "", ""
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return "", ""
	}
	return f[0], f[1]
}

// Publish pushes a serving image to a registry under two tags, the git
// commit (org.opencontainers.image.revision) and the model digest
// (modelship.model-digest, as sha256-HEX), plus tag when given; returns
// the pushed image as repository@sha256:digest. The image is the one
// given, or built from model here (as build does), which is how a CI job
// builds and pushes in one call.
func (m *Modelship) Publish(
	ctx context.Context,
	// Serving image (from build); or give model instead.
	// +optional
	image *dagger.Container,
	// Repository to push to, e.g. ghcr.io/acme/llm or 127.0.0.1:5000/acme/llm.
	registry string,
	// An extra tag, e.g. a version.
	// +optional
	tag string,
	// Registry user name.
	// +optional
	username string,
	// Registry password or token.
	// +optional
	password *dagger.Secret,
	// Checkpoint directory to build the serving image from, instead of image.
	// +optional
	model *dagger.Directory,
	// Inference engine of the image built from model: vllm or sim.
	// +default="vllm"
	engine string,
	// Git commit the image built from model is built from; default the repository's HEAD.
	// +optional
	revision string,
) (string, error) {
	switch {
	case image != nil && model != nil:
		return "", fmt.Errorf("publish: give image or model (to build the image from), not both")
	case image == nil && model == nil:
		return "", fmt.Errorf("publish: give image (a serving image from build) or model (a checkpoint directory to build it from)")
	case model != nil:
		var err error
		if image, err = m.Build(ctx, model, engine, revision); err != nil {
			return "", err
		}
	}
	rev, err := image.Label(ctx, serving.LabelRevision)
	if err != nil {
		return "", stageError("publish", err)
	}
	digest, err := image.Label(ctx, serving.LabelModelDigest)
	if err != nil {
		return "", stageError("publish", err)
	}
	var tags []string
	if rev != "" {
		tags = append(tags, rev)
	}
	if digest != "" {
		tags = append(tags, strings.ReplaceAll(digest, ":", "-"))
	}
	if tag != "" {
		tags = append(tags, tag)
	}
	if len(tags) == 0 {
		return "", fmt.Errorf("publish: the image has neither %s nor %s label and no tag was given", serving.LabelRevision, serving.LabelModelDigest)
	}
	if username != "" && password != nil {
		host, _, _ := strings.Cut(registry, "/")
		image = image.WithRegistryAuth(host, username, password)
	}
	var pushed string
	for _, t := range tags {
		ref, err := image.Publish(ctx, registry+":"+t)
		if err != nil {
			return "", stageError("publish "+registry+":"+t, err)
		}
		pushed = ref
	}
	at := strings.LastIndex(pushed, "@")
	if at < 0 {
		return "", fmt.Errorf("publish: registry answered %q, want a reference with a digest", pushed)
	}
	return registry + pushed[at:], nil
}

// contract reads the serving settings of the constructor's config through
// the binary (which checks them against vLLM's recorded flags); with no
// config, the contract's defaults: vLLM's own.
func (m *Modelship) contract(ctx context.Context) (*serving.Contract, error) {
	if m.Config == nil {
		return &serving.Contract{ServedName: serving.DefaultServedName,
			Argv: serving.Settings{}.Argv(serving.ModelDir, []string{serving.DefaultServedName}, "127.0.0.1", serving.EnginePort)}, nil
	}
	out, err := m.Tools().
		WithFile("/in/modelship.yaml", m.Config).
		WithExec([]string{"modelship", "config", "serving", "/in/modelship.yaml"}).
		Stdout(ctx)
	if err != nil {
		return nil, stageError("build: serving settings of the config", err)
	}
	var c serving.Contract
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		return nil, fmt.Errorf("modelship config serving: %w", err)
	}
	return &c, nil
}
