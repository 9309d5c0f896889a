package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelship/modelship/internal/testenv"
	"github.com/modelship/modelship/serving/stage"
)

func validate(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"validate"}, args...), stdio{in: strings.NewReader(""), out: &out, err: &errb})
	return code, out.String(), errb.String()
}

const articleCases = "../../testdata/suites/validation_cases.json"

func TestValidateGoodModelPasses(t *testing.T) {
	base := testenv.Sim(t, "../../testdata/models/good", nil)
	dir := t.TempDir()
	code, out, errs := validate(t, "--endpoint", base+"/v1", "--cases", articleCases, "--report-dir", dir)
	if code != exitOK {
		t.Fatalf("exit %d, want 0\n%s%s", code, out, errs)
	}
	if !strings.HasPrefix(out, "PASSED: 6 validation cases\n") {
		t.Errorf("summary:\n%s", out)
	}
	for _, f := range []string{"validation.json", "junit.xml", "summary.md"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 3 {
		t.Errorf("report dir holds %d entries, want the 3 reports (no temporary files)", len(ents))
	}
	// The example YAML suite passes too, with the endpoint given without /v1.
	if code, out, errs := validate(t, "--endpoint", base, "--cases", "../../testdata/suites/example.yaml"); code != exitOK {
		t.Fatalf("example.yaml: exit %d\n%s%s", code, out, errs)
	}
}

func TestValidateRegressedModelFails(t *testing.T) {
	base := testenv.Sim(t, "../../testdata/models/regressed", nil)
	dir := t.TempDir()
	code, out, _ := validate(t, "--endpoint", base+"/v1", "--cases", articleCases, "--report-dir", dir, "--concurrency", "2")
	if code != exitFailed {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	for _, want := range []string{"FAILED: 6 of 6 validation cases did not pass", "  - capital-of-france: missing 'Paris'", `assertion: icontains: "Paris"  (../../testdata/suites/validation_cases.json:2)`, `output: "The capital of France is Lyon."`} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	var rep struct {
		Verdict string `json:"verdict"`
		Cases   []struct {
			Name string `json:"name"`
			Line int    `json:"line"`
		} `json:"cases"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "validation.json"))
	if err != nil || json.Unmarshal(b, &rep) != nil || rep.Verdict != "failed" || rep.Cases[5].Name != "kv-cache" || rep.Cases[5].Line != 35 {
		t.Errorf("validation.json: %v %+v", err, rep)
	}
	x, _ := os.ReadFile(filepath.Join(dir, "junit.xml"))
	var v any
	if err := xml.Unmarshal(x, &v); err != nil || !bytes.Contains(x, []byte(`failures="6"`)) {
		t.Errorf("junit.xml: %v\n%s", err, x)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "summary.md"))
	if !bytes.Contains(md, []byte("| `capital-of-france` (line 2) | ❌ failed |")) {
		t.Errorf("summary.md:\n%s", md)
	}
	// A pass threshold low enough lets it through... but nothing passed.
	if code, _, _ := validate(t, "--endpoint", base, "--cases", articleCases, "--pass-threshold", "50%"); code != exitFailed {
		t.Errorf("--pass-threshold 50%% with 0 passing: exit %d, want 1", code)
	}
}

func TestValidateUnreachableIsInconclusive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	code, out, _ := validate(t, "--endpoint", "http://"+addr+"/v1", "--cases", articleCases, "--retries", "1")
	if code != exitInconclusive || !strings.Contains(out, "INCONCLUSIVE") || !strings.Contains(out, "unreachable") {
		t.Fatalf("exit %d, want 3\n%s", code, out)
	}
}

func TestValidateUsageErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("cases:\n  - name: a\n    messages: [{role: user, content: hi}]\n    expect:\n      - regex: '(['\n"), 0o644)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no endpoint", []string{"--cases", articleCases}, "--endpoint is required"},
		{"no cases", []string{"--endpoint", "http://127.0.0.1:1"}, "--cases is required"},
		{"bad endpoint", []string{"--endpoint", "localhost:8100", "--cases", articleCases}, "expected an http(s) URL"},
		{"bad suite", []string{"--endpoint", "http://127.0.0.1:1", "--cases", bad}, "bad.yaml:5:16: case \"a\": regex \"([\" does not compile"},
		{"missing suite", []string{"--endpoint", "http://127.0.0.1:1", "--cases", filepath.Join(dir, "none.json")}, "no such file"},
		{"bad threshold", []string{"--endpoint", "http://127.0.0.1:1", "--cases", articleCases, "--pass-threshold", "150%"}, "invalid value"},
		{"bad concurrency", []string{"--endpoint", "http://127.0.0.1:1", "--cases", articleCases, "--concurrency", "0"}, "--concurrency"},
		{"unknown flag", []string{"--nope"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		code, _, errs := validate(t, tt.args...)
		if code != exitUsage || !strings.Contains(errs, tt.want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q", tt.name, code, errs, tt.want)
		}
	}
}

func TestValidateHelp(t *testing.T) {
	code, _, errs := validate(t, "--help")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"0  passed", "1  gate failed", "2  usage or input error", "3  inconclusive", "-endpoint", "-cases", "-model", "-report-dir", "-concurrency", "-timeout", "-retries", "-pass-threshold", "-config"} {
		if !strings.Contains(errs, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestValidateConfig(t *testing.T) {
	base := testenv.Sim(t, "../../testdata/models/good", nil)
	dir := t.TempDir()
	abs, _ := filepath.Abs(articleCases)
	cfg := filepath.Join(dir, "modelship.yaml")
	os.WriteFile(cfg, []byte("version: 1\nmodel:\n  path: m\n  served-name: good\nsuites:\n  validation: "+abs+"\n"), 0o644)
	code, out, errs := validate(t, "--endpoint", base, "--config", cfg)
	if code != exitOK || !strings.Contains(out, "model good") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
}

func TestValidateAgainstMockLLM(t *testing.T) {
	// A server that is not ours, configured so that one suite passes and
	// one fails.
	base := testenv.MockLLMConfig(t, `rules:
  - path: "/v1/chat/completions"
    match: "@"
    response:
      status: 200
      content: '{"choices":[{"index":0,"message":{"role":"assistant","content":"I do not know."},"finish_reason":"stop"}]}'
  - path: "/v1/chat/completions"
    match: "contains(body.messages[-1].content, 'France')"
    response:
      status: 200
      content: '{"choices":[{"index":0,"message":{"role":"assistant","content":"The capital of France is Paris."},"finish_reason":"stop"}]}'
  - path: "/v1/chat/completions"
    match: "contains(body.messages[-1].content, '2+2')"
    response:
      status: 200
      content: '{"choices":[{"index":0,"message":{"role":"assistant","content":"4"},"finish_reason":"stop"}]}'
`)
	dir := t.TempDir()
	pass := filepath.Join(dir, "pass.json")
	os.WriteFile(pass, []byte(`[
  {"name": "capital", "messages": [{"role": "user", "content": "What is the capital of France?"}], "expected_keywords": ["paris"]},
  {"name": "sum", "messages": [{"role": "user", "content": "What is 2+2?"}], "max_tokens": 8, "expected_keywords": ["4"]}
]`), 0o644)
	if code, out, errs := validate(t, "--endpoint", base+"/v1", "--cases", pass, "--model", "any"); code != exitOK {
		t.Fatalf("passing suite: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ := validate(t, "--endpoint", base+"/v1", "--cases", articleCases, "--model", "any")
	if code != exitFailed || !strings.Contains(out, "  - largest-planet: missing 'Jupiter'") || !strings.Contains(out, `output: "I do not know."`) {
		t.Fatalf("article suite on mock-llm: exit %d\n%s", code, out)
	}
}

// --json: the stage result alone on stdout, the summary on stderr, for a
// suite that passes and one that fails.
func TestValidateJSON(t *testing.T) {
	for _, tc := range []struct {
		model   string
		verdict stage.Verdict
		passed  float64
		message string
	}{
		{"good", stage.Passed, 6, "passed: 6 of 6 cases passed, 6 needed"},
		{"regressed", stage.Failed, 0, "failed: 0 of 6 cases passed, 6 needed"},
	} {
		base := testenv.Sim(t, "../../testdata/models/"+tc.model, nil)
		dir := t.TempDir()
		code, out, errs := validate(t, "--endpoint", base+"/v1", "--cases", articleCases, "--report-dir", dir, "--json")
		r := stageResult(t, "validate", code, out, tc.verdict)
		wantReports(t, r, filepath.Join(dir, "validation.json"), filepath.Join(dir, "junit.xml"), filepath.Join(dir, "summary.md"))
		f := r.Figures
		if f["cases_passed"] != tc.passed || f["cases_total"] != 6 || f["cases_needed"] != 6 || f["pass_rate"] != tc.passed/6 ||
			!strings.HasPrefix(r.Message, tc.message) || r.Endpoint != base+"/v1" || !strings.Contains(errs, "validation cases") {
			t.Errorf("%s: %+v\nstderr:\n%s", tc.model, r, errs)
		}
	}
}

// A passing suite whose reports cannot be written does not pass: the
// result says failed, why, and lists no report.
func TestValidateJSONReportsUnwritable(t *testing.T) {
	base := testenv.Sim(t, "../../testdata/models/good", nil)
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, nil, 0o644)
	code, out, _ := validate(t, "--endpoint", base+"/v1", "--cases", articleCases, "--report-dir", notDir, "--json")
	r := stageResult(t, "validate", code, out, stage.Failed)
	if !strings.HasPrefix(r.Message, "failed: 6 of 6 cases passed, 6 needed; ") || !strings.Contains(r.Message, "; writing reports: ") ||
		len(r.Reports) != 0 || r.Figures["cases_passed"] != 6 {
		t.Errorf("%+v", r)
	}
}
