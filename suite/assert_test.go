package suite

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestAssertions(t *testing.T) {
	paris := &Answer{Text: "The capital of France is Paris.", FinishReason: "stop", CompletionTokens: 7, Latency: 300 * time.Millisecond}
	js := &Answer{Text: ` {"country": "France", "capital": "Paris"} `, FinishReason: "stop"}
	schema := json.RawMessage(`{"type":"object","required":["capital"],"properties":{"capital":{"const":"Paris"}}}`)
	tests := []struct {
		kind    string
		value   any
		ans     *Answer
		wantMsg string // "" passes
	}{
		{"contains", "Paris", paris, ""},
		{"contains", "paris", paris, "missing 'paris' (case-sensitive)"},
		{"icontains", "PARIS", paris, ""},
		{"icontains", "Lyon", paris, "missing 'Lyon'"},
		{"contains-all", []string{"France", "Paris"}, paris, ""},
		{"contains-all", []string{"France", "Lyon", "Nice"}, paris, "missing 'Lyon', 'Nice'"},
		{"contains-any", []string{"Lyon", "Paris"}, paris, ""},
		{"contains-any", []string{"Lyon", "Nice"}, paris, "none of 'Lyon', 'Nice' found"},
		{"not-contains", "Lyon", paris, ""},
		{"not-contains", []string{"Lyon", "Paris"}, paris, "contains forbidden 'Paris'"},
		{"regex", `(?i)\bparis\b`, paris, ""},
		{"regex", `^\d+$`, paris, `does not match /^\d+$/`},
		{"equals", "The capital of France is Paris.", &Answer{Text: "\n The capital of France is Paris. \n"}, ""},
		{"equals", "Paris", paris, "is not equal to 'Paris'"},
		{"starts-with", "The capital", &Answer{Text: "  The capital"}, ""},
		{"starts-with", "Paris", paris, "does not start with 'Paris'"},
		{"is-json", true, js, ""},
		{"is-json", true, &Answer{Text: "```json\n{}\n```"}, "not JSON: invalid character '`' looking for beginning of value"},
		{"is-json", true, &Answer{Text: `{"a":1} trailing`}, "not JSON: invalid character after top-level value"},
		{"json-schema", schema, js, ""},
		{"json-schema", schema, &Answer{Text: `{"capital":"Lyon"}`}, "does not match the JSON schema: at '/capital': value must be 'Paris'"},
		{"json-schema", schema, paris, "not JSON: invalid character 'T' looking for beginning of value"},
		{"finish-reason", "stop", paris, ""},
		{"finish-reason", "stop", &Answer{FinishReason: "length"}, "finish_reason is 'length', want 'stop'"},
		{"max-latency", time.Second, paris, ""},
		{"max-latency", 100 * time.Millisecond, paris, "took 300ms, limit 100ms"},
		{"min-tokens", 7, paris, ""},
		{"min-tokens", 8, paris, "7 completion tokens, want at least 8"},
		{"max-tokens", 7, paris, ""},
		{"max-tokens", 2, &Answer{Text: "one two three", CompletionTokens: 3, TokensEstimated: true}, "3 completion tokens (estimated: no usage in the response), want at most 2"},
	}
	for _, tt := range tests {
		a, err := NewAssertion(tt.kind, tt.value)
		if err != nil {
			t.Fatalf("%s %v: %v", tt.kind, tt.value, err)
		}
		if got := a.Check(tt.ans); got != tt.wantMsg {
			t.Errorf("%s: %v on %q: got %q, want %q", tt.kind, tt.value, tt.ans.Text, got, tt.wantMsg)
		}
	}
}

func TestAssertionValueErrors(t *testing.T) {
	tests := []struct {
		kind  string
		value any
		want  string
	}{
		{"regex", "([a-z]", "does not compile"},
		{"json-schema", json.RawMessage(`{"type": 5}`), "not a valid schema: at '/type'"},
		{"json-schema", json.RawMessage(`{"minLength": -1}`), "not a valid schema"},
		{"is-json", false, "expected true"},
		{"contains", "", "non-empty"},
		{"contains-all", []string{}, "non-empty list"},
		{"max-latency", time.Duration(0), "positive duration"},
		{"min-tokens", -1, "whole number"},
		{"contians", "x", `unknown assertion "contians"`},
	}
	for _, tt := range tests {
		_, err := NewAssertion(tt.kind, tt.value)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s %v: got error %v, want it to mention %q", tt.kind, tt.value, err, tt.want)
		}
	}
}
