package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/bench/gate"
	"github.com/modelship/modelship/bench/metrics"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// fixture is a hand-made run: exponential-ish latencies, a 10 s timeline,
// two timeouts, SLOs set.
func fixture(load float64, scale float64) *metrics.Summary {
	const n = 200
	ttft := make([]float64, n)
	e2el := make([]float64, n)
	for i := range ttft {
		q := (float64(i) + 0.5) / n
		ttft[i] = scale * (0.08 + 0.04*-math.Log(1-q))
		e2el[i] = scale * (1.1 + 0.3*-math.Log(1-q))
	}
	s := &metrics.Summary{
		Conditions: metrics.Conditions{
			Endpoint: "http://127.0.0.1:8000/v1", Model: "qwen2.5-7b-instruct", Prompts: "testdata/prompts/benchmark_prompts.jsonl",
			LoadMode: "concurrency", Load: load, Requests: 202, Warmup: 5, Seed: 42, MaxTokens: 128,
			ClientVersion: "v0.3.0", Start: time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC),
		},
		Requests: 202, Succeeded: 200, Failed: 2, ErrorRate: 2.0 / 202,
		Failures:      map[string]int{"timeout": 1, "http_5xx": 1},
		ErrorExamples: map[string]string{"timeout": "no answer within 2m0s", "http_5xx": `HTTP 500: {"error": "<engine> crashed"}`},
		Elapsed:       10.42,
		TTFT:          metrics.Distribution{Count: 200, Mean: scale * 0.12, Median: scale * 0.1077, P90: scale * 0.1721, P99: scale * 0.2642, Min: scale * 0.0801, Max: scale * 0.3319, Std: scale * 0.0399},
		ITL:           metrics.Distribution{Count: 25400, Mean: 0.0088, Median: 0.0085, P90: 0.0101, P99: 0.0142, Min: 0.0061, Max: 0.0311, Std: 0.0012},
		TPOT:          metrics.Distribution{Count: 200, Mean: 0.0089, Median: 0.0087, P90: 0.0098, P99: 0.0121, Min: 0.0079, Max: 0.0133, Std: 0.0008},
		E2EL:          metrics.Distribution{Count: 200, Mean: scale * 1.4, Median: scale * 1.308, P90: scale * 1.79, P99: scale * 2.48, Min: scale * 1.1015, Max: scale * 2.99, Std: scale * 0.3},

		InputTokens: 9800, OutputTokens: 25600, OutputTokensPerSec: 2456.8 / scale, TotalTokensPerSec: 3397.3 / scale, RequestsPerSec: 19.39 / scale,
		SLO:     metrics.SLO{TTFT: 250 * time.Millisecond, TPOT: 20 * time.Millisecond},
		Goodput: 18.8 / scale, Attainment: map[string]float64{"ttft": 0.985, "tpot": 1, "all": 0.985},
		E2ELSamples: e2el, TTFTSamples: ttft,
	}
	for sec := 0; sec <= 10; sec++ {
		s.Timeline = append(s.Timeline, metrics.Point{Second: sec, Requests: 19 + sec%3, OutputTokens: 2300 + (sec*137)%400, MeanTTFT: 0.12})
	}
	return s
}

var limits = gate.Limits{MinTokensPerSec: 1000, MaxLatencyP99: 2 * time.Second, MaxTTFTP99: 300 * time.Millisecond, MaxErrorRate: 0.05}

func single() *Report {
	s := fixture(8, 1)
	base := fixture(8, 0.95)
	base.Conditions.MaxTokens = 256
	v := gate.Gate{Limits: limits, Baseline: base, Tolerances: gate.DefaultTolerances}.Evaluate(s)
	r := New(s, &v)
	r.Baseline = "prod/bench.json"
	return r
}

func sweep() *Report {
	sw := &metrics.Sweep{}
	var vs []gate.Verdict
	for i, load := range []float64{1, 2, 4, 8, 16} {
		s := fixture(load, 0.5+0.4*float64(i*i)/4)
		s.OutputTokensPerSec = 400 * load / (1 + load/8)
		s.RequestsPerSec = s.OutputTokensPerSec / 128
		s.Goodput = s.RequestsPerSec * (1 - 0.05*float64(i))
		s.Conditions.LoadMode = "concurrency"
		sw.Runs = append(sw.Runs, *s)
		v := gate.Gate{Limits: gate.Limits{MaxLatencyP99: 3 * time.Second, MaxTTFTP99: 400 * time.Millisecond, MaxErrorRate: -1}}.Evaluate(s)
		vs = append(vs, v)
		if v.Status == gate.Passed {
			sw.MaxLoad = load
		}
	}
	overall := vs[2]
	return NewSweep(sw, vs, &overall)
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run go test ./bench/report -update and review the diff); got:\n%s", name, got)
	}
}

func TestGolden(t *testing.T) {
	renderers := map[string]func(w *bytes.Buffer, r *Report) error{
		"txt":  func(w *bytes.Buffer, r *Report) error { return Text(w, r) },
		"md":   func(w *bytes.Buffer, r *Report) error { return Markdown(w, r) },
		"html": func(w *bytes.Buffer, r *Report) error { return HTML(w, r) },
		"json": func(w *bytes.Buffer, r *Report) error { return JSON(w, r) },
	}
	for name, r := range map[string]*Report{"single": single(), "sweep": sweep()} {
		for ext, render := range renderers {
			t.Run(name+"."+ext, func(t *testing.T) {
				var b bytes.Buffer
				if err := render(&b, r); err != nil {
					t.Fatal(err)
				}
				golden(t, name+"."+ext, b.Bytes())
			})
		}
	}
}

func TestSingleContent(t *testing.T) {
	r := single()
	var txt, md, page bytes.Buffer
	if err := Text(&txt, r); err != nil {
		t.Fatal(err)
	}
	if err := Markdown(&md, r); err != nil {
		t.Fatal(err)
	}
	if err := HTML(&page, r); err != nil {
		t.Fatal(err)
	}
	// The fixture's p99 E2EL 2.48 s breaks the 2 s limit; its TTFT p99 is 5%
	// worse than the baseline's (within 10%).
	if r.Verdict.Status != gate.Failed {
		t.Fatalf("fixture verdict %s, want failed", r.Verdict.Status)
	}
	for _, want := range []string{
		"Verdict: FAIL",
		"FAIL  p99 end-to-end latency",
		"p99 end-to-end latency 2.48 s exceeds the limit 2.00 s",
		"Failures: http_5xx 1, timeout 1",
		"warning: the baseline was measured with max_tokens 256, this run with 128",
		"Goodput:    18.80 requests/s met every SLO (TTFT ≤ 0.25 s, TPOT ≤ 20.0 ms); attainment ttft 98.5%, tpot 100%, all 98.5%",
	} {
		if !strings.Contains(txt.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, txt.String())
		}
	}
	// Aligned: every latency row has the same length.
	var rows []string
	for _, l := range strings.Split(txt.String(), "\n") {
		for _, p := range []string{"Latency (ms)", "TTFT ", "ITL ", "TPOT ", "E2EL "} {
			if strings.HasPrefix(strings.TrimSpace(l), p) {
				rows = append(rows, l)
			}
		}
	}
	if len(rows) != 5 {
		t.Fatalf("latency table has %d rows, want 5:\n%s", len(rows), txt.String())
	}
	for _, l := range rows[1:] {
		if len(l) != len(rows[0]) {
			t.Errorf("latency table not aligned:\n%s", strings.Join(rows, "\n"))
			break
		}
	}
	for _, want := range []string{"## modelship bench: ❌ FAIL", "| ❌ | p99 end-to-end latency |", "| ✅ | output tokens/s |", "| TTFT | 120.0 | 107.7 |"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	h := page.String()
	if n := strings.Count(h, "<svg"); n != 3 {
		t.Errorf("HTML has %d charts, want 3 (TTFT, E2EL, timeline)", n)
	}
	for _, want := range []string{"p99 0.26 s", "p50 1.31 s", "limit 2.00 s", `class="badge failed"`, "Output tokens/s over time"} {
		if !strings.Contains(h, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "http://", "https://"} {
		// The endpoint is http://127.0.0.1 and appears as text; no other URL
		// may (no CDN, no network).
		if bad != "<script" {
			h = strings.ReplaceAll(h, "http://127.0.0.1:8000/v1", "")
			h = strings.ReplaceAll(h, `xmlns="http://www.w3.org/2000/svg"`, "")
		}
		if strings.Contains(h, bad) {
			t.Errorf("HTML contains %q: it must be self-contained", bad)
		}
	}
}

func TestSweepContent(t *testing.T) {
	r := sweep()
	var txt, page bytes.Buffer
	if err := Text(&txt, r); err != nil {
		t.Fatal(err)
	}
	if err := HTML(&page, r); err != nil {
		t.Fatal(err)
	}
	if r.Sweep.MaxLoad != 4 {
		t.Fatalf("fixture max load %g, want 4", r.Sweep.MaxLoad)
	}
	for _, want := range []string{"Highest load meeting the SLOs: concurrency 4", "Details at concurrency 4:", "Load:        sweep of concurrency 1, 2, 4, 8, 16"} {
		if !strings.Contains(txt.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, txt.String())
		}
	}
	h := page.String()
	if n := strings.Count(h, "<svg"); n != 6 {
		t.Errorf("sweep HTML has %d charts, want 6 (TTFT/throughput/goodput vs load, TTFT, E2EL, timeline)", n)
	}
	for _, want := range []string{"TTFT vs load", "Throughput vs load", "max load meeting SLOs: 4", `<tr class="max">`} {
		if !strings.Contains(h, want) {
			t.Errorf("sweep HTML lacks %q", want)
		}
	}
}

// TestEscaping: endpoint and model names are user input.
func TestEscaping(t *testing.T) {
	s := fixture(1, 1)
	s.Conditions.Model = "<script>alert(1)</script>\n| forged | row |"
	s.Conditions.Endpoint = `http://x/"onload="alert(2)`
	s.Conditions.Prompts = "p`|[x](javascript:alert(3))"
	v := gate.Gate{Limits: gate.Limits{MaxErrorRate: -1}}.Evaluate(s)
	r := New(s, &v)
	var txt, md, page bytes.Buffer
	if err := Text(&txt, r); err != nil {
		t.Fatal(err)
	}
	if err := Markdown(&md, r); err != nil {
		t.Fatal(err)
	}
	if err := HTML(&page, r); err != nil {
		t.Fatal(err)
	}
	if h := page.String(); strings.Contains(h, "<script") || strings.Contains(h, `"onload=`) {
		t.Errorf("HTML does not escape user input:\n%s", h)
	}
	if !strings.Contains(page.String(), "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("HTML lacks the escaped model name")
	}
	m := md.String()
	if strings.Contains(m, "<script>") || strings.Contains(m, "\n| forged") || strings.Contains(m, "[x](javascript") {
		t.Errorf("markdown does not escape user input:\n%s", m)
	}
	if strings.Contains(txt.String(), "\n| forged") {
		t.Errorf("text report lets a newline in the model name forge a line")
	}
}

func TestJSONRoundTrip(t *testing.T) {
	for name, r := range map[string]*Report{"single": single(), "sweep": sweep()} {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := JSON(&b, r); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "bench.json")
			if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := ReadJSON(path)
			if err != nil {
				t.Fatal(err)
			}
			// Times lose their monotonic reading and location in JSON;
			// compare re-encoded forms.
			var b2 bytes.Buffer
			if err := JSON(&b2, got); err != nil {
				t.Fatal(err)
			}
			if b.String() != b2.String() {
				t.Errorf("round trip changed the report")
			}
			if !reflect.DeepEqual(got.Main().TTFT, r.Main().TTFT) || got.Main().Conditions.Start != r.Main().Conditions.Start {
				t.Errorf("round trip changed figures")
			}
		})
	}
}

func TestBaselineFor(t *testing.T) {
	r := sweep()
	if got := r.BaselineFor(8).Conditions.Load; got != 8 {
		t.Errorf("BaselineFor(8) picked load %g", got)
	}
	if got := r.BaselineFor(3).Conditions.Load; got != 4 {
		t.Errorf("BaselineFor(3) picked load %g, want the max load 4", got)
	}
	if got := r.RunAt("concurrency", 8); got == nil || got.Conditions.Load != 8 {
		t.Errorf("RunAt(8) = %v", got)
	}
	if r.RunAt("concurrency", 3) != nil || r.RunAt("rate", 8) != nil {
		t.Errorf("RunAt must match the load and its mode exactly")
	}
	s := single()
	if s.RunAt("concurrency", 8) != s.Summary || s.RunAt("concurrency", 4) != nil {
		t.Errorf("RunAt on a single run")
	}
	if got := s.BaselineFor(99); got != s.Summary {
		t.Errorf("BaselineFor on a single run must return it")
	}
}

func TestParseErrors(t *testing.T) {
	bare, _ := json.Marshal(fixture(2, 1))
	for _, tc := range []struct {
		name, data, want string
	}{
		{"syntax", "{\n  \"summary\": {\n    \"requests\": 1,,\n", "b.json:3:19: invalid character ','"},
		{"type", `{"summary": {"requests": "many"}}`, `b.json:1:31: field "summary.requests": expected int, got JSON string`},
		{"not a report", `{"hello": 1}`, `b.json: not a modelship bench report`},
		{"array", `[1]`, `b.json:1:1: json: cannot unmarshal array`},
		{"empty sweep", `{"sweep": {"runs": []}}`, "b.json: the report holds no runs"},
		{"both", `{"summary": {"requests": 1}, "sweep": {"runs": [{}]}}`, `has both "summary" and "sweep"`},
		{"newer", `{"format_version": 99, "summary": {}}`, "format_version 99 is newer"},
		{"bare summary", string(bare), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse("b.json", []byte(tc.data))
			if tc.want == "" {
				if err != nil || r.Summary == nil || r.Summary.Conditions.Load != 2 {
					t.Fatalf("Parse = %v, %v", r, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := ReadJSON(filepath.Join(t.TempDir(), "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	// Small seeds: the fuzzer minimises slowly on large ones.
	f.Add([]byte(`{"summary":{"conditions":{"load_mode":"rate","load":2},"requests":3,"succeeded":2,"failed":1,"failures_by_kind":{"timeout":1},` +
		`"ttft":{"count":2,"p99":0.2},"e2el":{"count":2,"p99":1},"ttft_samples":[0.1,0.2],"e2el_samples":[0.9,1],"timeline":[{"t":0,"output_tokens":5},{"t":1,"output_tokens":7}],` +
		`"slo":{"ttft_ns":100000000},"elapsed_s":1.5},"verdict":{"status":"fail","checks":[{"name":"p99 TTFT","figure":0.2,"limit":0.1,"unit":"s"}]}}`))
	f.Add([]byte(`{"sweep":{"runs":[{"requests":1}],"max_load_meeting_slo":1}}`))
	f.Add([]byte(`{"conditions":{},"requests":3}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse("f.json", data)
		if err != nil {
			return
		}
		// Anything Parse accepts renders.
		var out bytes.Buffer
		if err := Text(&out, r); err != nil {
			t.Fatalf("Text: %v", err)
		}
		if err := HTML(&out, r); err != nil {
			t.Fatalf("HTML: %v", err)
		}
		if err := Markdown(&out, r); err != nil {
			t.Fatalf("Markdown: %v", err)
		}
	})
}

// BenchmarkReports renders every format of a sweep of five loads with 200
// samples each; ns/op is the cost of writing the reports once.
func BenchmarkReports(b *testing.B) {
	r := sweep()
	var buf bytes.Buffer
	for i := 0; i < b.N; i++ {
		buf.Reset()
		Text(&buf, r)
		Markdown(&buf, r)
		JSON(&buf, r)
		HTML(&buf, r)
	}
	b.ReportMetric(float64(buf.Len())/1024, "KiB/report-set")
}

// A bench.json written before the stages shared one verdict vocabulary
// ("pass", "fail") reads in today's words: a baseline kept from an earlier
// release still renders and compares.
func TestParseOldStatus(t *testing.T) {
	r, err := Parse("old.json", []byte(`{"summary":{"requests":3,"succeeded":3},"verdict":{"status":"pass","checks":[]},`+
		`"sweep_verdicts":[{"status":"fail","checks":[]},{"status":"inconclusive","checks":[]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Verdict.Status != gate.Passed || len(r.SweepVerdicts) != 2 || r.SweepVerdicts[0].Status != gate.Failed || r.SweepVerdicts[1].Status != gate.Inconclusive {
		t.Errorf("verdicts %+v %+v", r.Verdict, r.SweepVerdicts)
	}
}
