package suite

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/modelship/modelship/internal/clip"

	"github.com/modelship/modelship/internal/textpos"
)

// articleCase is one entry of the article's validation_cases.json.
type articleCase struct {
	Name             *string   `json:"name"`
	Messages         []Message `json:"messages"`
	MaxTokens        *int      `json:"max_tokens"`
	ExpectedKeywords []string  `json:"expected_keywords"`
}

const articleFields = "name, messages, max_tokens, expected_keywords"

// parseArticle reads the article's format unchanged: a JSON list of
// {name, messages, max_tokens?, expected_keywords?}. Each expected keyword
// becomes an icontains assertion (the article lower-cases both sides), whose
// failure reads "missing 'KEYWORD'" as the article prints it.
func parseArticle(file string, data []byte) (*Suite, Errors) {
	var any0 any
	if err := json.Unmarshal(data, &any0); err != nil {
		return nil, Errors{jsonError(file, data, err)}
	}
	if _, ok := any0.([]any); !ok {
		return nil, Errors{{File: file, Line: 1, Msg: "expected a JSON list of cases"}}
	}
	s := &Suite{File: file, Format: FormatArticle, Name: file, Defaults: Defaults{MaxTokens: DefaultMaxTokens, Seed: DefaultSeed}}
	var errs Errors
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // '['
		return nil, Errors{jsonError(file, data, err)}
	}
	for i := 0; dec.More(); i++ {
		start := skipSeparators(data, int(dec.InputOffset()))
		line, _ := textpos.LineCol(data, int64(start))
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, Errors{jsonError(file, data, err)}
		}
		if c, e := articleCaseFrom(file, raw, i, line, s.Defaults); e != nil {
			errs = append(errs, e...)
		} else {
			s.Cases = append(s.Cases, c)
		}
	}
	return s, errs
}

func articleCaseFrom(file string, raw json.RawMessage, i, line int, d Defaults) (*Case, Errors) {
	var errs Errors
	bad := func(name, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if name == "" {
			msg = fmt.Sprintf("case %d: %s", i+1, msg)
		}
		errs = append(errs, &Error{File: file, Line: line, Case: name, Msg: msg})
	}
	if len(raw) == 0 || raw[0] != '{' {
		bad("", "expected an object {%s}, got %s", articleFields, firstWord(raw))
		return nil, errs
	}
	var ac articleCase
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ac); err != nil {
		name := peekName(raw)
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			bad(name, "%s: expected %s, got %s", te.Field, jsonTypeName(te.Type.String()), te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			bad(name, "unknown field %s; the article's format has %s", strings.TrimPrefix(err.Error(), "json: unknown field "), articleFields)
		default:
			bad(name, "%v", err)
		}
		return nil, errs
	}
	name := ""
	if ac.Name != nil {
		name = *ac.Name
	}
	if name == "" {
		bad("", "missing name (every case needs a unique name)")
	}
	c := &Case{Name: name, Line: line, Model: d.Model, MaxTokens: d.MaxTokens, Temperature: d.Temperature, Seed: d.Seed, Repeat: 1, PassRate: 1}
	switch {
	case ac.Messages == nil:
		bad(name, "missing messages (a list of {role, content})")
	case len(ac.Messages) == 0:
		bad(name, "messages: expected at least one message")
	}
	for j, m := range ac.Messages {
		if !contains(roles, m.Role) {
			bad(name, "messages[%d].role: %q is not a role; expected one of: %s", j, m.Role, strings.Join(roles, ", "))
		}
	}
	c.Messages = ac.Messages
	if ac.MaxTokens != nil {
		if *ac.MaxTokens < 1 {
			bad(name, "max_tokens: expected a whole number ≥ 1, got %d", *ac.MaxTokens)
		}
		c.MaxTokens = *ac.MaxTokens
	}
	for j, k := range ac.ExpectedKeywords {
		if k == "" {
			bad(name, "expected_keywords[%d]: empty keyword", j)
			continue
		}
		a, err := NewAssertion("icontains", k)
		if err != nil {
			bad(name, "%v", err)
			continue
		}
		a.Line = line
		c.Assertions = append(c.Assertions, a)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return c, nil
}

// peekName finds a case's name, if it has a string one, for error messages.
func peekName(raw []byte) string {
	var v struct {
		Name any `json:"name"`
	}
	if json.Unmarshal(raw, &v) == nil {
		if s, ok := v.Name.(string); ok {
			return s
		}
	}
	return ""
}

func jsonTypeName(goType string) string {
	switch {
	case goType == "string", goType == "*string":
		return "a string"
	case strings.Contains(goType, "int"):
		return "a whole number"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.Contains(goType, "Message"), strings.Contains(goType, "struct"):
		return "an object"
	}
	return goType
}

func firstWord(raw []byte) string { return clip.Bytes(string(raw), 20) }

// jsonError turns an encoding/json error into one with a line and column.
func jsonError(file string, data []byte, err error) *Error {
	line, col, msg, _ := textpos.JSONError(data, err)
	return &Error{File: file, Line: line, Column: col, Msg: "invalid JSON: " + msg}
}

func skipSeparators(data []byte, off int) int {
	for off < len(data) {
		switch data[off] {
		case ' ', '\t', '\r', '\n', ',':
			off++
		default:
			return off
		}
	}
	return off
}
