package suite

import (
	"bytes"
	"fmt"
	"os"
	"strings"
)

// Defaults applied to every request unless a case overrides them.
const (
	DefaultSeed      = 1234
	DefaultMaxTokens = 256
)

// Format says how a suite file was written.
type Format string

const (
	// FormatArticle is the article's validation_cases.json: a JSON list of
	// {name, messages, max_tokens?, expected_keywords?}.
	FormatArticle Format = "article-json"
	// FormatYAML is modelship's YAML suite with per-case assertions.
	FormatYAML Format = "yaml"
)

// Suite is a loaded, checked validation suite. Every regex and JSON schema
// in it has compiled; running it sends no request that could have been
// refused up front.
type Suite struct {
	File   string // path as given to Load
	Format Format
	Name   string // the YAML suite's name; the file name for the article format
	// PassThreshold is the fraction of cases that must pass, in (0, 1];
	// 0 means not set in the file (the runner then uses 1, or its option).
	PassThreshold float64
	Defaults      Defaults
	Cases         []*Case
}

// Defaults are the request parameters of every case unless it sets its own.
type Defaults struct {
	Model       string  // empty: the runner's model, else the endpoint's first
	MaxTokens   int     // DefaultMaxTokens unless set
	Temperature float64 // 0: deterministic
	Seed        int64   // DefaultSeed unless set
}

// Message is one chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Case is one validation case: a request and what its answer must satisfy.
type Case struct {
	Name string
	Line int // line of the case in Suite.File (1-based)
	col  int

	// Exactly one of Messages (a chat completion) and Prompt (a plain
	// completion) is set.
	Messages []Message
	Prompt   string

	Model       string // "" uses the suite default
	MaxTokens   int    // resolved: the case's, else the suite default
	Temperature float64
	Seed        int64

	// Repeat is how many times the request is sent (at least 1); the case
	// passes when at least PassRate of the answers pass every assertion.
	Repeat   int
	PassRate float64

	Assertions []*Assertion
}

// Chat reports whether the case is a chat completion.
func (c *Case) Chat() bool { return c.Messages != nil }

// Error is a problem in a suite file, found before any request is sent.
type Error struct {
	File   string
	Line   int // 0 if unknown
	Column int // 0 if unknown
	Case   string
	Msg    string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Case != "" {
		fmt.Fprintf(&b, "case %q: ", e.Case)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Load reads a suite file: the article's JSON list of cases (a file whose
// first non-blank character is '[') or a YAML suite (anything else). Every
// problem is reported with the file and line before anything runs.
func Load(file string) (*Suite, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return Parse(file, data)
}

// Parse is Load on data already read; file names it in errors.
func Parse(file string, data []byte) (*Suite, error) {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, &Error{File: file, Msg: "empty suite: the file is empty; expected a JSON list of cases or a YAML suite with cases"}
	}
	var s *Suite
	var errs Errors
	if trimmed[0] == '[' {
		s, errs = parseArticle(file, data)
	} else {
		s, errs = parseYAML(file, data)
	}
	if s != nil && (len(errs) == 0 || len(s.Cases) > 0) {
		errs = append(errs, check(s)...)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return s, nil
}

// check applies the rules common to both formats.
func check(s *Suite) Errors {
	var errs Errors
	if len(s.Cases) == 0 {
		errs = append(errs, &Error{File: s.File, Msg: "empty suite: no cases"})
	}
	seen := map[string]int{}
	for _, c := range s.Cases {
		if c.Name == "" {
			continue // reported by the parser
		}
		if prev, dup := seen[c.Name]; dup {
			errs = append(errs, &Error{File: s.File, Line: c.Line, Column: c.col, Case: c.Name, Msg: fmt.Sprintf("duplicate case name (first at line %d)", prev)})
			continue
		}
		seen[c.Name] = c.Line
	}
	return errs
}
