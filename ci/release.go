package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"dagger/modelship/internal/dagger"

	"github.com/modelship/modelship/serving"
)

// stage is one step of a release: a name and what it does. Stages run in
// order and the first failure stops the release (goreleaser's pipeline).
type stage struct {
	name string
	run  func(ctx context.Context) (detail string, err error)
}

// Release takes a checkpoint through the whole path in order: preflight,
// validate, benchmark, build, publish, verify (the published image, pulled
// back from the registry, served and smoke-tested: model listed, one
// generation, /version reporting the model digest), and, when a target is
// given (a Docker engine or a Kubernetes cluster), staging (deploy + the
// integration suite through the staging endpoint), production (deploy,
// verified, rolled back automatically on failure) and live (smoke test of
// production; on failure production is rolled back). The first failing stage stops it: nothing
// after it runs, so a model that fails validation is never published.
// Returns a directory with report.md (every stage, its result and time),
// release.txt (the published ref@digest) and each stage's reports and logs.
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
	// Docker engine to deploy to (its socket); without it or a kubeconfig
	// the release ends at verify.
	// +optional
	docker *dagger.Socket,
	// Path of that socket on the Docker host.
	// +default="/var/run/docker.sock"
	dockerSocketPath string,
	// Kubernetes cluster to deploy to: a kubeconfig with its credentials
	// inline (kubectl config view --raw --minify --flatten), e.g.
	// --kubeconfig file:$HOME/.kube/config; mounted as a secret.
	// +optional
	kubeconfig *dagger.Secret,
	// The same kubeconfig as a file.
	// +optional
	kubeconfigFile *dagger.File,
	// The Kubernetes API server's URL as the pipeline's containers reach it,
	// instead of the kubeconfig's (one naming 127.0.0.1 means the container
	// itself), e.g. https://10.0.0.5:6443.
	// +optional
	kubeServer string,
	// Secrets the config's env: and file: references name (the
	// notifications'), e.g. --secrets env:MODELSHIP_WEBHOOK_SECRET: the
	// deploy stages' modelship gets each under the same name. Never logged.
	// +optional
	secrets []*dagger.Secret,
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
	var tg *target
	if docker != nil || kubeconfig != nil || kubeconfigFile != nil || kubeServer != "" || len(secrets) > 0 {
		var err error
		if tg, err = newTarget(ctx, "release", docker, dockerSocketPath, kubeconfig, kubeconfigFile, kubeServer, secrets); err != nil {
			return nil, err
		}
	}
	cfg := m.configDir(config)
	if m.Config == nil {
		// The images this release builds run the engine with the serving
		// settings of the config it deploys with.
		m.Config = cfg.File(configFile)
	}
	out := dag.Directory()
	var (
		image *dagger.Container
		ref   string
	)
	stages := []stage{
		{"preflight", func(ctx context.Context) (string, error) {
			d, err := m.Preflight(ctx, model, "", engine == "vllm", gpus, "")
			if err != nil {
				return "", err
			}
			out = out.WithDirectory("preflight", d)
			digest, err := m.Digest(ctx, model)
			return "model " + digest, err
		}},
		{"validate", func(ctx context.Context) (string, error) {
			d, err := m.Validate(ctx, model, cases, engine, gpus, "")
			if err != nil {
				return "", err
			}
			out = out.WithDirectory("validate", d)
			return firstLine(ctx, d.File("summary.md")), nil
		}},
		{"benchmark", func(ctx context.Context) (string, error) {
			d, err := m.Benchmark(ctx, model, prompts, engine, gpus, minTokensPerSec, maxLatencyP99, benchRequests, benchConcurrency, nil, "0.1")
			if err != nil {
				return "", err
			}
			out = out.WithDirectory("benchmark", d)
			return benchFigures(ctx, d.File("bench.json"), minTokensPerSec, maxLatencyP99), nil
		}},
		{"build", func(ctx context.Context) (string, error) {
			var err error
			image, err = m.Build(ctx, model, engine, "")
			if err != nil {
				return "", err
			}
			_, err = image.Sync(ctx)
			return "serving image (" + engine + ")", err
		}},
		{"publish", func(ctx context.Context) (string, error) {
			var err error
			ref, err = m.Publish(ctx, image, registry, "", username, password, nil, engine, "")
			out = out.WithNewFile("release.txt", ref+"\n")
			return ref, err
		}},
		{"verify", func(ctx context.Context) (string, error) {
			return m.Verify(ctx, ref, engine, gpus)
		}},
	}
	if tg != nil {
		liveURL := productionUrl
		if tg.docker == nil {
			liveURL = ""
		}
		deployTo := func(env string) func(context.Context) (string, error) {
			return func(ctx context.Context) (string, error) {
				log, err := m.deploy(ctx, tg, env, ref, cfg, configFile, "", deployTimeout)
				out = out.WithNewFile("deploy-"+env+".log", log)
				return lastLine(log), err
			}
		}
		stages = append(stages,
			stage{"staging", deployTo(stagingEnv)},
			stage{"production", deployTo(productionEnv)},
			stage{"live", func(ctx context.Context) (string, error) {
				smoke, err := m.verifyDeployment(ctx, tg, ref, liveURL, productionEnv, cfg, configFile, "current", deployTimeout)
				if err == nil {
					return oneLine(smokeLine(smoke)), nil
				}
				back, rerr := m.rollback(ctx, tg, productionEnv, ref, cfg, configFile, "", deployTimeout)
				if rerr != nil {
					return "", fmt.Errorf("%w\nrollback failed too: %v", err, rerr)
				}
				return "", fmt.Errorf("%w\nrolled back: %s", err, lastLine(back))
			}},
		)
	}
	var report strings.Builder
	report.WriteString("# modelship release\n\n| stage | result | time | detail |\n|---|---|---|---|\n")
	for i, st := range stages {
		start := time.Now()
		detail, err := st.run(ctx)
		took := time.Since(start).Round(100 * time.Millisecond)
		if err != nil {
			fmt.Fprintf(&report, "| %s | **failed** | %s | %s |\n", st.name, took, oneLine(err.Error()))
			for _, rest := range stages[i+1:] {
				fmt.Fprintf(&report, "| %s | not run | | |\n", rest.name)
			}
			return nil, fmt.Errorf("release stopped at %s: %w\n\n%s", st.name, err, report.String())
		}
		fmt.Fprintf(&report, "| %s | ok | %s | %s |\n", st.name, took, oneLine(detail))
	}
	return out.WithNewFile("report.md", report.String()), nil
}

// Verify serves a published serving image, pulled back from its registry,
// and smoke-tests it: /v1/models lists the model, one generation succeeds,
// and /version reports the digest of its modelship.model-digest label.
// Returns modelship smoke's report.
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
) (string, error) {
	img := dag.Container().From(ref)
	digest, err := img.Label(ctx, serving.LabelModelDigest)
	if err != nil {
		return "", stageError("verify: pull "+ref, err)
	}
	if engine == "vllm" {
		if err := m.checkGPUs(ctx, gpus); err != nil {
			return "", err
		}
		img = withGPUs(img, gpus)
	}
	svc := img.WithEnvVariable("MODELSHIP_SERVED_MODEL_NAME", "current").
		WithEnvVariable("MODELSHIP_IMAGE", ref).
		AsService(dagger.ContainerAsServiceOpts{UseEntrypoint: true})
	args := []string{"modelship", "smoke", "--endpoint", endpoint(), "--model", "current", "--expect-digest", digest, "--expect-image", ref}
	tools := m.Tools().WithServiceBinding(serviceHost, svc).WithExec(waitReady(engine))
	out, code, err := run(ctx, tools, args)
	if err != nil {
		return "", stageError("verify", err)
	}
	if code != 0 {
		return "", fmt.Errorf("verify: %s failed its smoke test (exit %d):\n%s", ref, code, out)
	}
	return out, nil
}

// Demo runs Release on the bundled tiny GGUF model served by a real engine,
// Ollama (llama.cpp, on the CPU; built once from the Go module proxy), so a
// newcomer sees the whole pipeline on a laptop in one command: preflight,
// validation, benchmark (one request at a time; gates a shared laptop CPU
// meets, at least 10 output tokens/s and p99 within 10 s: the article's 50
// and 2 s are for GPU serving),
// image build, publish to the registry given, the published image served
// and smoke-tested, and with --docker a staging and production deploy on
// that Docker engine (ports 8100 and 8000).
//
// +cache="session"
func (m *Modelship) Demo(
	ctx context.Context,
	// Repository to publish the demo image to (a local registry by default).
	// +default="localhost:5000/modelship/demo"
	registry string,
	// Docker engine to deploy to, e.g. --docker /var/run/docker.sock.
	// +optional
	docker *dagger.Socket,
	// Path of that socket on the Docker host.
	// +default="/var/run/docker.sock"
	dockerSocketPath string,
) (*dagger.Directory, error) {
	return m.Release(ctx, m.Source.Directory("testdata/models/gguf-good"), registry, serving.EngineOllama, nil, nil, nil, "10", "10", 1, 32, "", nil,
		docker, dockerSocketPath, nil, nil, "", nil, nil, "modelship.yaml", "staging", "production", "http://127.0.0.1:8000", "10m")
}

// lastLine is the last line of a deploy log that says what happened (the
// outcome, not its timings or a warning printed after it).
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l != "" && !strings.HasPrefix(l, "ready after") && !strings.HasPrefix(l, "modelship: warning:") {
			return l
		}
	}
	return ""
}

// smokeLine is modelship smoke's headline ("smoke URL (model M)") from a
// log that may carry other lines before it.
func smokeLine(log string) string {
	for _, l := range strings.Split(log, "\n") {
		if strings.HasPrefix(l, "smoke ") {
			return l
		}
	}
	return log
}

func firstLine(ctx context.Context, f *dagger.File) string {
	s, err := f.Contents(ctx)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(s, "\n") {
		if line = strings.Trim(strings.TrimSpace(line), "#* "); line != "" {
			return line
		}
	}
	return ""
}

func oneLine(s string) string {
	s = strings.ReplaceAll(strings.TrimSpace(s), "|", "\\|")
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	return s
}

// benchFigures is the benchmark's row of the release report: what was
// measured (output tokens/s, end-to-end p99, TTFT p50/p99, requests that
// succeeded), beside the gates it passed.
func benchFigures(ctx context.Context, f *dagger.File, minTokensPerSec, maxLatencyP99 string) string {
	gates := fmt.Sprintf("gates >= %s tokens/s, p99 <= %s", minTokensPerSec, maxLatencyP99)
	data, err := f.Contents(ctx)
	if err != nil {
		return gates
	}
	var rep struct {
		Summary *struct {
			Requests           int     `json:"requests"`
			Succeeded          int     `json:"succeeded"`
			OutputTokensPerSec float64 `json:"output_tokens_per_s"`
			TTFT               struct {
				Median float64 `json:"median"`
				P99    float64 `json:"p99"`
			} `json:"ttft"`
			E2EL struct {
				P99 float64 `json:"p99"`
			} `json:"e2el"`
		} `json:"summary"`
	}
	if json.Unmarshal([]byte(data), &rep) != nil || rep.Summary == nil {
		return gates
	}
	sm := rep.Summary
	return fmt.Sprintf("%.1f tokens/s, p99 %.3fs, TTFT p50 %.0fms p99 %.0fms, %d/%d requests ok (%s)",
		sm.OutputTokensPerSec, sm.E2EL.P99, sm.TTFT.Median*1000, sm.TTFT.P99*1000, sm.Succeeded, sm.Requests, gates)
}
