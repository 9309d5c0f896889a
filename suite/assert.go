package suite

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Answer is what an endpoint returned for one request, as the assertions
// see it.
type Answer struct {
	Text         string // the first choice's message content (chat) or text
	FinishReason string
	// CompletionTokens is usage.completion_tokens, or, when the server sent
	// no usage, the number of whitespace-separated words (TokensEstimated).
	CompletionTokens int
	TokensEstimated  bool
	Latency          time.Duration // request sent to whole body received
}

// Assertion is one check on an answer.
type Assertion struct {
	Kind  string // one of Kinds
	Line  int    // line in the suite file, 0 if unknown
	Value any    // the expected value as written: string, []string, bool, time.Duration, int or a JSON schema
	check func(*Answer) string
}

// Kinds are the assertion names a YAML suite may use.
var Kinds = []string{
	"contains", "icontains", "contains-all", "contains-any", "not-contains",
	"regex", "equals", "starts-with", "is-json", "json-schema",
	"finish-reason", "max-latency", "min-tokens", "max-tokens",
}

// Check returns "" when the answer satisfies the assertion, else why not
// (e.g. "missing 'Paris'").
func (a *Assertion) Check(ans *Answer) string { return a.check(ans) }

// String is the assertion as a suite would write it, e.g. `icontains: "Paris"`.
func (a *Assertion) String() string {
	switch v := a.Value.(type) {
	case string:
		return fmt.Sprintf("%s: %q", a.Kind, v)
	case []string:
		return fmt.Sprintf("%s: %s", a.Kind, quoteList(v))
	case time.Duration:
		return fmt.Sprintf("%s: %s", a.Kind, v)
	case json.RawMessage:
		return fmt.Sprintf("%s: %s", a.Kind, compactJSON(v))
	default:
		return fmt.Sprintf("%s: %v", a.Kind, v)
	}
}

func quoteList(v []string) string {
	q := make([]string, len(v))
	for i, s := range v {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func compactJSON(raw []byte) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}

func quoted(v []string) string {
	q := make([]string, len(v))
	for i, s := range v {
		q[i] = "'" + s + "'"
	}
	return strings.Join(q, ", ")
}

// NewAssertion builds an assertion of kind from its value: a string for
// contains, icontains, regex, equals, starts-with, finish-reason; a string
// or []string for not-contains; []string for contains-all and contains-any;
// true for is-json; a time.Duration for max-latency; an int for min-tokens
// and max-tokens; a JSON schema document (json.RawMessage) for json-schema.
// A regex that does not compile or a schema that is not valid is an error.
func NewAssertion(kind string, value any) (*Assertion, error) {
	a := &Assertion{Kind: kind, Value: value}
	str := func() (string, error) {
		s, ok := value.(string)
		if !ok {
			return "", fmt.Errorf("%s: expected a string, got %T", kind, value)
		}
		if s == "" && kind != "equals" {
			return "", fmt.Errorf("%s: expected a non-empty string", kind)
		}
		return s, nil
	}
	list := func() ([]string, error) {
		l, ok := value.([]string)
		if !ok || len(l) == 0 {
			return nil, fmt.Errorf("%s: expected a non-empty list of strings", kind)
		}
		for _, s := range l {
			if s == "" {
				return nil, fmt.Errorf("%s: expected non-empty strings, got an empty one", kind)
			}
		}
		return l, nil
	}
	count := func() (int, error) {
		n, ok := value.(int)
		if !ok || n < 0 {
			return 0, fmt.Errorf("%s: expected a whole number ≥ 0, got %v", kind, value)
		}
		return n, nil
	}
	// textCheck is a check against the string value: the answer passes when
	// pass(its text, the value), else fails with failure (%s: the value).
	textCheck := func(pass func(text, s string) bool, failure string) (*Assertion, error) {
		s, err := str()
		if err != nil {
			return nil, err
		}
		a.check = func(ans *Answer) string {
			if pass(ans.Text, s) {
				return ""
			}
			return fmt.Sprintf(failure, s)
		}
		return a, nil
	}
	// listCheck fails an answer whose text contains (contains true) or lacks
	// strings of l, naming them after failure.
	listCheck := func(l []string, contains bool, failure string) {
		a.check = func(ans *Answer) string {
			var hits []string
			for _, s := range l {
				if strings.Contains(ans.Text, s) == contains {
					hits = append(hits, s)
				}
			}
			if len(hits) == 0 {
				return ""
			}
			return failure + quoted(hits)
		}
	}
	switch kind {
	case "contains":
		return textCheck(strings.Contains, "missing '%s' (case-sensitive)")
	case "icontains":
		return textCheck(func(text, s string) bool {
			return strings.Contains(strings.ToLower(text), strings.ToLower(s))
		}, "missing '%s'")
	case "contains-all":
		l, err := list()
		if err != nil {
			return nil, err
		}
		listCheck(l, false, "missing ")
	case "contains-any":
		l, err := list()
		if err != nil {
			return nil, err
		}
		a.check = func(ans *Answer) string {
			for _, s := range l {
				if strings.Contains(ans.Text, s) {
					return ""
				}
			}
			return "none of " + quoted(l) + " found"
		}
	case "not-contains":
		var l []string
		if s, ok := value.(string); ok {
			if s == "" {
				return nil, fmt.Errorf("%s: expected a non-empty string", kind)
			}
			l = []string{s}
		} else {
			var err error
			if l, err = list(); err != nil {
				return nil, fmt.Errorf("%s: expected a string or a non-empty list of strings", kind)
			}
		}
		listCheck(l, true, "contains forbidden ")
	case "regex":
		s, err := str()
		if err != nil {
			return nil, err
		}
		re, err := regexp.Compile(s)
		if err != nil {
			return nil, fmt.Errorf("regex %q does not compile (Go RE2 syntax): %v", s, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
		a.check = func(ans *Answer) string {
			if re.MatchString(ans.Text) {
				return ""
			}
			return fmt.Sprintf("does not match /%s/", s)
		}
	case "equals":
		return textCheck(func(text, s string) bool {
			return strings.TrimSpace(text) == strings.TrimSpace(s)
		}, "is not equal to '%s'")
	case "starts-with":
		return textCheck(func(text, s string) bool {
			return strings.HasPrefix(strings.TrimLeft(text, " \t\r\n"), s)
		}, "does not start with '%s'")
	case "is-json":
		if b, ok := value.(bool); !ok || !b {
			return nil, fmt.Errorf("is-json: expected true (drop the assertion to not check), got %v", value)
		}
		a.check = func(ans *Answer) string {
			if _, err := parseJSON(ans.Text); err != nil {
				return "not JSON: " + err.Error()
			}
			return ""
		}
	case "json-schema":
		raw, ok := value.(json.RawMessage)
		if !ok {
			return nil, fmt.Errorf("json-schema: expected a JSON schema, got %T", value)
		}
		sch, err := compileSchema(raw)
		if err != nil {
			return nil, err
		}
		a.check = func(ans *Answer) string {
			inst, err := parseJSON(ans.Text)
			if err != nil {
				return "not JSON: " + err.Error()
			}
			if err := sch.Validate(inst); err != nil {
				return "does not match the JSON schema: " + schemaError(err)
			}
			return ""
		}
	case "finish-reason":
		s, err := str()
		if err != nil {
			return nil, err
		}
		a.check = func(ans *Answer) string {
			if ans.FinishReason == s {
				return ""
			}
			return fmt.Sprintf("finish_reason is '%s', want '%s'", ans.FinishReason, s)
		}
	case "max-latency":
		d, ok := value.(time.Duration)
		if !ok || d <= 0 {
			return nil, fmt.Errorf("max-latency: expected a positive duration like 2s or 500ms, got %v", value)
		}
		a.check = func(ans *Answer) string {
			if ans.Latency <= d {
				return ""
			}
			return fmt.Sprintf("took %s, limit %s", ans.Latency.Round(time.Millisecond), d)
		}
	case "min-tokens", "max-tokens":
		n, err := count()
		if err != nil {
			return nil, err
		}
		a.check = func(ans *Answer) string {
			got := ans.CompletionTokens
			if (kind == "min-tokens" && got >= n) || (kind == "max-tokens" && got <= n) {
				return ""
			}
			est := ""
			if ans.TokensEstimated {
				est = " (estimated: no usage in the response)"
			}
			bound := "at least"
			if kind == "max-tokens" {
				bound = "at most"
			}
			return fmt.Sprintf("%d completion tokens%s, want %s %d", got, est, bound, n)
		}
	default:
		return nil, fmt.Errorf("unknown assertion %q; expected one of: %s", kind, strings.Join(sortedKinds(), ", "))
	}
	return a, nil
}

func sortedKinds() []string {
	k := append([]string(nil), Kinds...)
	sort.Strings(k)
	return k
}

// parseJSON decodes text as one JSON value (surrounding whitespace allowed,
// nothing else: no Markdown fences).
func parseJSON(text string) (any, error) {
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
	if err != nil {
		return nil, err
	}
	return v, nil
}

func compileSchema(raw json.RawMessage) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("json-schema: not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	const url = "suite-case.json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("json-schema: %v", err)
	}
	sch, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("json-schema is not a valid schema: %s", schemaError(err))
	}
	return sch, nil
}

// schemaError shortens the library's multi-line messages to the specific
// ones, e.g. "at '/name': missing property 'name'".
func schemaError(err error) string {
	var leaves []string
	for _, l := range strings.Split(strings.TrimSpace(err.Error()), "\n") {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "- at ") || strings.HasSuffix(l, " failed") {
			continue
		}
		leaves = append(leaves, strings.TrimPrefix(l, "- "))
	}
	if len(leaves) == 0 {
		return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
	}
	return strings.Join(leaves, "; ")
}
