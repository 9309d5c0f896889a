package suite

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// yamlParser walks a YAML suite's nodes, collecting every problem with its
// line and column.
type yamlParser struct {
	file string
	errs Errors
}

func (p *yamlParser) errorf(n *yaml.Node, caseName, format string, args ...any) {
	e := &Error{File: p.file, Case: caseName, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	p.errs = append(p.errs, e)
}

func parseYAML(file string, data []byte) (*Suite, Errors) {
	p := &yamlParser{file: file}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Errors{yamlSyntaxError(file, err)}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, Errors{{File: file, Msg: "empty suite: the file has no content; expected a mapping with cases"}}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		p.errorf(root, "", "expected a suite (a mapping with name, defaults, pass-threshold and cases) or a JSON list of cases, got %s", kindName(root))
		return nil, p.errs
	}
	s := &Suite{File: file, Format: FormatYAML, Defaults: Defaults{MaxTokens: DefaultMaxTokens, Seed: DefaultSeed}}
	var casesNode *yaml.Node
	p.fields(root, "", "suite", []string{"name", "description", "defaults", "pass-threshold", "cases"}, func(key string, k, v *yaml.Node) {
		switch key {
		case "name":
			s.Name, _ = p.str(v, "", "name")
		case "description":
			p.str(v, "", "description")
		case "defaults":
			p.defaults(v, &s.Defaults)
		case "pass-threshold":
			s.PassThreshold, _ = p.fraction(v, "", "pass-threshold")
		case "cases":
			casesNode = v
		}
	})
	if casesNode == nil {
		if len(p.errs) == 0 {
			p.errorf(root, "", "empty suite: no cases (add a `cases:` list)")
		}
		return nil, p.errs
	}
	if casesNode.Kind != yaml.SequenceNode {
		p.errorf(casesNode, "", "cases: expected a list of cases, got %s", kindName(casesNode))
		return nil, p.errs
	}
	for i, n := range casesNode.Content {
		if c := p.caseNode(n, i, s.Defaults); c != nil {
			s.Cases = append(s.Cases, c)
		}
	}
	if s.Name == "" {
		s.Name = file
	}
	return s, p.errs
}

// fields calls fn for each key of mapping n, refusing keys not in allowed.
func (p *yamlParser) fields(n *yaml.Node, caseName, what string, allowed []string, fn func(key string, k, v *yaml.Node)) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		if !contains(allowed, key) {
			hint := ""
			if s := suggest(key, allowed); s != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", s)
			}
			p.errorf(k, caseName, "unknown key %q in %s%s; expected one of: %s", key, what, hint, strings.Join(allowed, ", "))
			continue
		}
		if seen[key] {
			p.errorf(k, caseName, "%s: %q is given twice", what, key)
			continue
		}
		seen[key] = true
		fn(key, k, v)
	}
}

func (p *yamlParser) defaults(n *yaml.Node, d *Defaults) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "", "defaults: expected a mapping of model, max-tokens, temperature, seed; got %s", kindName(n))
		return
	}
	p.fields(n, "", "defaults", []string{"model", "max-tokens", "temperature", "seed"}, func(key string, _, v *yaml.Node) {
		switch key {
		case "model":
			d.Model, _ = p.str(v, "", "defaults.model")
		case "max-tokens":
			if m, ok := p.positiveInt(v, "", "defaults.max-tokens"); ok {
				d.MaxTokens = m
			}
		case "temperature":
			if t, ok := p.temperature(v, "", "defaults.temperature"); ok {
				d.Temperature = t
			}
		case "seed":
			if s, ok := p.int64(v, "", "defaults.seed"); ok {
				d.Seed = s
			}
		}
	})
}

var caseKeys = []string{"name", "description", "messages", "prompt", "model", "max-tokens", "temperature", "seed", "repeat", "pass-rate", "expect"}

func (p *yamlParser) caseNode(n *yaml.Node, i int, d Defaults) *Case {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "", "cases[%d]: expected a case (a mapping with name, messages or prompt, expect), got %s", i, kindName(n))
		return nil
	}
	c := &Case{Line: n.Line, col: n.Column, Model: d.Model, MaxTokens: d.MaxTokens, Temperature: d.Temperature, Seed: d.Seed, Repeat: 1, PassRate: 1}
	// The name first, so that every other error can name the case.
	for j := 0; j+1 < len(n.Content); j += 2 {
		if n.Content[j].Value == "name" {
			c.Name, _ = p.str(n.Content[j+1], "", fmt.Sprintf("cases[%d].name", i))
		}
	}
	if c.Name == "" {
		p.errorf(n, "", "cases[%d]: missing name (every case needs a unique name)", i)
	}
	label := c.Name
	var hasMessages, hasPrompt, hasRepeat, hasPassRate bool
	var passRateNode *yaml.Node
	p.fields(n, label, "case", caseKeys, func(key string, k, v *yaml.Node) {
		switch key {
		case "name", "description":
			if key == "description" {
				p.str(v, label, "description")
			}
		case "messages":
			hasMessages = true
			c.Messages = p.messages(v, label)
			if c.Messages == nil {
				c.Messages = []Message{}
			}
		case "prompt":
			hasPrompt = true
			c.Prompt, _ = p.str(v, label, "prompt")
			if c.Prompt == "" && v.Kind == yaml.ScalarNode {
				p.errorf(v, label, "prompt: expected a non-empty string")
			}
		case "model":
			c.Model, _ = p.str(v, label, "model")
		case "max-tokens":
			if m, ok := p.positiveInt(v, label, "max-tokens"); ok {
				c.MaxTokens = m
			}
		case "temperature":
			if t, ok := p.temperature(v, label, "temperature"); ok {
				c.Temperature = t
			}
		case "seed":
			if s, ok := p.int64(v, label, "seed"); ok {
				c.Seed = s
			}
		case "repeat":
			hasRepeat = true
			if r, ok := p.positiveInt(v, label, "repeat"); ok {
				c.Repeat = r
			}
		case "pass-rate":
			hasPassRate, passRateNode = true, v
			if f, ok := p.fraction(v, label, "pass-rate"); ok {
				c.PassRate = f
			}
		case "expect":
			c.Assertions = p.assertions(v, label)
		}
	})
	switch {
	case hasMessages && hasPrompt:
		p.errorf(n, label, "both messages and prompt: a case is either a chat completion (messages) or a plain completion (prompt)")
	case !hasMessages && !hasPrompt:
		p.errorf(n, label, "missing messages (a chat completion) or prompt (a plain completion)")
	}
	if hasRepeat && c.Repeat > 1 && !hasPassRate {
		p.errorf(n, label, "repeat: %d needs a pass-rate (the fraction of the %d answers that must pass, e.g. 0.8 or 80%%)", c.Repeat, c.Repeat)
	}
	if hasPassRate && !hasRepeat {
		p.errorf(passRateNode, label, "pass-rate without repeat: set repeat to the number of times to send the request")
	}
	return c
}

var roles = []string{"system", "developer", "user", "assistant"}

func (p *yamlParser) messages(n *yaml.Node, label string) []Message {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, label, "messages: expected a list of {role, content}, got %s", kindName(n))
		return nil
	}
	if len(n.Content) == 0 {
		p.errorf(n, label, "messages: expected at least one message")
		return nil
	}
	var out []Message
	for i, m := range n.Content {
		what := fmt.Sprintf("messages[%d]", i)
		if m.Kind != yaml.MappingNode {
			p.errorf(m, label, "%s: expected a mapping {role, content}, got %s", what, kindName(m))
			continue
		}
		var msg Message
		var hasRole, hasContent bool
		p.fields(m, label, what, []string{"role", "content"}, func(key string, _, v *yaml.Node) {
			if key == "role" {
				hasRole = true
				msg.Role, _ = p.str(v, label, what+".role")
				if msg.Role != "" && !contains(roles, msg.Role) {
					p.errorf(v, label, "%s.role: %q is not a role; expected one of: %s", what, msg.Role, strings.Join(roles, ", "))
				}
			} else {
				hasContent = true
				msg.Content, _ = p.str(v, label, what+".content")
			}
		})
		if !hasRole || !hasContent {
			p.errorf(m, label, "%s: expected both role and content", what)
		}
		out = append(out, msg)
	}
	return out
}

func (p *yamlParser) assertions(n *yaml.Node, label string) []*Assertion {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, label, "expect: expected a list of assertions like `- icontains: paris`, got %s", kindName(n))
		return nil
	}
	var out []*Assertion
	for i, item := range n.Content {
		if item.Kind != yaml.MappingNode || len(item.Content) != 2 {
			p.errorf(item, label, "expect[%d]: expected one assertion `- KIND: VALUE` (e.g. `- contains: Paris`), got %s", i, describe(item))
			continue
		}
		k, v := item.Content[0], item.Content[1]
		if !contains(Kinds, k.Value) {
			hint := ""
			if s := suggest(k.Value, Kinds); s != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", s)
			}
			p.errorf(k, label, "unknown assertion %q%s; expected one of: %s", k.Value, hint, strings.Join(sortedKinds(), ", "))
			continue
		}
		value, ok := p.assertionValue(k.Value, v, label)
		if !ok {
			continue
		}
		a, err := NewAssertion(k.Value, value)
		if err != nil {
			p.errorf(v, label, "%s", err)
			continue
		}
		a.Line = k.Line
		out = append(out, a)
	}
	return out
}

// assertionValue converts an assertion's YAML value to the Go value
// NewAssertion takes for that kind.
func (p *yamlParser) assertionValue(kind string, v *yaml.Node, label string) (any, bool) {
	switch kind {
	case "contains-all", "contains-any":
		return p.strList(v, label, kind)
	case "not-contains":
		if v.Kind == yaml.SequenceNode {
			return p.strList(v, label, kind)
		}
		return p.str(v, label, kind)
	case "is-json":
		var b bool
		if v.Kind != yaml.ScalarNode || v.Decode(&b) != nil {
			p.errorf(v, label, "is-json: expected true, got %s", describe(v))
			return nil, false
		}
		return b, true
	case "json-schema":
		return p.schema(v, label)
	case "max-latency":
		s, ok := p.str(v, label, kind)
		if !ok {
			return nil, false
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			p.errorf(v, label, "max-latency: expected a positive duration like 2s or 500ms, got %q", s)
			return nil, false
		}
		return d, true
	case "min-tokens", "max-tokens":
		var n int
		if v.Kind != yaml.ScalarNode || v.Tag != "!!int" || v.Decode(&n) != nil || n < 0 {
			p.errorf(v, label, "%s: expected a whole number ≥ 0, got %s", kind, describe(v))
			return nil, false
		}
		return n, true
	case "contains", "icontains", "regex", "equals", "starts-with", "finish-reason":
		return p.str(v, label, kind)
	default:
		return nil, true // NewAssertion reports the unknown kind
	}
}

// schema accepts an inline YAML mapping or a string holding JSON.
func (p *yamlParser) schema(v *yaml.Node, label string) (any, bool) {
	var raw []byte
	switch v.Kind {
	case yaml.MappingNode:
		var doc any
		if err := v.Decode(&doc); err != nil {
			p.errorf(v, label, "json-schema: %v", err)
			return nil, false
		}
		b, err := json.Marshal(jsonable(doc))
		if err != nil {
			p.errorf(v, label, "json-schema: cannot be written as JSON: %v", err)
			return nil, false
		}
		raw = b
	case yaml.ScalarNode:
		raw = []byte(v.Value)
		if !json.Valid(raw) {
			p.errorf(v, label, "json-schema: expected a schema (a mapping, or a string holding JSON), got a string that is not JSON")
			return nil, false
		}
	default:
		p.errorf(v, label, "json-schema: expected a schema (a mapping), got %s", kindName(v))
		return nil, false
	}
	return json.RawMessage(raw), true
}

// jsonable turns YAML-decoded maps (map[string]any, but map[any]any for
// non-string keys) into values encoding/json accepts.
func jsonable(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = jsonable(x)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[fmt.Sprint(k)] = jsonable(x)
		}
		return m
	case []any:
		for i, x := range t {
			t[i] = jsonable(x)
		}
		return t
	default:
		return v
	}
}

func (p *yamlParser) str(v *yaml.Node, label, what string) (string, bool) {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		p.errorf(v, label, "%s: expected a string, got %s", what, describe(v))
		return "", false
	}
	return v.Value, true
}

func (p *yamlParser) strList(v *yaml.Node, label, what string) ([]string, bool) {
	if v.Kind != yaml.SequenceNode {
		p.errorf(v, label, "%s: expected a list of strings, got %s", what, describe(v))
		return nil, false
	}
	out := make([]string, 0, len(v.Content))
	for _, item := range v.Content {
		s, ok := p.str(item, label, what+" item")
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

func (p *yamlParser) positiveInt(v *yaml.Node, label, what string) (int, bool) {
	var n int
	if v.Kind != yaml.ScalarNode || v.Tag != "!!int" || v.Decode(&n) != nil || n < 1 {
		p.errorf(v, label, "%s: expected a whole number ≥ 1, got %s", what, describe(v))
		return 0, false
	}
	return n, true
}

func (p *yamlParser) int64(v *yaml.Node, label, what string) (int64, bool) {
	var n int64
	if v.Kind != yaml.ScalarNode || v.Tag != "!!int" || v.Decode(&n) != nil {
		p.errorf(v, label, "%s: expected a whole number, got %s", what, describe(v))
		return 0, false
	}
	return n, true
}

func (p *yamlParser) temperature(v *yaml.Node, label, what string) (float64, bool) {
	var f float64
	if v.Kind != yaml.ScalarNode || (v.Tag != "!!int" && v.Tag != "!!float") || v.Decode(&f) != nil || f < 0 || f > 2 || math.IsNaN(f) {
		p.errorf(v, label, "%s: expected a number from 0 to 2, got %s", what, describe(v))
		return 0, false
	}
	return f, true
}

// fraction reads 0.9 or "90%" as a fraction in (0, 1].
func (p *yamlParser) fraction(v *yaml.Node, label, what string) (float64, bool) {
	if v.Kind == yaml.ScalarNode {
		if f, err := ParseFraction(v.Value); err == nil {
			return f, true
		}
	}
	p.errorf(v, label, "%s: expected a fraction in (0, 1] like 0.9, or a percentage like 90%%, got %s", what, describe(v))
	return 0, false
}

// ParseFraction reads a pass rate or threshold: a number in (0, 1] ("0.9")
// or a percentage in (0, 100] ("90%").
func ParseFraction(s string) (float64, error) {
	s = strings.TrimSpace(s)
	pct := strings.HasSuffix(s, "%")
	f, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "%")), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("expected a fraction like 0.9 or a percentage like 90%%, got %q", s)
	}
	if pct {
		f /= 100
	}
	if f <= 0 || f > 1 {
		return 0, fmt.Errorf("expected a fraction in (0, 1] or a percentage in (0%%, 100%%], got %q", s)
	}
	return f, nil
}

func yamlSyntaxError(file string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.Index(rest, ":"); i > 0 {
			if n, convErr := strconv.Atoi(rest[:i]); convErr == nil {
				return &Error{File: file, Line: n, Msg: "invalid YAML: " + strings.TrimSpace(rest[i+1:])}
			}
		}
	}
	return &Error{File: file, Msg: "invalid YAML: " + msg}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing (null)"
		}
		return "a scalar"
	}
	return "nothing"
}

// describe is kindName with the value of a scalar.
func describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		return fmt.Sprintf("%q", n.Value)
	}
	return kindName(n)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// suggest returns the allowed key closest to key (snake_case spelled with
// dashes, or one or two typos away), or "".
func suggest(key string, allowed []string) string {
	dashed := strings.ReplaceAll(key, "_", "-")
	best, bestD := "", 3
	for _, a := range allowed {
		if a == dashed {
			return a
		}
		if d := editDistance(key, a); d < bestD {
			best, bestD = a, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
