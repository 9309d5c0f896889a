package suite

import (
	"encoding/json"
	"strings"
	"testing"
)

const textCheckSuite = `
cases:
  - name: capital
    messages:
      - role: system
        content: Be brief.
      - role: user
        content: What is the capital of France?
    expect:
      - icontains: paris
      - not-contains: [Lyon, Marseille]
      - finish-reason: stop
      - max-latency: 5s
  - name: json
    prompt: "Give a JSON object with a key a"
    expect:
      - is-json: true
      - json-schema: {"type": "object", "required": ["a"]}
  - name: latency-only
    prompt: hi
    expect:
      - max-latency: 1s
`

// The text assertions survive the trip through JSON (to the gateway) and
// judge answers by prompt, as the suite itself would.
func TestTextChecksTravelAndJudge(t *testing.T) {
	st, err := Parse("suite.yaml", []byte(textCheckSuite))
	if err != nil {
		t.Fatal(err)
	}
	checks := st.TextChecks()
	if len(checks) != 2 {
		t.Fatalf("%d checks, want 2 (the latency-only case has no text assertion): %+v", len(checks), checks)
	}
	if checks[0].Prompt != "What is the capital of France?" || len(checks[0].Assertions) != 2 {
		t.Errorf("capital: %+v, want the last user message and its 2 text assertions", checks[0])
	}
	b, err := json.Marshal(checks)
	if err != nil {
		t.Fatal(err)
	}
	var back []TextCheck
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	c, err := NewChecker(back)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		prompt, answer string
		checked        bool
		fails          string
	}{
		{"What is the capital of France?", "Paris.", true, ""},
		{"  What is the capital of France?\n", "It is Lyon, not Paris", true, `case "capital": not-contains: ["Lyon", "Marseille"]: contains forbidden 'Lyon'`},
		{"What is the capital of France?", "Rome", true, "missing 'paris'"},
		{"Give a JSON object with a key a", `{"a": 1}`, true, ""},
		{"Give a JSON object with a key a", `{"b": 1}`, true, "does not match the JSON schema"},
		{"Give a JSON object with a key a", `nope`, true, "not JSON"},
		{"hi", "anything", false, ""},
		{"an unknown prompt", "anything", false, ""},
	} {
		checked, err := c.Check(tc.prompt, tc.answer)
		if checked != tc.checked || (err == nil) != (tc.fails == "") || (err != nil && !strings.Contains(err.Error(), tc.fails)) {
			t.Errorf("Check(%q, %q) = %v, %v; want %v and an error with %q", tc.prompt, tc.answer, checked, err, tc.checked, tc.fails)
		}
	}
}

func TestNewCheckerNamesTheBadAssertion(t *testing.T) {
	for _, tc := range []struct {
		check TextCheck
		want  string
	}{
		{TextCheck{Case: "a", Prompt: "p", Assertions: []TextAssertion{{Kind: "max-latency", Value: json.RawMessage(`"1s"`)}}}, `checks[0] (case "a"): assertions[0]: "max-latency" is not an assertion on the text`},
		{TextCheck{Case: "b", Prompt: "p", Assertions: []TextAssertion{{Kind: "regex", Value: json.RawMessage(`"("`)}}}, `checks[0] (case "b"): assertions[0]: regex "(" does not compile`},
		{TextCheck{Case: "c", Prompt: "p", Assertions: []TextAssertion{{Kind: "contains", Value: json.RawMessage(`3`)}}}, "contains: expected a string or a list of strings, got 3"},
		{TextCheck{Case: "d", Prompt: " ", Assertions: nil}, `checks[0] (case "d"): expected a prompt`},
	} {
		if _, err := NewChecker([]TextCheck{tc.check}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewChecker(%+v) = %v, want an error with %q", tc.check, err, tc.want)
		}
	}
}
