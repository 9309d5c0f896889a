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

	"github.com/modelship/modelship/bench"
	"github.com/modelship/modelship/bench/gate"
	"github.com/modelship/modelship/bench/metrics"
	"github.com/modelship/modelship/bench/report"
	"github.com/modelship/modelship/bench/sweep"
	"github.com/modelship/modelship/internal/buildinfo"
	"github.com/modelship/modelship/internal/config"
	"github.com/modelship/modelship/internal/gha"
	"github.com/modelship/modelship/internal/progress"
	"github.com/modelship/modelship/notify"
)

func init() {
	register(command{name: "bench", summary: "benchmark an OpenAI-compatible endpoint; gate on tokens/s, p99 latency and a baseline", run: stageCommand("bench", runBench)})
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
	stderr io.Writer

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

	ga *gha.Actions // GitHub Actions outputs, summary, annotations; no-op elsewhere
	ev *stageNotifier
	sr *stageRun
}

func runBench(ctx context.Context, args []string, s stdio, sr *stageRun) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(s.err)
	var (
		endpoint  = fs.String("endpoint", "", "base URL of the OpenAI-compatible server, with or without /v1 (required), e.g. http://127.0.0.1:8000")
		model     = fs.String("model", "", "model name sent in each request (the server's served model name)")
		api       = fs.String("api", "chat", "API to call: chat (/v1/chat/completions) or completions (/v1/completions)")
		apiKeyEnv = fs.String("api-key-env", "", "name of an environment variable holding an API key, sent as a Bearer token (never printed)")
		prompts   = fs.String("prompts", "", "prompt file: JSON lines of {\"prompt\": ...} or {\"messages\": [...]} (the article's benchmark_prompts.jsonl), or a ShareGPT-style JSON array (told by its first character)")
		synthIn   = fs.Int("synthetic-input-len", 0, "instead of --prompts: synthetic prompts of this many input tokens")
		synthOut  = fs.Int("synthetic-output-len", 0, "with --synthetic-input-len: output tokens asked per request (sets max_tokens and ignore_eos)")

		concurrency = fs.Int("concurrency", benchDefaultConcurrency, "requests in flight (closed loop); with --rate, a cap on requests in flight (0: none)")
		rate        = fs.Float64("rate", 0, "send this many requests per second at even intervals (open loop) instead of fixed concurrency")
		poisson     = fs.Bool("poisson", false, "with --rate (or --sweep of rates): Poisson arrivals, exponential gaps drawn from --seed")
		seed        = fs.Int64("seed", 1, "seed for Poisson arrivals and synthetic prompts")
		sweepFlag   = fs.String("sweep", "", "run at rising loads and report the highest meeting the limits: a list (1,2,4,8) or auto (1, 2, 4, ... until a limit fails, up to --requests for concurrency or 1024); loads are concurrencies, or rates with --rate/--poisson")
		requests    = fs.Int("requests", 0, fmt.Sprintf("measured requests (per load in a sweep); default %d unless --duration is set", benchDefaultRequests))
		duration    = fs.Duration("duration", 0, "measure for this long (per load in a sweep), e.g. 30s; with --requests, whichever ends first")
		warmup      = fs.Int("warmup", 0, "warm-up requests sent first at the same load and excluded from the figures")
		maxTokens   = fs.Int("max-tokens", bench.DefaultMaxTokens, "max_tokens for prompts that do not set their own")
		ignoreEOS   = fs.Bool("ignore-eos", false, "send vLLM's ignore_eos so each request generates exactly max_tokens")
		timeout     = fs.Duration("timeout", bench.DefaultTimeout, "per-request timeout, from sending to the end of the stream")

		minTPS        = fs.Float64("min-tokens-per-sec", 0, "gate: minimum output tokens/s (0: not checked)")
		maxLatency    seconds
		maxTTFT       seconds
		maxTPOT       seconds
		maxErrorRate  = fs.Float64("max-error-rate", -1, "gate: highest fraction of failed requests, 0 to 1 (-1: not checked)")
		sloTTFT       seconds
		sloTPOT       seconds
		sloE2EL       seconds
		baseline      = fs.String("baseline", "", "a bench.json from an earlier run (e.g. the model in production); fail on a regression beyond --max-regression")
		maxRegression = fs.Float64("max-regression", 0.1, "with --baseline: how much worse p99 TTFT, p99 end-to-end latency and output tokens/s may be, as a fraction (0.1 = 10%)")
		minSamples    = fs.Int("min-samples", gate.DefaultMinSamples, "fewest successful requests for a verdict; fewer is inconclusive (exit 3)")
		reportDir     = fs.String("report-dir", "", "write bench.json, bench.md, bench.html and results.jsonl here (created if needed)")
		configFile    = fs.String("config", "", "modelship.yaml to take gates.bench and suites.benchmark-prompts from; flags given override it")
		envName       = fs.String("env", "", "with --config: the `environment` the endpoint belongs to; its serving.api-key is sent")
		asJSON        = fs.Bool("json", false, "print the stage result (docs/STAGE-RESULT.md) as one line of JSON on stdout; the table goes to stderr (bench.json in --report-dir is the --baseline format)")
	)
	fs.Var(&maxLatency, "max-latency-p99", "gate: maximum p99 end-to-end latency in seconds, e.g. 2.0 (or 1500ms)")
	fs.Var(&maxTTFT, "max-ttft-p99", "gate: maximum p99 time to first token in seconds (or 300ms)")
	fs.Var(&maxTPOT, "max-tpot-p99", "gate: maximum p99 time per output token in seconds (or 50ms)")
	fs.Var(&sloTTFT, "slo-ttft", "goodput SLO: a request meets it with TTFT at most this (seconds or 250ms)")
	fs.Var(&sloTPOT, "slo-tpot", "goodput SLO: time per output token at most this")
	fs.Var(&sloE2EL, "slo-e2el", "goodput SLO: end-to-end latency at most this")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: modelship bench --endpoint URL (--prompts FILE | --synthetic-input-len N --synthetic-output-len M) [flags]

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
`)
		fs.PrintDefaults()
	}
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	s = sr.output(s, *asJSON)
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(s.err, "modelship bench: "+format+"\n", a...)
		fmt.Fprintf(s.err, "Run `modelship bench --help` for the flags.\n")
		return exitUsage
	}
	if len(pos) > 0 {
		return usageErr("unexpected argument %q", pos[0])
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	ga := gha.FromEnv(s.out, s.err) // GitHub Actions; no-op elsewhere; with --json, s.out is stderr
	// modelship.yaml: gates and the prompt file, unless flags say otherwise.
	var benchCfg *config.Config // its notifications tell the sinks
	if *configFile != "" {
		cfg, err := config.Load(*configFile)
		if err != nil {
			fmt.Fprintf(s.err, "modelship bench: %v\n", err)
			return exitUsage
		}
		benchCfg = cfg
		ga.MaskSecrets(cfg)
		g := cfg.Gates.Bench
		if !set["min-tokens-per-sec"] {
			*minTPS = g.MinTokensPerSec
		}
		if !set["max-latency-p99"] {
			maxLatency.d = time.Duration(g.MaxLatencyP99)
		}
		if !set["max-ttft-p99"] {
			maxTTFT.d = time.Duration(g.MaxTTFTP99)
		}
		if !set["max-tpot-p99"] {
			maxTPOT.d = time.Duration(g.MaxTPOTP99)
		}
		if !set["max-error-rate"] && g.MaxErrorRate > 0 {
			*maxErrorRate = g.MaxErrorRate
		}
		if !set["max-regression"] && g.MaxRegression > 0 {
			*maxRegression = g.MaxRegression
		}
		if *prompts == "" && *synthIn == 0 && cfg.Suites.BenchmarkPrompts != "" {
			p := cfg.Suites.BenchmarkPrompts
			if !filepath.IsAbs(p) {
				p = filepath.Join(filepath.Dir(*configFile), p)
			}
			*prompts = p
		}
	}

	r := &benchRun{stderr: s.err, reportDir: *reportDir, ga: ga, sr: sr}
	ga.MaskEnv(*apiKeyEnv)
	if *endpoint == "" {
		return usageErr("--endpoint is required (the server's base URL, e.g. http://127.0.0.1:8000)")
	}
	if _, err := bench.Endpoint(*endpoint, bench.Chat); err != nil {
		return usageErr("--endpoint: %v", err)
	}
	r.target = bench.Target{Endpoint: *endpoint, Model: *model, API: bench.API(*api), MaxTokens: *maxTokens, IgnoreEOS: *ignoreEOS, Timeout: *timeout}
	if *apiKeyEnv != "" {
		r.target.APIKey = os.Getenv(*apiKeyEnv)
		if r.target.APIKey == "" {
			return usageErr("--api-key-env: the environment variable %s is not set", *apiKeyEnv)
		}
	}
	if *envName != "" {
		if benchCfg == nil || *apiKeyEnv != "" {
			return usageErr("--env goes with --config (the file that gives the environment's serving.api-key), and not with --api-key-env")
		}
		key, err := benchCfg.ServingSecret(*envName, "api-key", nil)
		if err != nil {
			fmt.Fprintf(s.err, "modelship bench: %v\n", err)
			return exitUsage
		}
		r.target.APIKey = key
	}
	if *maxTokens < 1 {
		return usageErr("--max-tokens: expected at least 1, got %d", *maxTokens)
	}
	if *timeout <= 0 {
		return usageErr("--timeout: expected a positive duration, got %v", *timeout)
	}

	// Load.
	switch {
	case *poisson:
		r.mode = bench.Poisson
	case set["rate"]:
		r.mode = bench.Rate
	default:
		r.mode = bench.Concurrency
	}
	if *requests < 0 || *warmup < 0 || *duration < 0 {
		return usageErr("--requests, --warmup and --duration must not be negative")
	}
	n := *requests
	if n == 0 && *duration == 0 {
		n = benchDefaultRequests
	}
	r.load = bench.Load{Mode: r.mode, Concurrency: *concurrency, Rate: *rate, Requests: n, Duration: *duration, Warmup: *warmup, Seed: *seed}
	if r.mode != bench.Concurrency && !set["concurrency"] {
		r.load.Concurrency = 0 // no cap unless asked
	}
	if *sweepFlag != "" {
		r.sweep = true
		if *sweepFlag != "auto" {
			for _, f := range strings.Split(*sweepFlag, ",") {
				v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
				if err != nil || !(v > 0) || math.IsInf(v, 0) || r.mode == bench.Concurrency && v != math.Trunc(v) {
					return usageErr("--sweep: expected auto or a list of loads above 0 (whole numbers for concurrency), like 1,2,4,8; got %q", f)
				}
				r.sweepLoads = append(r.sweepLoads, v)
			}
		}
		if r.mode == bench.Concurrency && r.load.Duration == 0 {
			// More workers than requests never run at once.
			for _, l := range r.sweepLoads {
				if l > float64(r.load.Requests) {
					return usageErr("--sweep: concurrency %g is above --requests %d, so it cannot be reached; send more requests per load or use --duration", l, r.load.Requests)
				}
			}
			r.sweepMax = float64(r.load.Requests)
		}
	} else if err := r.load.Validate(); err != nil {
		if r.mode != bench.Concurrency && !(*rate > 0) {
			return usageErr("--rate: expected requests per second above 0 (or use --sweep), got %g", *rate)
		}
		return usageErr("%v", err)
	}

	// Gates.
	if *minTPS < 0 {
		return usageErr("--min-tokens-per-sec: expected 0 or more, got %g", *minTPS)
	}
	if *maxErrorRate > 1 || *maxErrorRate < 0 && *maxErrorRate != -1 {
		return usageErr("--max-error-rate: expected a fraction from 0 to 1 (or -1: not checked), got %g", *maxErrorRate)
	}
	if *maxRegression < 0 || *maxRegression > 10 {
		return usageErr("--max-regression: expected a fraction from 0 to 10 (0.1 = 10%% worse), got %g", *maxRegression)
	}
	if *minSamples < 1 {
		return usageErr("--min-samples: expected at least 1, got %d", *minSamples)
	}
	r.gate = gate.Gate{
		Limits: gate.Limits{MinTokensPerSec: *minTPS, MaxLatencyP99: maxLatency.d, MaxTTFTP99: maxTTFT.d, MaxTPOTP99: maxTPOT.d,
			MaxErrorRate: *maxErrorRate, MinSamples: *minSamples},
		Tolerances: gate.AllTolerances(*maxRegression),
	}
	r.slo = metrics.SLO{TTFT: sloTTFT.d, TPOT: sloTPOT.d, E2EL: sloE2EL.d}
	if r.sweep && r.sweepLoads == nil && !r.gate.Limits.Any() && *baseline == "" {
		return usageErr("--sweep auto needs a limit to stop at: set --max-ttft-p99, --max-latency-p99, --max-tpot-p99, --min-tokens-per-sec or --max-error-rate (or give a list of loads)")
	}
	if *baseline != "" {
		b, err := report.ReadJSON(*baseline)
		if err != nil {
			return usageErr("--baseline: %v", err)
		}
		r.baseline, r.baselinePath = b, *baseline
	}

	// Prompts.
	switch {
	case *synthIn > 0 || *synthOut > 0:
		if *prompts != "" && set["prompts"] {
			return usageErr("--prompts and --synthetic-input-len are exclusive: choose one")
		}
		if *synthIn < 1 || *synthOut < 1 {
			return usageErr("--synthetic-input-len and --synthetic-output-len: expected both at least 1, got %d and %d", *synthIn, *synthOut)
		}
		count := r.load.Requests + r.load.Warmup
		if count == 0 || count > 10000 {
			count = 10000
		}
		p, err := bench.Synthetic(count, *synthIn, *synthOut, *seed)
		if err != nil {
			return usageErr("synthetic prompts: %v", err)
		}
		r.prompts = p
		r.promptDesc = fmt.Sprintf("synthetic: %d input, %d output tokens (seed %d)", *synthIn, *synthOut, *seed)
		r.target.MaxTokens = *synthOut
		r.target.IgnoreEOS = true
	case *prompts != "":
		p, err := bench.LoadPrompts(*prompts)
		if err != nil {
			fmt.Fprintf(s.err, "modelship bench: %v\n", err)
			return exitUsage
		}
		r.prompts = p
		r.promptDesc = *prompts
	default:
		return usageErr("need prompts: --prompts FILE, --synthetic-input-len N --synthetic-output-len M, or suites.benchmark-prompts in --config")
	}

	if r.reportDir != "" {
		if err := os.MkdirAll(r.reportDir, 0o755); err != nil {
			return usageErr("--report-dir: %v", err)
		}
		f, err := atomicfile.Create(filepath.Join(r.reportDir, "results.jsonl"))
		if err != nil {
			return usageErr("--report-dir: %v", err)
		}
		r.results = f
		r.resW = bufio.NewWriterSize(f, 64<<10)
		defer f.Abort()
	}
	r.ev = stageEvents(eventsConfig(benchCfg, s.err), notify.StageBenchmark, ga, s.err)
	defer r.ev.Close(ctx)
	r.ev.Event.Model = firstSet(r.target.Model, r.ev.Event.Model)
	return r.execute(ctx, s)
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

	r.ev.Start()
	endGroup := r.ga.Group(fmt.Sprintf("bench: %d prompts (%s) against %s", len(r.prompts), r.promptDesc, redactURL(r.target.Endpoint)))
	defer endGroup()
	var rep *report.Report
	if r.sweep {
		res, err := sweep.Run(ctx, sweep.Options{Loads: r.sweepLoads, Max: r.sweepMax},
			func(ctx context.Context, load float64) (*metrics.Summary, error) {
				return r.measure(ctx, client, load)
			},
			r.judge,
		)
		if err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintf(s.err, "modelship bench: %v\n", err)
			if res == nil || len(res.Sweep.Runs) == 0 {
				return exitUsage
			}
		}
		if res == nil || len(res.Sweep.Runs) == 0 {
			fmt.Fprintf(s.err, "modelship bench: interrupted before any load was measured\n")
			return exitInconclusive
		}
		if res.Stopped != "" {
			fmt.Fprintf(s.err, "sweep stopped: %s\n", res.Stopped)
		}
		overall := sweep.Overall(res)
		r.addNotes(ctx, &overall)
		rep = report.NewSweep(&res.Sweep, res.Verdicts, &overall)
	} else {
		sum, err := r.measure(ctx, client, r.load.Level())
		if err != nil {
			fmt.Fprintf(s.err, "modelship bench: %v\n", err)
			return exitUsage
		}
		v := r.judge(sum)
		r.addNotes(ctx, &v)
		rep = report.New(sum, &v)
	}
	rep.Baseline = r.baselinePath
	endGroup()

	if err := report.Text(s.out, rep); err != nil {
		fmt.Fprintf(s.err, "modelship bench: writing the report: %v\n", err)
		return exitFailed
	}
	if r.reportDir != "" {
		written, err := r.writeReports(rep)
		r.sr.report(written...)
		if err != nil {
			fmt.Fprintf(s.err, "modelship bench: %v\n", err)
			return exitFailed
		}
		fmt.Fprintf(s.err, "reports written to %s (bench.json, bench.md, bench.html, results.jsonl)\n", r.reportDir)
	}
	r.ga.Bench(rep, r.reportDir)
	r.finishEvents(rep)
	return r.sr.res.ExitCode
}

// judge evaluates one run with the gate and the baseline run at its load.
func (r *benchRun) judge(s *metrics.Summary) gate.Verdict {
	g := r.gate
	if r.baseline != nil {
		if r.sweep {
			// Each load is compared with the same load of the baseline
			// only: other loads are not comparable.
			g.Baseline = r.baseline.RunAt(s.Conditions.LoadMode, s.Conditions.Load)
		} else {
			g.Baseline = r.baseline.BaselineFor(s.Conditions.Load)
		}
	}
	v := g.Evaluate(s)
	if r.baseline != nil && g.Baseline == nil {
		v.Warnings = append(v.Warnings, fmt.Sprintf("the baseline has no run at %s; this load was not compared with it", loadLabel(bench.Mode(s.Conditions.LoadMode), s.Conditions.Load)))
	}
	if r.stoppedEarly != "" {
		v.Status = gate.Inconclusive
		v.Reasons = append([]string{"stopped early: " + r.stoppedEarly}, v.Reasons...)
	}
	return v
}

// addNotes marks an interrupted run inconclusive.
func (r *benchRun) addNotes(ctx context.Context, v *gate.Verdict) {
	if ctx.Err() != nil {
		v.Status = gate.Inconclusive
		v.Reasons = append(v.Reasons, "interrupted before the end of the run")
	}
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
	examples := map[string]string{}
	var ok, transport, refused int
	for res := range ch {
		if r.resW != nil && r.resErr == nil {
			r.resErr = bench.WriteJSONL(r.resW, res)
		}
		if res.OK() {
			ok++
		} else {
			if _, seen := examples[res.ErrorKind]; !seen && !res.Warmup {
				examples[res.ErrorKind] = truncate(res.Error, 300)
			}
			switch res.ErrorKind {
			case bench.ErrTransport:
				transport++
			case bench.ErrHTTP4xx:
				refused++
			}
			// Nothing ever succeeded and the server is not there, or
			// refuses every request (wrong model name, key): stop early.
			if ok == 0 && r.stoppedEarly == "" {
				if transport >= benchUnreachableAfter {
					r.stoppedEarly = "endpoint unreachable: " + res.Error
					cancel()
				} else if refused >= benchUnreachableAfter {
					r.stoppedEarly = "the server refused every request: " + truncate(res.Error, 300)
					cancel()
				}
			}
		}
		agg.Add(res)
	}
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
