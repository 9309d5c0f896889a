package suite

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// TextCheck is one case's assertions on an answer's text alone, in a form
// that travels as JSON: a shadow step hands them to the gateway that
// mirrors live requests, which applies them to both releases' answers to
// a request with the case's prompt.
type TextCheck struct {
	Case string `json:"case"`
	// Prompt is the case's last user message (chat) or its prompt.
	Prompt     string          `json:"prompt"`
	Assertions []TextAssertion `json:"assertions"`
}

// TextAssertion is an assertion as JSON: its kind and its value as the
// suite gave it.
type TextAssertion struct {
	Kind  string          `json:"kind"`
	Value json.RawMessage `json:"value"`
}

// textKinds are the assertions that look at the answer's text only; the
// others (finish-reason, max-latency, min-tokens, max-tokens) need what
// only a request of the suite's own sees.
var textKinds = []string{"contains", "icontains", "contains-all", "contains-any", "not-contains",
	"regex", "equals", "starts-with", "is-json", "json-schema"}

// TextChecks are the suite's cases with their text-only assertions; a case
// with none, or with no prompt to match, is left out.
func (s *Suite) TextChecks() []TextCheck {
	var out []TextCheck
	for _, c := range s.Cases {
		tc := TextCheck{Case: c.Name, Prompt: strings.TrimSpace(c.lastPrompt())}
		for _, a := range c.Assertions {
			if !slices.Contains(textKinds, a.Kind) {
				continue
			}
			v, err := json.Marshal(a.Value)
			if err != nil {
				continue // every text kind's value is a string, a list, a bool or a schema
			}
			tc.Assertions = append(tc.Assertions, TextAssertion{Kind: a.Kind, Value: v})
		}
		if tc.Prompt != "" && len(tc.Assertions) > 0 {
			out = append(out, tc)
		}
	}
	return out
}

// lastPrompt is the case's last user message, or its prompt.
func (c *Case) lastPrompt() string {
	if !c.Chat() {
		return c.Prompt
	}
	for i := len(c.Messages) - 1; i >= 0; i-- {
		if c.Messages[i].Role == "user" {
			return c.Messages[i].Content
		}
	}
	return ""
}

// Checker applies TextChecks to answers, by prompt.
type Checker struct {
	byPrompt map[string][]namedAssertion
}

type namedAssertion struct {
	name string
	a    *Assertion
}

// NewChecker compiles checks; an error names the check (by its index and
// case) and the assertion that is not valid.
func NewChecker(checks []TextCheck) (*Checker, error) {
	c := &Checker{byPrompt: map[string][]namedAssertion{}}
	for i, tc := range checks {
		if strings.TrimSpace(tc.Prompt) == "" {
			return nil, fmt.Errorf("checks[%d] (case %q): expected a prompt", i, tc.Case)
		}
		for j, ta := range tc.Assertions {
			a, err := textAssertion(ta)
			if err != nil {
				return nil, fmt.Errorf("checks[%d] (case %q): assertions[%d]: %v", i, tc.Case, j, err)
			}
			p := strings.TrimSpace(tc.Prompt)
			c.byPrompt[p] = append(c.byPrompt[p], namedAssertion{tc.Case, a})
		}
	}
	return c, nil
}

// textAssertion decodes ta's value as its kind expects and builds it.
func textAssertion(ta TextAssertion) (*Assertion, error) {
	if !slices.Contains(textKinds, ta.Kind) {
		return nil, fmt.Errorf("%q is not an assertion on the text; expected one of: %s", ta.Kind, strings.Join(textKinds, ", "))
	}
	var v any
	switch ta.Kind {
	case "json-schema":
		v = ta.Value
	case "is-json":
		var b bool
		if err := json.Unmarshal(ta.Value, &b); err != nil {
			return nil, fmt.Errorf("is-json: expected true, got %s", ta.Value)
		}
		v = b
	default:
		var s string
		var l []string
		switch {
		case json.Unmarshal(ta.Value, &s) == nil:
			v = s
		case json.Unmarshal(ta.Value, &l) == nil:
			v = l
		default:
			return nil, fmt.Errorf("%s: expected a string or a list of strings, got %s", ta.Kind, ta.Value)
		}
	}
	return NewAssertion(ta.Kind, v)
}

// Len is how many prompts the checker has assertions for.
func (c *Checker) Len() int { return len(c.byPrompt) }

// Check applies the assertions of the cases whose prompt is prompt (white
// space trimmed at either end) to answer. checked is false when no case
// has that prompt; err names the case and every assertion that failed.
// Safe for concurrent use.
func (c *Checker) Check(prompt, answer string) (checked bool, err error) {
	as := c.byPrompt[strings.TrimSpace(prompt)]
	if len(as) == 0 {
		return false, nil
	}
	ans := &Answer{Text: answer}
	var failed []string
	for _, na := range as {
		if why := na.a.Check(ans); why != "" {
			failed = append(failed, fmt.Sprintf("case %q: %s: %s", na.name, na.a, why))
		}
	}
	if len(failed) > 0 {
		return true, fmt.Errorf("%s", strings.Join(failed, "; "))
	}
	return true, nil
}
