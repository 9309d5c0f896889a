package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"dagger/modelship/internal/dagger"

	"github.com/modelship/modelship/serving"
	"github.com/modelship/modelship/serving/stage"
)

// release is what a release takes besides the checkpoint: Release's
// arguments, Demo's settings.
type release struct {
	registry, engine                string
	gpus                            []string
	cases, prompts                  *dagger.File
	minTokensPerSec, maxLatencyP99  string
	benchConcurrency, benchRequests int
	username                        string
	password                        *dagger.Secret
	config                          *dagger.Directory
	configFile, stagingEnv          string
	productionEnv, productionURL    string
	deployTimeout                   string
}

// Release takes a checkpoint through the whole path in order: preflight,
// validate, benchmark, build, publish, verify (the published image, pulled
// back from the registry, served and smoke-tested), and, with the
// constructor's target (--docker or --kubeconfig), staging (deploy and its
// verify suite), production (deploy, verified, rolled back automatically
// on failure) and live (smoke test of production; on failure production
// is rolled back). The first failing stage stops it, so a model that fails
// validation is never published. Returns a directory with report.md (every
// stage, its result, time and figures), release.txt (the published
// ref@digest) and each stage's reports and logs.
//
// +cache="session"
func (m *Modelship) Release(
	ctx context.Context,
	// Checkpoint directory.
	model *dagger.Directory,
	// Repository to publish to, e.g. ghcr.io/acme/llm.
	registry string,
	// Inference engine: vllm (GPUs), sim (CPU simulator) or ollama (a GGUF
	// checkpoint on the CPU, a real engine).
	// +default="vllm"
	engine string,
	// GPU UUIDs to serve on; empty means every GPU the engine has.
	// +optional
	gpus []string,
	// Validation suite; default the bundled one.
	// +optional
	cases *dagger.File,
	// Benchmark prompts; default the bundled ones.
	// +optional
	prompts *dagger.File,
	// Gate: minimum output tokens per second.
	// +default="50"
	minTokensPerSec string,
	// Gate: maximum p99 end-to-end latency (seconds or a duration).
	// +default="2.0"
	maxLatencyP99 string,
	// Benchmark load: requests in flight at once (a CPU engine serves
	// few at a time; queued requests count in the latency).
	// +default=8
	benchConcurrency int,
	// Benchmark amount: requests measured.
	// +default=64
	benchRequests int,
	// Registry user name.
	// +optional
	username string,
	// Registry password or token.
	// +optional
	password *dagger.Secret,
	// Directory with the config (environments, suites); default this repository's.
	// +optional
	config *dagger.Directory,
	// Config file in config.
	// +default="modelship.yaml"
	configFile string,
	// Staging environment of the config.
	// +default="staging"
	stagingEnv string,
	// Production environment of the config.
	// +default="production"
	productionEnv string,
	// Production endpoint as the Docker host reaches it (Docker; on
	// Kubernetes the live check goes to the environment's url, else its
	// Service through the API server).
	// +default="http://127.0.0.1:8000"
	productionUrl string,
	// Bound on each deploy stage (staging, production, live), a Go
	// duration: a stage past it fails naming the step that did not finish.
	// +default="30m"
	deployTimeout string,
) (*dagger.Directory, error) {
	return m.release(ctx, model, release{registry, engine, gpus, cases, prompts, minTokensPerSec, maxLatencyP99,
		benchConcurrency, benchRequests, username, password, config, configFile, stagingEnv, productionEnv, productionUrl, deployTimeout})
}

// step is one stage of a release: its name and what it does, which
// returns the report row's detail. Stages run in order and the first
// failure stops the release (goreleaser's pipeline).
type step struct {
	name string
	run  func(ctx context.Context) (detail string, err error)
}

func (m *Modelship) release(ctx context.Context, model *dagger.Directory, r release) (*dagger.Directory, error) {
	cfg := m.configDir(r.config)
	if m.Config == nil {
		// The images this release builds run the engine with the serving
		// settings of the config it deploys with.
		m.Config = cfg.File(r.configFile)
	}
	out := dag.Directory()
	var (
		image *dagger.Container
		ref   string
	)
	// gate(dir) keeps a stage's reports and log under dir, and fails on
	// its verdict.
	gate := func(dir string) func(*StageResult, error) (string, error) {
		return func(res *StageResult, err error) (string, error) {
			if err != nil {
				return "", err
			}
			out = out.WithDirectory(dir, res.Reports).WithNewFile(dir+".log", res.Log)
			_, err = res.Check()
			return detail(res), err
		}
	}
	steps := []step{
		{"preflight", func(ctx context.Context) (string, error) {
			return gate("preflight")(m.Preflight(ctx, model, "", r.engine == serving.EngineVLLM, r.gpus, ""))
		}},
		{"validate", func(ctx context.Context) (string, error) {
			return gate("validate")(m.Validate(ctx, model, r.cases, r.engine, r.gpus, ""))
		}},
		{"benchmark", func(ctx context.Context) (string, error) {
			return gate("benchmark")(m.Benchmark(ctx, model, r.prompts, r.engine, r.gpus, r.minTokensPerSec, r.maxLatencyP99, r.benchRequests, r.benchConcurrency, nil, "0.1"))
		}},
		{"build", func(ctx context.Context) (string, error) {
			var err error
			if image, err = m.Build(ctx, model, r.engine, ""); err == nil {
				_, err = image.Sync(ctx)
			}
			return "serving image (" + r.engine + ")", err
		}},
		{"publish", func(ctx context.Context) (string, error) {
			var err error
			ref, err = m.Publish(ctx, image, r.registry, "", r.username, r.password, nil, r.engine, "")
			out = out.WithNewFile("release.txt", ref+"\n")
			return ref, err
		}},
		{"verify", func(ctx context.Context) (string, error) {
			return gate("verify")(m.Verify(ctx, ref, r.engine, r.gpus))
		}},
	}
	if m.Docker != nil || m.Kubeconfig != nil {
		liveURL := r.productionURL
		if m.Docker == nil {
			liveURL = ""
		}
		deployTo := func(env string) func(context.Context) (string, error) {
			return func(ctx context.Context) (string, error) {
				return gate("deploy-" + env)(m.Deploy(ctx, env, ref, cfg, r.configFile, "", r.deployTimeout))
			}
		}
		steps = append(steps, step{"staging", deployTo(r.stagingEnv)}, step{"production", deployTo(r.productionEnv)},
			step{"live", func(ctx context.Context) (string, error) {
				live, err := gate("live")(m.VerifyDeployment(ctx, ref, liveURL, r.productionEnv, cfg, r.configFile, "current", r.deployTimeout))
				if err == nil {
					return live, nil
				}
				back, rerr := gate("rollback")(m.Rollback(ctx, r.productionEnv, ref, cfg, r.configFile, "", r.deployTimeout))
				if rerr != nil {
					return "", fmt.Errorf("%w\nrollback failed too: %v", err, rerr)
				}
				return "", fmt.Errorf("%w\nrolled back: %s", err, back)
			}})
	}
	var report strings.Builder
	report.WriteString("# modelship release\n\n| stage | result | time | detail |\n|---|---|---|---|\n")
	for i, st := range steps {
		start := time.Now()
		detail, err := st.run(ctx)
		took := time.Since(start).Round(100 * time.Millisecond)
		if err != nil {
			fmt.Fprintf(&report, "| %s | **failed** | %s | %s |\n", st.name, took, oneLine(err.Error()))
			for _, rest := range steps[i+1:] {
				fmt.Fprintf(&report, "| %s | not run | | |\n", rest.name)
			}
			return nil, fmt.Errorf("release stopped at %s: %w\n\n%s", st.name, err, report.String())
		}
		fmt.Fprintf(&report, "| %s | ok | %s | %s |\n", st.name, took, oneLine(detail))
	}
	return out.WithNewFile("report.md", report.String()), nil
}

// detail is a stage's row in the release report: its message, for a
// deploy the release it made live, and for a benchmark what was measured (output tokens/s, end-to-end p99, TTFT
// p50/p99, requests that succeeded).
func detail(res *StageResult) string {
	r, err := stage.Read(strings.NewReader(res.Json))
	switch {
	case err != nil:
		return res.Message
	case r.Release != nil && r.Release.ID != "":
		return fmt.Sprintf("release %s live on %s (%s): %s", r.Release.ID, r.Release.Env, r.Release.Strategy, res.Message)
	case res.Stage != "bench" || r.Figures["requests"] == 0:
		return res.Message
	}
	f := r.Figures
	return fmt.Sprintf("%.1f tokens/s, p99 %.3fs, TTFT p50 %.0fms p99 %.0fms, %.0f/%.0f requests ok (%s)", f["output_tokens_per_s"],
		f["e2el_p99_s"], f["ttft_p50_s"]*1000, f["ttft_p99_s"]*1000, f["succeeded"], f["requests"], res.Message)
}

// Verify serves a published serving image, pulled back from its registry,
// and smoke-tests it: /v1/models lists the model, one generation succeeds,
// and /version reports the digest of its modelship.model-digest label.
func (m *Modelship) Verify(
	ctx context.Context,
	// Published image reference (repository@sha256:... or :tag).
	ref string,
	// Inference engine the image runs: vllm (GPUs), sim or ollama.
	// +default="vllm"
	engine string,
	// GPU UUIDs to serve on; empty means every GPU the engine has.
	// +optional
	gpus []string,
) (*StageResult, error) {
	img := dag.Container().From(ref)
	digest, err := img.Label(ctx, serving.LabelModelDigest)
	if err != nil {
		return nil, stageError("verify: pull "+ref, err)
	}
	if engine == serving.EngineVLLM {
		if err := m.checkGPUs(ctx, gpus); err != nil {
			return nil, err
		}
		img = withGPUs(img, gpus)
	}
	svc := img.WithEnvVariable(serving.EnvServedName, "current").WithEnvVariable("MODELSHIP_IMAGE", ref).
		AsService(dagger.ContainerAsServiceOpts{UseEntrypoint: true})
	tools := m.waitReady(m.Tools().WithServiceBinding(serviceHost, svc), engine)
	return runStage(ctx, "verify", tools, []string{"modelship", "smoke", "--endpoint", endpoint(), "--model", "current",
		"--expect-digest", digest, "--expect-image", ref}, "/reports")
}

// Demo runs Release on the bundled tiny GGUF model served by a real engine,
// Ollama (llama.cpp, on the CPU; built once from the Go module proxy), so a
// newcomer sees the whole pipeline on a laptop in one command: preflight,
// validation, benchmark (one request at a time; gates a shared laptop CPU
// meets, at least 10 output tokens/s and p99 within 10 s: the article's 50
// and 2 s are for GPU serving), image build, publish to the registry
// given, the published image served and smoke-tested, and with the
// constructor's --docker a staging and production deploy on that Docker
// engine (ports 8100 and 8000).
//
// +cache="session"
func (m *Modelship) Demo(
	ctx context.Context,
	// Repository to publish the demo image to (a local registry by default).
	// +default="localhost:5000/modelship/demo"
	registry string,
) (*dagger.Directory, error) {
	return m.release(ctx, m.Source.Directory("testdata/models/gguf-good"), release{registry: registry, engine: serving.EngineOllama,
		minTokensPerSec: "10", maxLatencyP99: "10", benchConcurrency: 1, benchRequests: 32, configFile: "modelship.yaml",
		stagingEnv: "staging", productionEnv: "production", productionURL: "http://127.0.0.1:8000", deployTimeout: "10m"})
}

func oneLine(s string) string {
	s = strings.ReplaceAll(strings.TrimSpace(s), "|", "\\|")
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	return s
}
