package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/modelship/modelship/internal/atomicfile"
	"github.com/modelship/modelship/internal/clip"

	"github.com/modelship/modelship/bench"
	"github.com/modelship/modelship/bench/gate"
	"github.com/modelship/modelship/bench/metrics"
	"github.com/modelship/modelship/bench/report"
	"github.com/modelship/modelship/bench/sweep"
	"github.com/modelship/modelship/internal/buildinfo"
	"github.com/modelship/modelship/internal/config"
	"github.com/modelship/modelship/internal/progress"
	"github.com/modelship/modelship/notify"
)

func init() {
	register(command{name: "bench", summary: "benchmark an OpenAI-compatible endpoint; gate on tokens/s, p99 latency and a baseline", run: stageCommand("bench", benchUsage, benchHint, runBench)})
}

// Defaults of modelship bench.
const (
	benchDefaultRequests    = 100
	benchDefaultConcurrency = 4
	// benchUnreachableAfter transport failures (or refusals: HTTP 4xx) with
	// no success end a run early: the endpoint is not there, or refuses.
	benchUnreachableAfter = 5
)

// benchRun is one invocation of modelship bench, flags resolved.
type benchRun struct {
	stderr io.Writer // progress and per-load lines: the process's stderr (terminalErr)

	target     bench.Target
	prompts    []bench.Prompt
	promptDesc string
	mode       bench.Mode
	load       bench.Load // Concurrency/Rate filled per run in a sweep
	slo        metrics.SLO

	sweep      bool
	sweepLoads []float64 // nil: automatic
	sweepMax   float64   // highest automatic load; 0: sweep.DefaultMax

	gate         gate.Gate // Baseline set per run
	baseline     *report.Report
	baselinePath string

	reportDir string

	results *atomicfile.File // results.jsonl, when reportDir is set
	resW    *bufio.Writer
	resErr  error

	// stoppedEarly says why a run was cut short: the endpoint is down or
	// refuses every request.
	stoppedEarly string

	sr *stageRun // events, GitHub Actions, the result
}

// benchUsage is modelship bench --help, before the flags.
const benchUsage = `Usage: modelship bench --endpoint URL (--prompts FILE | --synthetic-input-len N --synthetic-output-len M) [flags]

Benchmark an OpenAI-compatible endpoint (vLLM, modelship sim, any other) with
streamed requests, and gate on the figures. Measured per request: time to
first token (TTFT), inter-token latency (ITL), time per output token (TPOT),
end-to-end latency (E2EL), input and output tokens (from usage, else counted).
Reported: mean, median, p90, p99, min, max and std of each; output and total
tokens/s; requests/s; failures by kind; goodput and SLO attainment (--slo-*).

Load: --concurrency N requests in flight (default), --rate R requests/s at
even intervals, or --rate R --poisson. --sweep 1,2,4,8 (or auto) runs each
load in turn and stops at the first that misses a limit; the report names the
highest load that met them all.

Gates (flags, or gates.bench in --config; a flag given overrides the file):
--min-tokens-per-sec, --max-latency-p99, --max-ttft-p99, --max-tpot-p99,
--max-error-rate, and --baseline FILE with --max-regression (default: p99
TTFT and p99 E2EL at most 10% higher, output tokens/s at most 10% lower). A
verdict needs --min-samples successful requests: fewer is inconclusive, never
a pass. A baseline measured with other prompts, load or max_tokens is warned
about.

Reports: a table on stdout (--json: on stderr, and the stage result on
stdout); --report-dir DIR writes
bench.json (use it as a later --baseline), bench.md (for a CI step summary),
bench.html (charts, self-contained) and results.jsonl (one line per request).

Exit status: 0 passed, 1 a gate failed, 2 usage or input error (bad flag,
prompt file, config or baseline), 3 inconclusive (endpoint unreachable, too
few successful requests, interrupted).

Flags:
`

// benchFlags are modelship bench's flags.
type benchFlags struct {
	endpoint, model, api, apiKeyEnv, prompts string
	synthIn, synthOut                        int

	concurrency, requests, warmup, maxTokens int
	rate                                     float64
	poisson, ignoreEOS                       bool
	seed                                     int64
	sweep                                    string
	duration, timeout                        time.Duration

	minTPS, maxErrorRate, maxRegression      float64
	maxLatency, maxTTFT, maxTPOT             seconds
	sloTTFT, sloTPOT, sloE2EL                seconds
	minSamples                               int
	baseline, reportDir, configFile, envName string

	fs  *flag.FlagSet
	set map[string]bool // the flags given
}

func (f *benchFlags) flags(fs *flag.FlagSet) {
	f.fs = fs
	fs.StringVar(&f.endpoint, "endpoint", "", "base URL of the OpenAI-compatible server, with or without /v1 (required), e.g. http://127.0.0.1:8000")
	fs.StringVar(&f.model, "model", "", "model name sent in each request (the server's served model name)")
	fs.StringVar(&f.api, "api", "chat", "API to call: chat (/v1/chat/completions) or completions (/v1/completions)")
	fs.StringVar(&f.apiKeyEnv, "api-key-env", "", "name of an environment variable holding an API key, sent as a Bearer token (never printed)")
	fs.StringVar(&f.prompts, "prompts", "", "prompt file: JSON lines of {\"prompt\": ...} or {\"messages\": [...]} (the article's benchmark_prompts.jsonl), or a ShareGPT-style JSON array (told by its first character)")
	fs.IntVar(&f.synthIn, "synthetic-input-len", 0, "instead of --prompts: synthetic prompts of this many input tokens")
	fs.IntVar(&f.synthOut, "synthetic-output-len", 0, "with --synthetic-input-len: output tokens asked per request (sets max_tokens and ignore_eos)")
	f.registerLoad(fs)
	f.registerGates(fs)
	fs.StringVar(&f.reportDir, "report-dir", "", "write bench.json, bench.md, bench.html and results.jsonl here (created if needed)")
	fs.StringVar(&f.configFile, "config", "", "modelship.yaml to take gates.bench and suites.benchmark-prompts from; flags given override it")
	fs.StringVar(&f.envName, "env", "", "with --config: the `environment` the endpoint belongs to; its serving.api-key is sent")
}

func (f *benchFlags) registerLoad(fs *flag.FlagSet) {
	fs.IntVar(&f.concurrency, "concurrency", benchDefaultConcurrency, "requests in flight (closed loop); with --rate, a cap on requests in flight (0: none)")
	fs.Float64Var(&f.rate, "rate", 0, "send this many requests per second at even intervals (open loop) instead of fixed concurrency")
	fs.BoolVar(&f.poisson, "poisson", false, "with --rate (or --sweep of rates): Poisson arrivals, exponential gaps drawn from --seed")
	fs.Int64Var(&f.seed, "seed", 1, "seed for Poisson arrivals and synthetic prompts")
	fs.StringVar(&f.sweep, "sweep", "", "run at rising loads and report the highest meeting the limits: a list (1,2,4,8) or auto (1, 2, 4, ... until a limit fails, up to --requests for concurrency or 1024); loads are concurrencies, or rates with --rate/--poisson")
	fs.IntVar(&f.requests, "requests", 0, fmt.Sprintf("measured requests (per load in a sweep); default %d unless --duration is set", benchDefaultRequests))
	fs.DurationVar(&f.duration, "duration", 0, "measure for this long (per load in a sweep), e.g. 30s; with --requests, whichever ends first")
	fs.IntVar(&f.warmup, "warmup", 0, "warm-up requests sent first at the same load and excluded from the figures")
	fs.IntVar(&f.maxTokens, "max-tokens", bench.DefaultMaxTokens, "max_tokens for prompts that do not set their own")
	fs.BoolVar(&f.ignoreEOS, "ignore-eos", false, "send vLLM's ignore_eos so each request generates exactly max_tokens")
	fs.DurationVar(&f.timeout, "timeout", bench.DefaultTimeout, "per-request timeout, from sending to the end of the stream")
}

func (f *benchFlags) registerGates(fs *flag.FlagSet) {
	fs.Float64Var(&f.minTPS, "min-tokens-per-sec", 0, "gate: minimum output tokens/s (0: not checked)")
	fs.Var(&f.maxLatency, "max-latency-p99", "gate: maximum p99 end-to-end latency in seconds, e.g. 2.0 (or 1500ms)")
	fs.Var(&f.maxTTFT, "max-ttft-p99", "gate: maximum p99 time to first token in seconds (or 300ms)")
	fs.Var(&f.maxTPOT, "max-tpot-p99", "gate: maximum p99 time per output token in seconds (or 50ms)")
	fs.Float64Var(&f.maxErrorRate, "max-error-rate", -1, "gate: highest fraction of failed requests, 0 to 1 (-1: not checked)")
	fs.Var(&f.sloTTFT, "slo-ttft", "goodput SLO: a request meets it with TTFT at most this (seconds or 250ms)")
	fs.Var(&f.sloTPOT, "slo-tpot", "goodput SLO: time per output token at most this")
	fs.Var(&f.sloE2EL, "slo-e2el", "goodput SLO: end-to-end latency at most this")
	fs.StringVar(&f.baseline, "baseline", "", "a bench.json from an earlier run (e.g. the model in production); fail on a regression beyond --max-regression")
	fs.Float64Var(&f.maxRegression, "max-regression", 0.1, "with --baseline: how much worse p99 TTFT, p99 end-to-end latency and output tokens/s may be, as a fraction (0.1 = 10%)")
	fs.IntVar(&f.minSamples, "min-samples", gate.DefaultMinSamples, "fewest successful requests for a verdict; fewer is inconclusive (exit 3)")
}

// benchHint is the line after bench's usage errors.
const benchHint = "Run `modelship bench --help` for the flags."

func runBench(ctx context.Context, f *benchFlags, pos []string, s stdio, sr *stageRun) int {
	if len(pos) > 0 {
		return sr.bad("unexpected argument %q", pos[0])
	}
	f.set = map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	cfg, code := f.applyConfig(s, sr)
	if code != exitOK {
		return code
	}
	r := &benchRun{stderr: terminalErr(s.err), reportDir: f.reportDir, sr: sr}
	for _, step := range []func(*benchRun, *config.Config) int{f.target, f.loads, f.gates, f.promptSet} {
		if code := step(r, cfg); code != exitOK {
			return code
		}
	}
	if code := r.openResults(); code != exitOK {
		return code
	}
	if r.results != nil {
		defer r.results.Abort()
	}
	ev := sr.events(eventsConfig(cfg, s.err), notify.StageBenchmark)
	ev.Event.Model = firstSet(r.target.Model, ev.Event.Model)
	return r.execute(ctx, s)
}

// applyConfig reads --config (nil without it): its gates.bench and
// suites.benchmark-prompts stand where no flag was given.
func (f *benchFlags) applyConfig(s stdio, sr *stageRun) (*config.Config, int) {
	if f.configFile == "" {
		return nil, exitOK
	}
	cfg, err := config.Load(f.configFile)
	if err != nil {
		fmt.Fprintf(s.err, "modelship bench: %v\n", err)
		return nil, exitUsage
	}
	sr.ga.MaskSecrets(cfg)
	g := cfg.Gates.Bench
	if !f.set["min-tokens-per-sec"] {
		f.minTPS = g.MinTokensPerSec
	}
	if !f.set["max-latency-p99"] {
		f.maxLatency.d = time.Duration(g.MaxLatencyP99)
	}
	if !f.set["max-ttft-p99"] {
		f.maxTTFT.d = time.Duration(g.MaxTTFTP99)
	}
	if !f.set["max-tpot-p99"] {
		f.maxTPOT.d = time.Duration(g.MaxTPOTP99)
	}
	if !f.set["max-error-rate"] && g.MaxErrorRate > 0 {
		f.maxErrorRate = g.MaxErrorRate
	}
	if !f.set["max-regression"] && g.MaxRegression > 0 {
		f.maxRegression = g.MaxRegression
	}
	if f.prompts == "" && f.synthIn == 0 && cfg.Suites.BenchmarkPrompts != "" {
		f.prompts = cfg.Suites.BenchmarkPrompts
		if !filepath.IsAbs(f.prompts) {
			f.prompts = filepath.Join(filepath.Dir(f.configFile), f.prompts)
		}
	}
	return cfg, exitOK
}

// target checks the endpoint, the request settings and the API key.
func (f *benchFlags) target(r *benchRun, cfg *config.Config) int {
	sr := r.sr
	sr.ga.MaskEnv(f.apiKeyEnv)
	if f.endpoint == "" {
		return sr.bad("--endpoint is required (the server's base URL, e.g. http://127.0.0.1:8000)")
	}
	if _, err := bench.Endpoint(f.endpoint, bench.Chat); err != nil {
		return sr.bad("--endpoint: %v", err)
	}
	r.target = bench.Target{Endpoint: f.endpoint, Model: f.model, API: bench.API(f.api), MaxTokens: f.maxTokens, IgnoreEOS: f.ignoreEOS, Timeout: f.timeout}
	if f.apiKeyEnv != "" {
		if r.target.APIKey = os.Getenv(f.apiKeyEnv); r.target.APIKey == "" {
			return sr.bad("--api-key-env: the environment variable %s is not set", f.apiKeyEnv)
		}
	}
	if f.envName != "" {
		if cfg == nil || f.apiKeyEnv != "" {
			return sr.bad("--env goes with --config (the file that gives the environment's serving.api-key), and not with --api-key-env")
		}
		key, err := cfg.ServingSecret(f.envName, "api-key", nil)
		if err != nil {
			fmt.Fprintf(sr.errs, "modelship bench: %v\n", err)
			return exitUsage
		}
		r.target.APIKey = key
	}
	if f.maxTokens < 1 {
		return sr.bad("--max-tokens: expected at least 1, got %d", f.maxTokens)
	}
	if f.timeout <= 0 {
		return sr.bad("--timeout: expected a positive duration, got %v", f.timeout)
	}
	return exitOK
}

// loads checks the load: its mode, size and the sweep's loads.
func (f *benchFlags) loads(r *benchRun, _ *config.Config) int {
	switch {
	case f.poisson:
		r.mode = bench.Poisson
	case f.set["rate"]:
		r.mode = bench.Rate
	default:
		r.mode = bench.Concurrency
	}
	if f.requests < 0 || f.warmup < 0 || f.duration < 0 {
		return r.sr.bad("--requests, --warmup and --duration must not be negative")
	}
	n := f.requests
	if n == 0 && f.duration == 0 {
		n = benchDefaultRequests
	}
	r.load = bench.Load{Mode: r.mode, Concurrency: f.concurrency, Rate: f.rate, Requests: n, Duration: f.duration, Warmup: f.warmup, Seed: f.seed}
	if r.mode != bench.Concurrency && !f.set["concurrency"] {
		r.load.Concurrency = 0 // no cap unless asked
	}
	if f.sweep != "" {
		return f.sweepLoads(r)
	}
	if err := r.load.Validate(); err != nil {
		if r.mode != bench.Concurrency && !(f.rate > 0) {
			return r.sr.bad("--rate: expected requests per second above 0 (or use --sweep), got %g", f.rate)
		}
		return r.sr.bad("%v", err)
	}
	return exitOK
}

// sweepLoads reads --sweep: auto, or a list of loads.
func (f *benchFlags) sweepLoads(r *benchRun) int {
	r.sweep = true
	if f.sweep != "auto" {
		for _, v := range strings.Split(f.sweep, ",") {
			l, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || !(l > 0) || math.IsInf(l, 0) || r.mode == bench.Concurrency && l != math.Trunc(l) {
				return r.sr.bad("--sweep: expected auto or a list of loads above 0 (whole numbers for concurrency), like 1,2,4,8; got %q", v)
			}
			r.sweepLoads = append(r.sweepLoads, l)
		}
	}
	if r.mode == bench.Concurrency && r.load.Duration == 0 {
		// More workers than requests never run at once.
		for _, l := range r.sweepLoads {
			if l > float64(r.load.Requests) {
				return r.sr.bad("--sweep: concurrency %g is above --requests %d, so it cannot be reached; send more requests per load or use --duration", l, r.load.Requests)
			}
		}
		r.sweepMax = float64(r.load.Requests)
	}
	return exitOK
}

// gates checks the gate's limits, the SLOs and the baseline.
func (f *benchFlags) gates(r *benchRun, _ *config.Config) int {
	sr := r.sr
	switch {
	case f.minTPS < 0:
		return sr.bad("--min-tokens-per-sec: expected 0 or more, got %g", f.minTPS)
	case f.maxErrorRate > 1 || f.maxErrorRate < 0 && f.maxErrorRate != -1:
		return sr.bad("--max-error-rate: expected a fraction from 0 to 1 (or -1: not checked), got %g", f.maxErrorRate)
	case f.maxRegression < 0 || f.maxRegression > 10:
		return sr.bad("--max-regression: expected a fraction from 0 to 10 (0.1 = 10%% worse), got %g", f.maxRegression)
	case f.minSamples < 1:
		return sr.bad("--min-samples: expected at least 1, got %d", f.minSamples)
	}
	r.gate = gate.Gate{
		Limits: gate.Limits{MinTokensPerSec: f.minTPS, MaxLatencyP99: f.maxLatency.d, MaxTTFTP99: f.maxTTFT.d, MaxTPOTP99: f.maxTPOT.d,
			MaxErrorRate: f.maxErrorRate, MinSamples: f.minSamples},
		Tolerances: gate.AllTolerances(f.maxRegression),
	}
	r.slo = metrics.SLO{TTFT: f.sloTTFT.d, TPOT: f.sloTPOT.d, E2EL: f.sloE2EL.d}
	if r.sweep && r.sweepLoads == nil && !r.gate.Limits.Any() && f.baseline == "" {
		return sr.bad("--sweep auto needs a limit to stop at: set --max-ttft-p99, --max-latency-p99, --max-tpot-p99, --min-tokens-per-sec or --max-error-rate (or give a list of loads)")
	}
	if f.baseline != "" {
		b, err := report.ReadJSON(f.baseline)
		if err != nil {
			return sr.bad("--baseline: %v", err)
		}
		r.baseline, r.baselinePath = b, f.baseline
	}
	return exitOK
}

// promptSet reads the prompts: synthetic ones, or the prompt file.
func (f *benchFlags) promptSet(r *benchRun, _ *config.Config) int {
	sr := r.sr
	switch {
	case f.synthIn > 0 || f.synthOut > 0:
		if f.prompts != "" && f.set["prompts"] {
			return sr.bad("--prompts and --synthetic-input-len are exclusive: choose one")
		}
		if f.synthIn < 1 || f.synthOut < 1 {
			return sr.bad("--synthetic-input-len and --synthetic-output-len: expected both at least 1, got %d and %d", f.synthIn, f.synthOut)
		}
		count := r.load.Requests + r.load.Warmup
		if count == 0 || count > 10000 {
			count = 10000
		}
		p, err := bench.Synthetic(count, f.synthIn, f.synthOut, f.seed)
		if err != nil {
			return sr.bad("synthetic prompts: %v", err)
		}
		r.prompts = p
		r.promptDesc = fmt.Sprintf("synthetic: %d input, %d output tokens (seed %d)", f.synthIn, f.synthOut, f.seed)
		r.target.MaxTokens = f.synthOut
		r.target.IgnoreEOS = true
	case f.prompts != "":
		p, err := bench.LoadPrompts(f.prompts)
		if err != nil {
			fmt.Fprintf(sr.errs, "modelship bench: %v\n", err)
			return exitUsage
		}
		r.prompts = p
		r.promptDesc = f.prompts
	default:
		return sr.bad("need prompts: --prompts FILE, --synthetic-input-len N --synthetic-output-len M, or suites.benchmark-prompts in --config")
	}
	return exitOK
}

// openResults creates results.jsonl in --report-dir (when given), kept
// only if the run's reports are written (Abort it in any case).
func (r *benchRun) openResults() int {
	if r.reportDir == "" {
		return exitOK
	}
	if err := os.MkdirAll(r.reportDir, 0o755); err != nil {
		return r.sr.bad("--report-dir: %v", err)
	}
	f, err := atomicfile.Create(filepath.Join(r.reportDir, "results.jsonl"))
	if err != nil {
		return r.sr.bad("--report-dir: %v", err)
	}
	r.results = f
	r.resW = bufio.NewWriterSize(f, 64<<10)
	return exitOK
}

// execute runs the benchmark, writes the reports and returns the exit code.
func (r *benchRun) execute(ctx context.Context, s stdio) int {
	maxConns := max(r.load.Concurrency, 64)
	for _, l := range r.sweepLoads {
		if r.mode == bench.Concurrency {
			maxConns = max(maxConns, int(l))
		}
	}
	client, err := bench.NewClient(r.target, maxConns)
	if err != nil {
		fmt.Fprintf(s.err, "modelship bench: %v\n", err)
		return exitUsage
	}
	defer client.CloseIdleConnections()

	r.sr.start()
	endGroup := r.sr.group(fmt.Sprintf("bench: %d prompts (%s) against %s", len(r.prompts), r.promptDesc, redactURL(r.target.Endpoint)))
	defer endGroup()
	rep, code := r.run(ctx, client)
	if rep == nil {
		return code
	}
	rep.Baseline = r.baselinePath
	endGroup()
	return r.finish(rep, s)
}

// run measures the load, or each load of a sweep, and judges it. A nil
// report comes with the exit code and the error printed.
func (r *benchRun) run(ctx context.Context, client *bench.Client) (*report.Report, int) {
	if !r.sweep {
		sum, err := r.measure(ctx, client, r.load.Level())
		if err != nil {
			fmt.Fprintf(r.sr.errs, "modelship bench: %v\n", err)
			return nil, exitUsage
		}
		v := r.judge(sum)
		r.addNotes(ctx, &v)
		return report.New(sum, &v), exitOK
	}
	res, err := sweep.Run(ctx, sweep.Options{Loads: r.sweepLoads, Max: r.sweepMax},
		func(ctx context.Context, load float64) (*metrics.Summary, error) { return r.measure(ctx, client, load) },
		r.judge,
	)
	measured := res != nil && len(res.Sweep.Runs) > 0
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(r.sr.errs, "modelship bench: %v\n", err)
		if !measured {
			return nil, exitUsage
		}
	}
	if !measured {
		fmt.Fprintf(r.sr.errs, "modelship bench: interrupted before any load was measured\n")
		return nil, exitInconclusive
	}
	if res.Stopped != "" {
		fmt.Fprintf(r.stderr, "sweep stopped: %s\n", res.Stopped)
	}
	overall := sweep.Overall(res)
	r.addNotes(ctx, &overall)
	return report.NewSweep(&res.Sweep, res.Verdicts, &overall), exitOK
}

// collect aggregates a run's results as they come, writes them to
// results.jsonl, and stops the run (cancel) when nothing ever succeeded and
// the server is not there, or refuses every request (wrong model name,
// key). It returns one error example per kind.
func (r *benchRun) collect(ch <-chan *bench.Result, agg *metrics.Aggregator, cancel func()) map[string]string {
	examples := map[string]string{}
	var ok, transport, refused int
	for res := range ch {
		agg.Add(res)
		if r.resW != nil && r.resErr == nil {
			r.resErr = bench.WriteJSONL(r.resW, res)
		}
		if res.OK() {
			ok++
			continue
		}
		if _, seen := examples[res.ErrorKind]; !seen && !res.Warmup {
			examples[res.ErrorKind] = clip.Bytes(res.Error, 300)
		}
		switch res.ErrorKind {
		case bench.ErrTransport:
			transport++
		case bench.ErrHTTP4xx:
			refused++
		}
		if ok > 0 || r.stoppedEarly != "" {
			continue
		}
		if transport >= benchUnreachableAfter {
			r.stoppedEarly = "endpoint unreachable: " + res.Error
			cancel()
		} else if refused >= benchUnreachableAfter {
			r.stoppedEarly = "the server refused every request: " + clip.Bytes(res.Error, 300)
			cancel()
		}
	}
	return examples
}

// measure runs the load at one level and aggregates it.
func (r *benchRun) measure(ctx context.Context, client *bench.Client, level float64) (*metrics.Summary, error) {
	l := r.load
	if r.mode == bench.Concurrency {
		l.Concurrency = int(level)
	} else {
		l.Rate = level
	}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	cond := metrics.Conditions{
		Endpoint: redactURL(r.target.Endpoint), Model: r.target.Model, Prompts: r.promptDesc,
		LoadMode: string(l.Mode), Load: level, Requests: l.Requests, Duration: l.Duration.Seconds(), Warmup: l.Warmup,
		Seed: l.Seed, MaxTokens: client.Target().MaxTokens, ClientVersion: buildinfo.String(), Start: time.Now().UTC(),
	}
	label := "bench"
	if r.sweep {
		label = loadLabel(l.Mode, level)
	}
	bar := progress.New(r.stderr, label, int64(l.Warmup+l.Requests), progress.Count)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := client.Attack(runCtx, r.prompts, l, func(p bench.Progress) {
		done := int64(p.Done)
		if !p.Warmup {
			done += int64(l.Warmup)
		}
		bar.Set(done)
	})
	if err != nil {
		bar.Done()
		return nil, err
	}
	agg := metrics.NewAggregator(r.slo)
	examples := r.collect(ch, agg, cancel)
	bar.Done()
	sum := agg.Close()
	sum.Conditions = cond
	if len(examples) > 0 {
		sum.ErrorExamples = examples
	}
	if r.sweep {
		fmt.Fprintf(r.stderr, "%s: %d requests, %.1f output tokens/s, p99 TTFT %s, p99 E2EL %s, %s errors\n", label, sum.Requests,
			sum.OutputTokensPerSec, gate.Seconds(sum.TTFT.P99), gate.Seconds(sum.E2EL.P99), gate.Percent(sum.ErrorRate))
	}
	return sum, nil
}
