package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/modelship/modelship/internal/gha"
	"github.com/modelship/modelship/internal/testenv"
)

// The tests of this package check what commands print. When they run inside
// GitHub Actions (ci.yml), the runner's variables would make every command
// write workflow commands and touch the job's real output files: clear them;
// the tests below set their own.
func init() {
	for _, k := range []string{"GITHUB_ACTIONS", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STATE"} {
		os.Unsetenv(k)
	}
}

// actionsRunner sets the environment of a GitHub Actions step for the test:
// GITHUB_ACTIONS=true, output and summary files, the workspace at the
// repository root.
type actionsRunner struct{ output, summary string }

func inActions(t *testing.T) *actionsRunner {
	t.Helper()
	dir := t.TempDir()
	r := &actionsRunner{output: filepath.Join(dir, "github_output"), summary: filepath.Join(dir, "step_summary")}
	t.Setenv("GITHUB_ACTIONS", "true")
	t.Setenv("GITHUB_OUTPUT", r.output)
	t.Setenv("GITHUB_STEP_SUMMARY", r.summary)
	t.Setenv("GITHUB_WORKSPACE", mustAbs(t, "../.."))
	return r
}

// outputs reads GITHUB_OUTPUT as the runner does.
func (r *actionsRunner) outputs(t *testing.T) map[string]string {
	t.Helper()
	m, err := gha.ReadOutputs(r.output)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (r *actionsRunner) stepSummary(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(r.summary)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sameOutputs(t *testing.T, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("output %s = %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected output %s = %q", k, got[k])
		}
	}
}

func TestValidateInGitHubActions(t *testing.T) {
	r := inActions(t)
	const apiKey, hookSecret = "sk-test-4f1c2a9e", "hunter2-webhook-value"
	t.Setenv("OPENAI_API_KEY", apiKey)
	t.Setenv("MODELSHIP_WEBHOOK_SECRET", hookSecret)
	base := testenv.Sim(t, "../../testdata/models/regressed", nil)
	dir := t.TempDir()
	code, out, errs := runCLI(t, "validate", "--endpoint", base+"/v1", "--cases", articleCases, "--config", "../../modelship.yaml", "--model", "regressed", "--report-dir", dir, "--concurrency", "2")
	if code != exitFailed {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errs)
	}

	// Outputs, as a later step reads them.
	raw, _ := os.ReadFile(r.output)
	if !strings.HasPrefix(string(raw), "validation-verdict<<_GitHubActionsFileCommandDelimeter_\nfailed\n_GitHubActionsFileCommandDelimeter_\n") {
		t.Errorf("GITHUB_OUTPUT does not start with the verdict in the runner's format:\n%s", raw)
	}
	sameOutputs(t, r.outputs(t), map[string]string{
		"validation-verdict": "failed",
		"validation-passed":  "0",
		"validation-total":   "6",
		"validation-report":  filepath.Join(dir, "validation.json"),
		"validation-junit":   filepath.Join(dir, "junit.xml"),
		"validation-summary": filepath.Join(dir, "summary.md"),
	})

	// The step summary is the validation table: summary.md, as written;
	// then the notifications that could not be delivered (modelship.yaml's
	// webhook points at a port nothing listens on), named without the secret.
	md, err := os.ReadFile(filepath.Join(dir, "summary.md"))
	if err != nil {
		t.Fatal(err)
	}
	summary := r.stepSummary(t)
	rest, ok := strings.CutPrefix(summary, string(md)+"\n")
	if !ok {
		t.Errorf("step summary does not start with summary.md:\n%s\n---\n%s", summary, md)
	}
	if !strings.HasPrefix(rest, "\n#### Notifications not delivered\n\n- webhook: validate started not delivered after 3 attempt(s)") ||
		!strings.Contains(rest, "- webhook: validate failed not delivered") {
		t.Errorf("step summary after summary.md, want the undelivered notifications:\n%s", rest)
	}
	if !strings.Contains(errs, "modelship: warning: notification: webhook: validate failed not delivered") {
		t.Errorf("stderr lacks the notification warning:\n%s", errs)
	}
	if !strings.Contains(summary, "## ❌ Validation FAILED") || !strings.Contains(summary, "| `capital-of-france` (line 2) | ❌ failed |") {
		t.Errorf("step summary:\n%s", summary)
	}

	// One error annotation per failing case, at its line in the suite file
	// (relative to the workspace), inside nothing: after the group ends.
	ann := regexp.MustCompile(`(?m)^::error file=testdata/suites/validation_cases\.json,line=(\d+),title=validation case "([^"]+)" failed::(.*)$`).FindAllStringSubmatch(out, -1)
	if len(ann) != 6 {
		t.Fatalf("%d annotations, want 6:\n%s", len(ann), out)
	}
	if a := ann[0]; a[1] != "2" || a[2] != "capital-of-france" || a[3] != "missing 'Paris'" {
		t.Errorf("first annotation %q", a[0])
	}
	if a := ann[5]; a[1] != "35" || a[2] != "kv-cache" {
		t.Errorf("last annotation %q", a[0])
	}
	group := strings.Index(out, "::group::validate: 6 cases of ../../testdata/suites/validation_cases.json against "+base+"/v1\n")
	end := strings.Index(out, "::endgroup::\n")
	report := strings.Index(out, "FAILED: 6 of 6 validation cases did not pass")
	if group < 0 || end < group || report < end || strings.Index(out, "::error") < report {
		t.Errorf("want group, endgroup, report, annotations in that order:\n%s", out)
	}

	// Secrets are masked before anything else is printed, and never shown
	// anywhere else.
	for _, secret := range []string{apiKey, hookSecret} {
		mask := "::add-mask::" + secret + "\n"
		if !strings.HasPrefix(out, mask) && !strings.Contains(out[:group], mask) {
			t.Errorf("%q not masked before the group:\n%s", secret, out[:max(group, 0)])
		}
		if n := strings.Count(out+errs, secret); n != 1 {
			t.Errorf("secret %q appears %d times in stdout+stderr, want only in ::add-mask::", secret, n)
		}
		for _, f := range []string{r.output, r.summary, filepath.Join(dir, "validation.json"), filepath.Join(dir, "junit.xml")} {
			if b, _ := os.ReadFile(f); strings.Contains(string(b), secret) {
				t.Errorf("%s holds the secret", f)
			}
		}
	}
}

func TestValidatePassingInGitHubActions(t *testing.T) {
	r := inActions(t)
	base := testenv.Sim(t, "../../testdata/models/good", nil)
	code, out, errs := runCLI(t, "validate", "--endpoint", base, "--cases", articleCases)
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	sameOutputs(t, r.outputs(t), map[string]string{"validation-verdict": "passed", "validation-passed": "6", "validation-total": "6"})
	if strings.Contains(out, "::error") || strings.Contains(out, "::add-mask::") {
		t.Errorf("a passing run annotated or masked something:\n%s", out)
	}
	if s := r.stepSummary(t); !strings.HasPrefix(s, "## ✅ Validation PASSED") {
		t.Errorf("summary:\n%s", s)
	}
}

func TestCommandsOutsideGitHubActionsPrintNoWorkflowCommands(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("GITHUB_OUTPUT", filepath.Join(dir, "out")) // set, but GITHUB_ACTIONS is not
	t.Setenv("GITHUB_STEP_SUMMARY", filepath.Join(dir, "sum"))
	base := testenv.Sim(t, "../../testdata/models/regressed", nil)
	_, out, errs := runCLI(t, "validate", "--endpoint", base, "--cases", articleCases)
	if strings.Contains(out+errs, "::") {
		t.Errorf("workflow commands outside Actions:\n%s%s", out, errs)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files written outside Actions: %v", ents)
	}
}

func TestBenchInGitHubActions(t *testing.T) {
	r := inActions(t)
	url := testenv.Sim(t, simModels+"slow", nil)
	dir := t.TempDir()
	code, out, errs := benchCLI(t, "--endpoint", url, "--model", "slow", "--prompts", benchPrompts,
		"--requests", "10", "--concurrency", "10", "--max-tokens", "4", "--max-latency-p99", "0.1", "--report-dir", dir)
	if code != exitFailed {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errs)
	}
	var rep struct {
		Summary struct {
			OutputTokensPerSec float64 `json:"output_tokens_per_s"`
			ErrorRate          float64 `json:"error_rate"`
			TTFT, E2EL         struct {
				P99 float64 `json:"p99"`
			}
		} `json:"summary"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "bench.json"))
	if err != nil || json.Unmarshal(b, &rep) != nil {
		t.Fatalf("bench.json: %v", err)
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	sameOutputs(t, r.outputs(t), map[string]string{
		"bench-verdict":               "failed",
		"bench-output-tokens-per-sec": f(rep.Summary.OutputTokensPerSec),
		"bench-ttft-p99-seconds":      f(rep.Summary.TTFT.P99),
		"bench-e2el-p99-seconds":      f(rep.Summary.E2EL.P99),
		"bench-error-rate":            "0",
		"bench-requests":              "10",
		"bench-report":                filepath.Join(dir, "bench.json"),
		"bench-report-markdown":       filepath.Join(dir, "bench.md"),
		"bench-report-html":           filepath.Join(dir, "bench.html"),
	})
	md, _ := os.ReadFile(filepath.Join(dir, "bench.md"))
	if s := r.stepSummary(t); s != string(md)+"\n" || len(md) == 0 {
		t.Errorf("step summary is not bench.md:\n%s\n---\n%s", s, md)
	}
	if !regexp.MustCompile(`(?m)^::error title=bench gate failed%3A p99 end-to-end latency::.*exceeds the limit 0\.10 s`).MatchString(out) {
		t.Errorf("no annotation for the failed gate:\n%s", out)
	}
	if !strings.Contains(out, "::group::bench: ") || !strings.Contains(out, "::endgroup::") {
		t.Errorf("no group:\n%s", out)
	}
}

func TestInspectAndPreflightSetModelDigest(t *testing.T) {
	r := inActions(t)
	code, js, errs := runCLI(t, "inspect", "../../testdata/models/good", "--json", "--cache-dir", t.TempDir())
	if code != exitOK {
		t.Fatalf("inspect: exit %d: %s", code, errs)
	}
	var info struct{ Digest string }
	if err := json.Unmarshal([]byte(js), &info); err != nil || !strings.HasPrefix(info.Digest, "sha256:") {
		t.Fatalf("--json stdout must stay JSON in Actions: %v\n%s", err, js)
	}
	sameOutputs(t, r.outputs(t), map[string]string{"model-digest": info.Digest})

	os.Remove(r.output)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("MODELSHIP_WEBHOOK_SECRET", "preflight-secret-value")
	code, out, errs := runCLI(t, "preflight", "../../modelship.yaml")
	if code != exitOK {
		t.Fatalf("preflight: exit %d: %s%s", code, out, errs)
	}
	sameOutputs(t, r.outputs(t), map[string]string{"model-digest": info.Digest, "preflight-verdict": "passed"})
	if !strings.HasPrefix(out, "::add-mask::preflight-secret-value\n") || strings.Count(out+errs, "preflight-secret-value") != 1 {
		t.Errorf("secret not masked first, or shown:\n%s%s", out, errs)
	}
}

func TestSmokeInGitHubActions(t *testing.T) {
	r := inActions(t)
	base := testenv.Sim(t, "../../testdata/models/good", nil)
	code, out, _ := runCLI(t, "smoke", "--endpoint", base, "--model", "no-such-model")
	if code != exitFailed {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	sameOutputs(t, r.outputs(t), map[string]string{"smoke-verdict": "failed"})
	if !strings.Contains(out, "::error title=smoke check failed%3A models::GET /v1/models does not list \"no-such-model\"") {
		t.Errorf("no annotation for the failed check:\n%s", out)
	}

	os.Remove(r.output)
	code, _, _ = runCLI(t, "smoke", "--endpoint", "http://127.0.0.1:1", "--timeout", "2s")
	if code != exitInconclusive {
		t.Fatalf("unreachable: exit %d, want 3", code)
	}
	sameOutputs(t, r.outputs(t), map[string]string{"smoke-verdict": "inconclusive"})
}
