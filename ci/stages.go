package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"dagger/modelship/internal/dagger"

	"github.com/modelship/modelship/serving"
)

// serviceHost is the name the model service is bound as in tools containers.
const serviceHost = "model"

// Preflight inspects a checkpoint (format, parameters, dtype, content digest)
// and, when GPUs are requested or their memory is given, checks that vLLM fits
// on them, before any GPU minute is spent. The report directory holds
// inspect.json, and fit.json when a fit was checked.
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
) (*dagger.Directory, error) {
	tools := m.Tools().WithMountedDirectory("/model", model)
	inspect, err := tools.WithExec([]string{"modelship", "inspect", "/model", "--json", "--no-cache"}).Stdout(ctx)
	if err != nil {
		return nil, stageError("preflight: inspect", err)
	}
	if expectDigest != "" {
		var info struct {
			Digest string `json:"digest"`
		}
		if err := json.Unmarshal([]byte(inspect), &info); err != nil || info.Digest == "" {
			return nil, fmt.Errorf("preflight: reading the checkpoint's digest: %v", err)
		}
		if info.Digest != expectDigest {
			return nil, fmt.Errorf("preflight: the checkpoint's digest is %s, the run was asked for %s: refusing to release another checkpoint than the one announced", info.Digest, expectDigest)
		}
	}
	report := dag.Directory().WithNewFile("inspect.json", inspect)
	if gpuMemory == "" && !useGpus {
		return report, nil
	}
	args := []string{"modelship", "fit", "/model", "--json"}
	if gpuMemory != "" {
		args = append(args, "--gpu-memory", gpuMemory)
	} else {
		if err := m.checkGPUs(ctx, gpus); err != nil {
			return nil, err
		}
		tools = withGPUs(tools, gpus)
		if len(gpus) > 0 {
			args = append(args, "--gpus", strings.Join(gpus, ","))
		}
	}
	fit, code, err := run(ctx, tools, args)
	if err != nil {
		return nil, stageError("preflight: fit", err)
	}
	if code != 0 {
		return nil, fmt.Errorf("preflight: the model does not fit (modelship fit exit %d):\n%s", code, fit)
	}
	return report.WithNewFile("fit.json", fit), nil
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
	ctr, err := m.serving(ctx, model, engine, gpus, servedModelName, engineArgs)
	if err != nil {
		return nil, err
	}
	return ctr.AsService(dagger.ContainerAsServiceOpts{UseEntrypoint: true}), nil
}

// serving is the serving image with GPUs attached (engine vllm) and the
// served model name and engine arguments set.
func (m *Modelship) serving(ctx context.Context, model *dagger.Directory, engine string, gpus []string, servedModelName string, engineArgs []string) (*dagger.Container, error) {
	if err := checkEngine(engine); err != nil {
		return nil, err
	}
	if engine == "vllm" {
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
	if engine == "vllm" {
		img = withGPUs(img, gpus)
	}
	if contract.Settings.NeedsSharedMemory() {
		// Tensor-parallel workers exchange tensors through /dev/shm: a
		// memory-backed mount instead of the runtime's small default.
		img = img.WithMountedTemp("/dev/shm")
	}
	return img, nil
}

// Validate serves the checkpoint and runs a validation suite against it:
// every case's assertions (keywords, regexes, JSON, ...), gated on the pass
// rate. Returns the reports (validation.json, junit.xml, summary.md); the
// call fails when the gate fails.
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
) (*dagger.Directory, error) {
	svc, err := m.Serve(ctx, model, engine, gpus, "current", nil)
	if err != nil {
		return nil, err
	}
	if cases == nil {
		cases = m.Source.File("testdata/suites/validation_cases.json")
	}
	args := []string{"modelship", "validate", "--endpoint", endpoint(), "--model", "current",
		"--cases", "/in/cases" + suiteExt(ctx, cases), "--report-dir", "/reports"}
	if passThreshold != "" {
		args = append(args, "--pass-threshold", passThreshold)
	}
	if engine == "ollama" {
		// Ollama on a CPU serves one request at a time: cases queued
		// behind others would spend their timeout waiting.
		args = append(args, "--concurrency", "1")
	}
	tools := m.Tools().
		WithServiceBinding(serviceHost, svc).
		WithFile("/in/cases"+suiteExt(ctx, cases), cases).
		WithExec(waitReady(engine))
	return gate(ctx, "validate", tools, args, "/reports")
}

// Benchmark serves the checkpoint and load-tests it (TTFT, ITL, TPOT,
// latency percentiles, tokens/s, goodput), gated on tokens/s and p99
// latency (the article's 50 tokens/s and 2 s by default) and optionally on a
// baseline report. Returns the reports (bench.json, bench.md, bench.html,
// results.jsonl); the call fails when a gate fails.
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
) (*dagger.Directory, error) {
	svc, err := m.Serve(ctx, model, engine, gpus, "current", nil)
	if err != nil {
		return nil, err
	}
	if prompts == nil {
		prompts = m.Source.File("testdata/prompts/benchmark_prompts.jsonl")
	}
	args := []string{"modelship", "bench", "--endpoint", endpoint(), "--model", "current",
		"--prompts", "/in/prompts.jsonl", "--report-dir", "/reports",
		"--requests", strconv.Itoa(requests), "--concurrency", strconv.Itoa(concurrency),
		"--min-tokens-per-sec", minTokensPerSec, "--max-latency-p99", maxLatencyP99}
	tools := m.Tools().
		WithServiceBinding(serviceHost, svc).
		WithFile("/in/prompts.jsonl", prompts)
	if baseline != nil {
		tools = tools.WithFile("/in/baseline.json", baseline)
		args = append(args, "--baseline", "/in/baseline.json", "--max-regression", maxRegression)
	}
	return gate(ctx, "benchmark", tools.WithExec(waitReady(engine)), args, "/reports")
}

// gate runs a modelship gate command in tools and returns its report
// directory; a failed (1), inconclusive (3) or unusable (2) run fails the
// call with the command's output.
func gate(ctx context.Context, stage string, tools *dagger.Container, args []string, reports string) (*dagger.Directory, error) {
	ctr := tools.WithExec(args, dagger.ContainerWithExecOpts{Expect: dagger.ReturnTypeAny})
	code, err := ctr.ExitCode(ctx)
	if err != nil {
		return nil, stageError(stage, err)
	}
	if code != 0 {
		out, _ := ctr.Stdout(ctx)
		errOut, _ := ctr.Stderr(ctx)
		what := map[int]string{1: "gate failed", 2: "usage or input error", 3: "inconclusive"}[code]
		return nil, fmt.Errorf("%s: %s (%s exit %d)\n%s%s", stage, what, args[1], code, out, errOut)
	}
	return ctr.Directory(reports), nil
}

// run executes args in ctr and returns its stdout and exit code; err is set
// only when it could not run at all.
func run(ctx context.Context, ctr *dagger.Container, args []string) (string, int, error) {
	c := ctr.WithExec(args, dagger.ContainerWithExecOpts{Expect: dagger.ReturnTypeAny})
	code, err := c.ExitCode(ctx)
	if err != nil {
		return "", 0, err
	}
	out, err := c.Stdout(ctx)
	if err != nil {
		return "", 0, err
	}
	if code != 0 {
		e, _ := c.Stderr(ctx)
		out += e
	}
	return out, code, nil
}

// waitReady waits until the bound model service passes modelship smoke
// (the model is listed and generates): up to 10 minutes for vllm (it loads
// weights), 2 for the simulator. It is never silent: every 10 seconds it
// says on stderr how long it has waited and why the service is not ready,
// and past the budget it fails (exit 124) with the last check's output, so
// a service the tools container cannot reach (network rules gone, DNS)
// ends the stage with that reason instead of hanging.
func waitReady(engine string) []string {
	budget := readyBudget(engine)
	smoke := fmt.Sprintf("modelship smoke --endpoint %s --model current --timeout 10s", endpoint())
	script := fmt.Sprintf(`budget=%d; start=$(date +%%s); said=$start
while :; do
	if out=$(%s 2>&1); then
		echo "model service %s ready after $(( $(date +%%s) - start ))s" >&2; exit 0
	fi
	now=$(date +%%s)
	if [ $((now - start)) -ge $budget ]; then
		echo "model service %s not ready after $((now - start))s (budget ${budget}s); last check:" >&2
		printf '%%s\n' "$out" >&2
		exit 124
	fi
	if [ $((now - said)) -ge 10 ]; then
		echo "waiting for model service %s: $((now - start))s of ${budget}s; last check: $(printf '%%s' "$out" | tail -n 1)" >&2
		said=$now
	fi
	sleep 1
done`, int(budget.Seconds()), smoke, endpoint(), endpoint(), endpoint())
	return []string{"sh", "-c", script}
}

// readyBudget is how long waitReady waits for a model service to be ready.
func readyBudget(engine string) time.Duration {
	if engine == "sim" {
		return 2 * time.Minute
	}
	return 10 * time.Minute
}

func endpoint() string { return fmt.Sprintf("http://%s:%d", serviceHost, serving.Port) }

// suiteExt keeps a YAML suite's extension so modelship reads it as YAML.
func suiteExt(ctx context.Context, f *dagger.File) string {
	name, err := f.Name(ctx)
	if err != nil {
		return ".json"
	}
	for _, ext := range []string{".yaml", ".yml", ".json"} {
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
