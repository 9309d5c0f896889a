package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/golden"

	"github.com/modelship/modelship/suite"
)

// fixture is a report with a passing case, a failing one, a malformed
// answer and one that could not run.
func fixture() *suite.Report {
	r := &suite.Report{
		Suite: "tests/validation_cases.json", Name: "tests/validation_cases.json", Format: suite.FormatArticle,
		Endpoint: "http://localhost:8100/v1/", Model: "good", Client: suite.ClientLibrary,
		Started: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Duration: 1.25, PassThreshold: 1,
		Verdict: suite.Failed, Reason: "1 of 4 cases passed, 4 needed (threshold 100%)",
		Total: 4, Passed: 1, Failed: 2, Errored: 1, Needed: 4,
		Cases: []suite.CaseResult{
			{Name: "capital-of-france", File: "tests/validation_cases.json", Line: 2, Kind: "chat", Status: suite.StatusPassed, Repeat: 1, PassRate: 1, Passes: 1,
				Runs: []suite.RunResult{{Status: suite.StatusPassed, Output: "The capital of France is Paris.", FinishReason: "stop", CompletionTokens: 7, Latency: 0.031, Attempts: 1}}},
			{Name: "arithmetic", File: "tests/validation_cases.json", Line: 8, Kind: "chat", Status: suite.StatusFailed, Reason: "missing '4'", Repeat: 1, PassRate: 1,
				Runs: []suite.RunResult{{Status: suite.StatusFailed, Output: "2+2 = 5 | maybe", FinishReason: "stop", CompletionTokens: 6, Latency: 0.028, Attempts: 1,
					Failures: []suite.Failure{{Assertion: `icontains: "4"`, Line: 8, Message: "missing '4'"}}}}},
			{Name: "json", File: "tests/validation_cases.json", Line: 14, Kind: "chat", Status: suite.StatusFailed, Reason: "response is not JSON", Repeat: 1, PassRate: 1,
				Runs: []suite.RunResult{{Status: suite.StatusFailed, Attempts: 1, Error: "response is not JSON", Body: "<html>Bad gateway</html>"}}},
			{Name: "kv-cache", File: "tests/validation_cases.json", Line: 20, Kind: "chat", Status: suite.StatusError, Reason: "HTTP 503 from the server: overloaded (after 4 attempts)", Repeat: 1, PassRate: 1,
				Runs: []suite.RunResult{{Status: suite.StatusError, Attempts: 4, Error: "HTTP 503 from the server: overloaded (after 4 attempts)"}}},
		},
	}
	return r
}

func TestReporters(t *testing.T) {
	for name, rep := range map[string]Reporter{"text.golden": Text, "summary.md.golden": Markdown, "junit.xml.golden": JUnit, "validation.json.golden": JSON} {
		var b bytes.Buffer
		if err := rep(&b, fixture()); err != nil {
			t.Fatal(err)
		}
		golden.Check(t, name, b.Bytes())
	}
}

func TestJUnitParses(t *testing.T) {
	var b bytes.Buffer
	if err := JUnit(&b, fixture()); err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	ts := doc.Suites[0]
	if len(ts.Cases) != 4 || ts.Failures != 2 || ts.Errors != 1 || ts.Cases[1].Failure == nil || ts.Cases[1].Line != 8 || ts.Cases[3].Error == nil || ts.Cases[0].Failure != nil {
		t.Errorf("junit: %+v", ts)
	}
	props := map[string]string{}
	for _, p := range ts.Properties {
		props[p.Name] = p.Value
	}
	if props["model"] != "good" || props["endpoint"] != "http://localhost:8100/v1/" {
		t.Errorf("properties: %v", props)
	}
}

func TestJSONRoundTrips(t *testing.T) {
	var b bytes.Buffer
	if err := JSON(&b, fixture()); err != nil {
		t.Fatal(err)
	}
	var r suite.Report
	if err := json.Unmarshal(b.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Verdict != suite.Failed || len(r.Cases) != 4 || r.Cases[1].Runs[0].Failures[0].Message != "missing '4'" {
		t.Errorf("round trip: %+v", r)
	}
}
