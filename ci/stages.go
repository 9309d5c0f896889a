package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"dagger/modelship/internal/dagger"

	"github.com/modelship/modelship/serving"
	"github.com/modelship/modelship/serving/stage"
)

// serviceHost is the name the model service is bound as in tools containers.
const serviceHost = "model"

// StageResult is how a stage ended, as `modelship STAGE --json` reported
// it, with its reports: returned also when the stage failed, so the
// reports of a failed gate can still be exported. Chain check to fail the
// call (a CI step) on a verdict other than passed.
type StageResult struct {
	// The stage: preflight, validate, bench, smoke, deploy or rollback.
	Stage string
	// How it ended: passed, failed, inconclusive, rolled_back or invalid.
	Verdict string
	// One line: what was decided and why, in numbers.
	Message string
	// The stage's reports (e.g. validation.json, junit.xml, summary.md), also when it failed.
	Reports *dagger.Directory
	// The stage's progress and human summary (its stderr).
	Log string
	// The stage result as modelship printed it (schema modelship.stage/v1).
	Json string
}

// Check returns the stage's verdict and message when it passed, and fails
// with them and its log when it did not: what a CI step chains.
func (r *StageResult) Check() (string, error) {
	if stage.Verdict(r.Verdict).OK() {
		return r.Stage + " " + r.Message, nil
	}
	return "", fmt.Errorf("%s %s: %s\n%s", r.Stage, r.Verdict, r.Message, r.Log)
}

// runStage runs modelship ARGS --json in ctr and reads the result it
// prints; the directory reports (created empty first) comes back with it.
// The error is set only when the stage printed no result (it could not run).
func runStage(ctx context.Context, name string, ctr *dagger.Container, args []string, reports string) (*StageResult, error) {
	ctr = ctr.WithDirectory(reports, dag.Directory()).
		WithExec(append(args, "--json"), dagger.ContainerWithExecOpts{Expect: dagger.ReturnTypeAny})
	out, err := ctr.Stdout(ctx)
	if err != nil {
		return nil, stageError(name, err)
	}
	log, err := ctr.Stderr(ctx)
	if err != nil {
		return nil, stageError(name, err)
	}
	res, err := stage.Read(strings.NewReader(out))
	if err != nil {
		code, _ := ctr.ExitCode(ctx)
		if code == 124 || code == 137 {
			return nil, fmt.Errorf("%s: timed out (%s; raise it with --timeout, --deploy-timeout on release):\n%s", name, strings.Join(args, " "), log)
		}
		return nil, fmt.Errorf("%s: %s exited %d without a result (%v):\n%s%s", name, strings.Join(args, " "), code, err, log, out)
	}
	return &StageResult{Stage: res.Stage, Verdict: string(res.Verdict), Message: res.Message, Reports: ctr.Directory(reports), Log: log, Json: strings.TrimSpace(out)}, nil
}

// Preflight inspects a checkpoint (format, parameters, dtype, content digest)
// and, when GPUs are requested or their memory is given, checks that vLLM fits
// on them, before any GPU minute is spent. Its reports hold preflight.json.
func (m *Modelship) Preflight(
	ctx context.Context,
	// Checkpoint directory.
	model *dagger.Directory,
	// Fit on hypothetical GPUs instead of visible ones, e.g. "80GiB" or "80GiB,80GiB".
	// +optional
	gpuMemory string,
	// Fit on the GPUs the engine gives a container (all of them, or those in gpus).
	// +optional
	useGpus bool,
	// GPU UUIDs to fit on with useGpus; empty means all.
	// +optional
	gpus []string,
	// Checkpoint digest (sha256:...) the model must have, e.g. the one a
	// registry announced for the revision that triggered the run; empty
	// checks nothing.
	// +optional
	expectDigest string,
) (*StageResult, error) {
	if expectDigest != "" {
		digest, err := m.Digest(ctx, model)
		if err != nil {
			return nil, stageError("preflight: digest", err)
		}
		if digest != expectDigest {
			return nil, fmt.Errorf("preflight: the checkpoint's digest is %s, the run was asked for %s: refusing to release another checkpoint than the one announced", digest, expectDigest)
		}
	}
	tools := m.Tools().WithMountedDirectory("/model", model).WithNewFile("/in/preflight.yaml", "model:\n  path: /model\n")
	args := []string{"modelship", "preflight", "/in/preflight.yaml", "--no-cache", "--report-dir", "/reports"}
	if gpuMemory != "" {
		args = append(args, "--gpu-memory", gpuMemory)
	} else if useGpus {
		if err := m.checkGPUs(ctx, gpus); err != nil {
			return nil, err
		}
		tools = withGPUs(tools, gpus)
		if len(gpus) > 0 {
			args = append(args, "--gpus", strings.Join(gpus, ","))
		}
	}
	return runStage(ctx, "preflight", tools, args, "/reports")
}

// Serve runs a checkpoint as a service on port 8000 (OpenAI API, /health,
// /ready, /version): the serving image of Build, with GPUs for engine "vllm"
// or on the CPU with modelship's simulator for engine "sim".
func (m *Modelship) Serve(
	ctx context.Context,
	// Checkpoint directory.
	model *dagger.Directory,
	// Inference engine: vllm (GPUs), sim (CPU simulator) or ollama (a GGUF
	// checkpoint on the CPU, a real engine).
	// +default="vllm"
	engine string,
	// GPU UUIDs to give vLLM; empty means every GPU the engine has.
	// +optional
	gpus []string,
	// Model name clients send.
	// +default="current"
	servedModelName string,
	// Extra engine arguments, e.g. ["--max-model-len", "4096"].
	// +optional
	engineArgs []string,
) (*dagger.Service, error) {
	if err := checkEngine(engine); err != nil {
		return nil, err
	}
	if engine == serving.EngineVLLM {
		if err := m.checkGPUs(ctx, gpus); err != nil {
			return nil, err
		}
	}
	img, contract, err := m.build(ctx, model, engine, "")
	if err != nil {
		return nil, err
	}
	img = img.WithEnvVariable(serving.EnvServedName, servedModelName)
	if len(engineArgs) > 0 {
		img = img.WithEnvVariable(serving.EnvNameOf("engine-args"), serving.JoinWords(engineArgs))
	}
	if engine == serving.EngineVLLM {
		img = withGPUs(img, gpus)
	}
	if contract.Settings.NeedsSharedMemory() {
		// Tensor-parallel workers exchange tensors through /dev/shm: a
		// memory-backed mount instead of the runtime's small default.
		img = img.WithMountedTemp("/dev/shm")
	}
	return img.AsService(dagger.ContainerAsServiceOpts{UseEntrypoint: true}), nil
}

// Validate serves the checkpoint and runs a validation suite against it:
// every case's assertions (keywords, regexes, JSON, ...), gated on the pass
// rate. Its reports: validation.json, junit.xml, summary.md.
func (m *Modelship) Validate(
	ctx context.Context,
	// Checkpoint directory.
	model *dagger.Directory,
	// Suite: the article's validation_cases.json or a YAML suite; default the bundled one.
	// +optional
	cases *dagger.File,
	// Inference engine: vllm (GPUs), sim (CPU simulator) or ollama (a GGUF
	// checkpoint on the CPU, a real engine).
	// +default="vllm"
	engine string,
	// GPU UUIDs to give vLLM; empty means every GPU the engine has.
	// +optional
	gpus []string,
	// Fraction of cases that must pass, e.g. "0.9" or "90%"; default the suite's.
	// +optional
	passThreshold string,
) (*StageResult, error) {
	if cases == nil {
		cases = m.Source.File("testdata/suites/validation_cases.json")
	}
	suite := "/in/cases" + suiteExt(ctx, cases)
	args := []string{"modelship", "validate", "--endpoint", endpoint(), "--model", "current", "--cases", suite, "--report-dir", "/reports"}
	if passThreshold != "" {
		args = append(args, "--pass-threshold", passThreshold)
	}
	if engine == serving.EngineOllama {
		// Ollama on a CPU serves one request at a time: cases queued
		// behind others would spend their timeout waiting.
		args = append(args, "--concurrency", "1")
	}
	tools, err := m.served(ctx, model, engine, gpus)
	if err != nil {
		return nil, err
	}
	return runStage(ctx, "validate", tools.WithFile(suite, cases), args, "/reports")
}

// Benchmark serves the checkpoint and load-tests it (TTFT, ITL, TPOT,
// latency percentiles, tokens/s, goodput), gated on tokens/s and p99
// latency (the article's 50 tokens/s and 2 s by default) and optionally on a
// baseline report. Its reports: bench.json, bench.md, bench.html, results.jsonl.
func (m *Modelship) Benchmark(
	ctx context.Context,
	// Checkpoint directory.
	model *dagger.Directory,
	// Prompts: JSON lines of {"prompt": ...} or {"messages": [...]}; default the bundled ones.
	// +optional
	prompts *dagger.File,
	// Inference engine: vllm (GPUs), sim (CPU simulator) or ollama (a GGUF
	// checkpoint on the CPU, a real engine).
	// +default="vllm"
	engine string,
	// GPU UUIDs to give vLLM; empty means every GPU the engine has.
	// +optional
	gpus []string,
	// Gate: minimum output tokens per second.
	// +default="50"
	minTokensPerSec string,
	// Gate: maximum p99 end-to-end latency, seconds or a duration (2.0, 1500ms).
	// +default="2.0"
	maxLatencyP99 string,
	// Requests measured.
	// +default=64
	requests int,
	// Requests in flight at once.
	// +default=8
	concurrency int,
	// A bench.json of the model in production: fail on a regression beyond maxRegression.
	// +optional
	baseline *dagger.File,
	// With baseline: how much worse p99 TTFT, p99 latency and tokens/s may be (0.1 = 10%).
	// +default="0.1"
	maxRegression string,
) (*StageResult, error) {
	if prompts == nil {
		prompts = m.Source.File("testdata/prompts/benchmark_prompts.jsonl")
	}
	args := []string{"modelship", "bench", "--endpoint", endpoint(), "--model", "current",
		"--prompts", "/in/prompts.jsonl", "--report-dir", "/reports",
		"--requests", strconv.Itoa(requests), "--concurrency", strconv.Itoa(concurrency),
		"--min-tokens-per-sec", minTokensPerSec, "--max-latency-p99", maxLatencyP99}
	tools, err := m.served(ctx, model, engine, gpus)
	if err != nil {
		return nil, err
	}
	tools = tools.WithFile("/in/prompts.jsonl", prompts)
	if baseline != nil {
		tools = tools.WithFile("/in/baseline.json", baseline)
		args = append(args, "--baseline", "/in/baseline.json", "--max-regression", maxRegression)
	}
	return runStage(ctx, "benchmark", tools, args, "/reports")
}

// served is a tools container with the checkpoint served as "model",
// after modelship wait-ready saw it ready.
func (m *Modelship) served(ctx context.Context, model *dagger.Directory, engine string, gpus []string) (*dagger.Container, error) {
	svc, err := m.Serve(ctx, model, engine, gpus, "current", nil)
	if err != nil {
		return nil, err
	}
	return m.waitReady(m.Tools().WithServiceBinding(serviceHost, svc), engine), nil
}

// waitReady waits, in tools, until the bound model service passes the
// smoke checks: up to 10 minutes for vllm (it loads weights), 2 for the
// simulator; never silent, and past the budget the stage fails (exit 124)
// with the last check's reason.
func (m *Modelship) waitReady(tools *dagger.Container, engine string) *dagger.Container {
	budget := "10m"
	if engine == serving.EngineSim {
		budget = "2m"
	}
	return tools.WithExec([]string{"modelship", "wait-ready", "--endpoint", endpoint(), "--model", "current", "--timeout", budget})
}

func endpoint() string { return fmt.Sprintf("http://%s:%d", serviceHost, serving.Port) }

// suiteExt keeps a YAML suite's extension so modelship reads it as YAML.
func suiteExt(ctx context.Context, f *dagger.File) string {
	name, _ := f.Name(ctx)
	for _, ext := range []string{".yaml", ".yml"} {
		if strings.HasSuffix(name, ext) {
			return ext
		}
	}
	return ".json"
}

func checkEngine(engine string) error {
	switch engine {
	case serving.EngineVLLM, serving.EngineSim, serving.EngineOllama:
		return nil
	}
	return fmt.Errorf("engine %q: want vllm, sim or ollama", engine)
}

// withGPUs gives ctr the GPUs listed, or all of the engine's (module gpu).
func withGPUs(ctr *dagger.Container, gpus []string) *dagger.Container {
	return dag.Gpu().Attach(ctr, dagger.GpuAttachOpts{Gpus: gpus})
}

// checkGPUs fails early, before a model is built or served, when the engine
// cannot attach the GPUs asked for: the engine's message and a hint
// (_EXPERIMENTAL_DAGGER_GPU_SUPPORT, NVIDIA Container Toolkit, --engine sim).
func (m *Modelship) checkGPUs(ctx context.Context, gpus []string) error {
	return dag.Gpu().Check(ctx, dagger.GpuCheckOpts{Gpus: gpus, Image: m.BaseImage})
}

// stageError names the stage in an engine error, keeping a failed exec's
// output.
func stageError(stage string, err error) error {
	var execErr *dagger.ExecError
	if errors.As(err, &execErr) {
		return fmt.Errorf("%s: %s\n%s%s", stage, execErr.Message(), execErr.Stdout, execErr.Stderr)
	}
	return fmt.Errorf("%s: %w", stage, err)
}
