package main

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/bench/gate"
	"github.com/modelship/modelship/bench/report"
	"github.com/modelship/modelship/internal/sim"
	"github.com/modelship/modelship/internal/testenv"
	"github.com/modelship/modelship/serving/stage"
)

const benchPrompts = "../../testdata/prompts/benchmark_prompts.jsonl"

// benchCLI runs `modelship bench ARGS` in process.
func benchCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"bench"}, args...), stdio{in: strings.NewReader(""), out: &out, err: &errb})
	return code, out.String(), errb.String()
}

func TestBenchPasses(t *testing.T) {
	url := testenv.Sim(t, simModels+"good", nil)
	dir := filepath.Join(t.TempDir(), "reports")
	code, out, errs := benchCLI(t, "--endpoint", url, "--model", "good", "--prompts", benchPrompts,
		"--requests", "30", "--concurrency", "4", "--warmup", "2", "--min-tokens-per-sec", "1", "--max-latency-p99", "10",
		"--max-error-rate", "0", "--slo-ttft", "5", "--report-dir", dir)
	if code != exitOK {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	for _, want := range []string{"Verdict: PASS", "Requests: 30 measured, 30 succeeded, 0 failed", "Latency (ms)", "TTFT", "E2EL",
		"ok  output tokens/s", "ok  p99 end-to-end latency", "Goodput:", "(+2 warm-up, excluded)"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "bench.html bench.json bench.md results.jsonl" {
		t.Errorf("report dir holds %v, want exactly the four reports (no temporary files)", names)
	}
	page, _ := os.ReadFile(filepath.Join(dir, "bench.html"))
	if n := strings.Count(string(page), "<svg"); n < 3 {
		t.Errorf("bench.html has %d SVG charts, want 3", n)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "bench.md"))
	if !strings.Contains(string(md), "## modelship bench: ✅ PASS") {
		t.Errorf("bench.md:\n%s", md)
	}
	rep, err := report.ReadJSON(filepath.Join(dir, "bench.json"))
	if err != nil {
		t.Fatal(err)
	}
	c := rep.Summary.Conditions
	if rep.Verdict.Status != gate.Passed || rep.Summary.Requests != 30 || c.Model != "good" || c.LoadMode != "concurrency" || c.Load != 4 ||
		c.Prompts != benchPrompts || c.Warmup != 2 || c.Start.IsZero() || c.ClientVersion == "" || c.Endpoint != url {
		t.Errorf("bench.json: verdict %s, %d requests, conditions %+v", rep.Verdict.Status, rep.Summary.Requests, c)
	}
	f, err := os.Open(filepath.Join(dir, "results.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := 0
	for sc := bufio.NewScanner(f); sc.Scan(); lines++ {
	}
	if lines != 32 {
		t.Errorf("results.jsonl has %d lines, want 32 (30 measured + 2 warm-up)", lines)
	}
}

func TestBenchJSON(t *testing.T) {
	url := testenv.Sim(t, simModels+"good", nil)
	dir := t.TempDir()
	code, out, errs := benchCLI(t, "--endpoint", url, "--synthetic-input-len", "16", "--synthetic-output-len", "8", "--requests", "12",
		"--max-latency-p99", "30", "--report-dir", dir, "--json")
	res := stageResult(t, "bench", code, out, stage.Passed)
	wantReports(t, res, filepath.Join(dir, "bench.json"), filepath.Join(dir, "bench.md"), filepath.Join(dir, "bench.html"), filepath.Join(dir, "results.jsonl"))
	f := res.Figures
	if f["requests"] != 12 || f["succeeded"] != 12 || !(f["output_tokens_per_s"] > 0) || !(f["ttft_p99_s"] >= f["ttft_p50_s"]) ||
		!(f["e2el_p99_s"] > 0) || f["max_e2el_p99_s"] != 30 || res.Endpoint != url || !strings.Contains(errs, "Verdict: PASS") {
		t.Errorf("--json: %+v\nstderr:\n%s", res, errs)
	}
	rep, err := report.ReadJSON(filepath.Join(dir, "bench.json"))
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Summary
	if s.Succeeded != 12 || s.OutputTokens != 12*8 || !strings.HasPrefix(s.Conditions.Prompts, "synthetic: 16 input, 8 output tokens") {
		t.Errorf("synthetic run: %d ok, %d output tokens, prompts %q", s.Succeeded, s.OutputTokens, s.Conditions.Prompts)
	}

	// A gate that fails: the result says so in numbers, and lists the
	// reports it wrote all the same.
	code, out, _ = benchCLI(t, "--endpoint", url, "--synthetic-input-len", "16", "--synthetic-output-len", "8", "--requests", "12",
		"--min-tokens-per-sec", "1e9", "--report-dir", dir, "--json")
	res = stageResult(t, "bench", code, out, stage.Failed)
	wantReports(t, res, filepath.Join(dir, "bench.json"), filepath.Join(dir, "bench.md"), filepath.Join(dir, "bench.html"), filepath.Join(dir, "results.jsonl"))
	if res.Figures["min_tokens_per_s"] != 1e9 || !strings.Contains(res.Message, "is below the minimum 1000000000 tokens/s") {
		t.Errorf("--json, gate failed: %+v", res)
	}
}

func TestBenchGateFails(t *testing.T) {
	// The slow model answers after 400 ms: p99 end-to-end latency cannot be
	// under 0.1 s (the article's --max-latency-p99, in seconds).
	url := testenv.Sim(t, simModels+"slow", nil)
	code, out, errs := benchCLI(t, "--endpoint", url, "--model", "slow", "--prompts", benchPrompts,
		"--requests", "10", "--concurrency", "10", "--max-tokens", "4", "--max-latency-p99", "0.1")
	if code != exitFailed {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	for _, want := range []string{"Verdict: FAIL", "FAIL  p99 end-to-end latency", "exceeds the limit 0.10 s"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
}

func TestBenchBaselineRegression(t *testing.T) {
	// The baseline model answers after 100 ms and 10 ms per token, the slow
	// one after 400 ms and 60 ms per token: differences far above the noise
	// of a busy machine, in both directions.
	fast := testenv.Sim(t, simModels+"good", func(tb *sim.Table) { tb.Latency = sim.Latency{TTFTms: 100, ITLms: 10} })
	slow := testenv.Sim(t, simModels+"slow", nil)
	dir := t.TempDir()
	common := []string{"--prompts", benchPrompts, "--requests", "10", "--concurrency", "10", "--max-tokens", "4"}
	code, out, errs := benchCLI(t, append([]string{"--endpoint", fast, "--report-dir", dir}, common...)...)
	if code != exitOK {
		t.Fatalf("baseline run: exit %d\n%s\n%s", code, out, errs)
	}
	base := filepath.Join(dir, "bench.json")

	// The same model against itself, with a generous tolerance, passes.
	code, out, errs = benchCLI(t, append([]string{"--endpoint", fast, "--baseline", base, "--max-regression", "10"}, common...)...)
	if code != exitOK || !strings.Contains(out, "p99 TTFT vs baseline") {
		t.Fatalf("fast vs fast: exit %d\n%s\n%s", code, out, errs)
	}

	code, out, errs = benchCLI(t, append([]string{"--endpoint", slow, "--baseline", base}, common...)...)
	if code != exitFailed {
		t.Fatalf("slow vs fast baseline: exit %d, want 1\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{"FAIL  p99 TTFT vs baseline", "% worse than the baseline's", "(limit +10%)", "FAIL  output tokens/s vs baseline", "(limit −10%)"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}

	// Other conditions: a warning, not a failure by itself.
	code, out, _ = benchCLI(t, "--endpoint", fast, "--baseline", base, "--max-regression", "10", "--prompts", benchPrompts, "--requests", "10", "--concurrency", "2", "--max-tokens", "4")
	if code != exitOK || !strings.Contains(out, "warning: the baseline was measured with load concurrency 10, this run with concurrency 2") {
		t.Errorf("different load: exit %d\n%s", code, out)
	}
}

func TestBenchUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	dir := t.TempDir()
	code, out, errs := benchCLI(t, "--endpoint", "http://"+addr, "--prompts", benchPrompts, "--requests", "1000", "--min-tokens-per-sec", "1", "--report-dir", dir)
	if code != exitInconclusive {
		t.Fatalf("exit %d, want 3\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "Verdict: INCONCLUSIVE") || !strings.Contains(out, "endpoint unreachable:") || !strings.Contains(out, "connection refused") {
		t.Errorf("stdout:\n%s", out)
	}
	// It gave up early instead of sending all 1000 requests.
	rep, err := report.ReadJSON(filepath.Join(dir, "bench.json"))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Requests >= 1000 {
		t.Errorf("sent %d requests to a dead endpoint", rep.Summary.Requests)
	}
}

func TestBenchTooFewSamples(t *testing.T) {
	url := testenv.Sim(t, simModels+"good", nil)
	code, out, _ := benchCLI(t, "--endpoint", url, "--prompts", benchPrompts, "--requests", "5", "--max-latency-p99", "10")
	if code != exitInconclusive || !strings.Contains(out, "only 5 successful requests, fewer than the 10 needed to judge") {
		t.Errorf("exit %d, want 3:\n%s", code, out)
	}
	code, _, _ = benchCLI(t, "--endpoint", url, "--prompts", benchPrompts, "--requests", "5", "--min-samples", "5")
	if code != exitOK {
		t.Errorf("--min-samples 5: exit %d, want 0", code)
	}
}

func TestBenchErrorRate(t *testing.T) {
	_, url := testenv.SimServer(t, simModels+"good", nil, sim.Options{ErrorRate: 0.5, Seed: 1})
	code, out, _ := benchCLI(t, "--endpoint", url, "--prompts", benchPrompts, "--requests", "40", "--max-error-rate", "0.1")
	if code != exitFailed || !strings.Contains(out, "Failures: http_5xx 20") || !strings.Contains(out, "error rate 50% (20 of 40 requests failed: 20 http_5xx) exceeds the limit 10%") {
		t.Errorf("exit %d, want 1:\n%s", code, out)
	}
}

func TestBenchSweep(t *testing.T) {
	// One request at a time in the simulator: waiting in its queue makes
	// TTFT grow with concurrency. At concurrency 1 TTFT is about 20 ms, at
	// 8 the p99 is several times the 100 ms limit.
	_, url := testenv.SimServer(t, simModels+"good", func(tb *sim.Table) { tb.Latency = sim.Latency{TTFTms: 20, ITLms: 5} }, sim.Options{MaxNumSeqs: 1})
	dir := t.TempDir()
	code, out, errs := benchCLI(t, "--endpoint", url, "--prompts", benchPrompts, "--max-tokens", "4", "--requests", "16",
		"--sweep", "8,1", "--max-ttft-p99", "0.1", "--report-dir", dir)
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "Highest load meeting the SLOs: concurrency 1") || !strings.Contains(errs, "sweep stopped: load 8 did not meet the SLOs") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", out, errs)
	}
	rep, err := report.ReadJSON(filepath.Join(dir, "bench.json"))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sweep == nil || rep.Sweep.MaxLoad != 1 || len(rep.Sweep.Runs) != 2 || len(rep.SweepVerdicts) != 2 {
		t.Fatalf("bench.json sweep: %+v", rep.Sweep)
	}
	page, _ := os.ReadFile(filepath.Join(dir, "bench.html"))
	if !strings.Contains(string(page), "TTFT vs load") || !strings.Contains(string(page), "Throughput vs load") {
		t.Errorf("bench.html lacks the sweep charts")
	}

	// Against a sweep baseline each load is compared with the same load
	// only; a load the baseline lacks is not compared, and says so.
	again := t.TempDir()
	code, out, errs = benchCLI(t, "--endpoint", url, "--prompts", benchPrompts, "--max-tokens", "4", "--requests", "16",
		"--sweep", "1,2", "--max-ttft-p99", "10", "--baseline", filepath.Join(dir, "bench.json"), "--max-regression", "10", "--report-dir", again)
	if code != exitOK {
		t.Fatalf("sweep against a sweep baseline: exit %d\n%s\n%s", code, out, errs)
	}
	rep, err = report.ReadJSON(filepath.Join(again, "bench.json"))
	if err != nil {
		t.Fatal(err)
	}
	v1, v2 := rep.SweepVerdicts[0], rep.SweepVerdicts[1]
	if len(v1.Checks) != 4 || len(v1.Warnings) != 0 {
		t.Errorf("load 1: %d checks (want p99 TTFT and 3 baseline checks), warnings %q", len(v1.Checks), v1.Warnings)
	}
	if len(v2.Checks) != 1 || len(v2.Warnings) != 1 || !strings.Contains(v2.Warnings[0], "the baseline has no run at concurrency 2") {
		t.Errorf("load 2: checks %+v, warnings %q", v2.Checks, v2.Warnings)
	}
}

func TestBenchConfig(t *testing.T) {
	url := testenv.Sim(t, simModels+"slow", nil)
	dir := t.TempDir()
	prompts, err := filepath.Abs(benchPrompts)
	if err != nil {
		t.Fatal(err)
	}
	model, _ := filepath.Abs(simModels + "slow")
	cfg := filepath.Join(dir, "modelship.yaml")
	os.WriteFile(cfg, []byte("model:\n  path: "+model+"\nsuites:\n  benchmark-prompts: "+prompts+"\ngates:\n  bench:\n    max-latency-p99: 100ms\n"), 0o644)
	args := []string{"--endpoint", url, "--config", cfg, "--requests", "10", "--concurrency", "10", "--max-tokens", "4"}
	code, out, errs := benchCLI(t, args...)
	if code != exitFailed || !strings.Contains(out, "exceeds the limit 0.10 s") {
		t.Errorf("gate from config: exit %d, want 1\n%s\n%s", code, out, errs)
	}
	code, out, errs = benchCLI(t, append(args, "--max-latency-p99", "30")...)
	if code != exitOK {
		t.Errorf("flag overrides config: exit %d, want 0\n%s\n%s", code, out, errs)
	}
}

func TestBenchUsage(t *testing.T) {
	dir := t.TempDir()
	notJSON := filepath.Join(dir, "baseline.json")
	os.WriteFile(notJSON, []byte("{\"summary\": {\n  \"requests\": \"x\"}}"), 0o644)
	badPrompts := filepath.Join(dir, "p.jsonl")
	os.WriteFile(badPrompts, []byte("{\"prompt\": \"ok\"}\n{nope\n"), 0o644)
	ep := "http://127.0.0.1:9"
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no endpoint", []string{"--prompts", benchPrompts}, "--endpoint is required"},
		{"no prompts", []string{"--endpoint", ep}, "need prompts"},
		{"unknown flag", []string{"--endpoint", ep, "--prompts", benchPrompts, "--fast"}, "flag provided but not defined: -fast"},
		{"bad seconds", []string{"--endpoint", ep, "--prompts", benchPrompts, "--max-latency-p99", "soon"}, `expected seconds (2.0) or a duration (500ms), got "soon"`},
		{"missing prompts file", []string{"--endpoint", ep, "--prompts", filepath.Join(dir, "none.jsonl")}, "none.jsonl"},
		{"bad prompts line", []string{"--endpoint", ep, "--prompts", badPrompts}, "p.jsonl:2"},
		{"bad sweep", []string{"--endpoint", ep, "--prompts", benchPrompts, "--sweep", "1,x"}, `--sweep: expected auto or a list`},
		{"fractional concurrency", []string{"--endpoint", ep, "--prompts", benchPrompts, "--sweep", "1.5"}, `--sweep: expected auto`},
		{"sweep above requests", []string{"--endpoint", ep, "--prompts", benchPrompts, "--requests", "10", "--sweep", "8,16"}, "--sweep: concurrency 16 is above --requests 10"},
		{"auto sweep without limit", []string{"--endpoint", ep, "--prompts", benchPrompts, "--sweep", "auto"}, "--sweep auto needs a limit"},
		{"error rate", []string{"--endpoint", ep, "--prompts", benchPrompts, "--max-error-rate", "2"}, "--max-error-rate: expected a fraction"},
		{"rate without value", []string{"--endpoint", ep, "--prompts", benchPrompts, "--poisson"}, "--rate: expected requests per second above 0"},
		{"zero concurrency", []string{"--endpoint", ep, "--prompts", benchPrompts, "--concurrency", "0"}, "concurrency: expected at least 1"},
		{"bad baseline", []string{"--endpoint", ep, "--prompts", benchPrompts, "--baseline", notJSON}, `baseline.json:2:17: field "summary.requests"`},
		{"both prompt kinds", []string{"--endpoint", ep, "--prompts", benchPrompts, "--synthetic-input-len", "8", "--synthetic-output-len", "8"}, "exclusive"},
		{"bad endpoint", []string{"--endpoint", "ftp://x", "--prompts", benchPrompts}, "--endpoint"},
		{"positional", []string{"extra", "--endpoint", ep, "--prompts", benchPrompts}, `unexpected argument "extra"`},
		{"bad config", []string{"--endpoint", ep, "--config", filepath.Join(dir, "none.yaml")}, "none.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := benchCLI(t, tc.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want 2\nstdout:\n%s\nstderr:\n%s", code, out, errs)
			}
			if !strings.Contains(errs, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, errs)
			}
		})
	}
}

func TestBenchHelp(t *testing.T) {
	code, _, errs := benchCLI(t, "--help")
	if code != exitOK {
		t.Fatalf("--help: exit %d", code)
	}
	for _, want := range []string{"Exit status: 0 passed, 1 a gate failed, 2 usage or input error", "3 inconclusive", "-min-tokens-per-sec", "-max-latency-p99",
		"-model", "-prompts", "-sweep", "-baseline", "-max-regression", "-report-dir", "-slo-ttft", "-synthetic-input-len"} {
		if !strings.Contains(errs, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

// TestBenchMockLLM runs against a server that is not ours: it streams text
// without usage, so tokens are counted by the client.
func TestBenchMockLLM(t *testing.T) {
	url := testenv.MockLLM(t)
	code, out, errs := benchCLI(t, "--endpoint", url, "--prompts", benchPrompts, "--requests", "10", "--concurrency", "2", "--min-tokens-per-sec", "0.1")
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "Requests: 10 measured, 10 succeeded") {
		t.Errorf("stdout:\n%s", out)
	}
}

func TestBenchRefused(t *testing.T) {
	// A model name the server does not serve: every request is refused
	// (HTTP 404). The run stops early, says why, and is inconclusive.
	url := testenv.Sim(t, simModels+"good", nil)
	code, out, _ := benchCLI(t, "--endpoint", url, "--model", "no-such-model", "--prompts", benchPrompts, "--requests", "1000")
	if code != exitInconclusive {
		t.Fatalf("exit %d, want 3\n%s", code, out)
	}
	for _, want := range []string{"stopped early: the server refused every request: HTTP 404", "no-such-model", "e.g. http_4xx: HTTP 404", "No successful requests"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Requests: 1000 measured") {
		t.Errorf("sent all requests to a server refusing them:\n%s", out)
	}
}

func TestParseSeconds(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"2.0", 2 * time.Second, true}, {"0.1", 100 * time.Millisecond, true}, {"2", 2 * time.Second, true},
		{"1500ms", 1500 * time.Millisecond, true}, {"0", 0, true},
		{"-1", 0, false}, {"-5ms", 0, false}, {"NaN", 0, false}, {"+Inf", 0, false}, {"1e300", 0, false}, {"", 0, false}, {"soon", 0, false},
	} {
		d, err := parseSeconds(tc.in)
		if (err == nil) != tc.ok || d != tc.want {
			t.Errorf("parseSeconds(%q) = %v, %v; want %v (ok %v)", tc.in, d, err, tc.want, tc.ok)
		}
	}
}
