// Package gha makes modelship commands speak GitHub Actions, through
// github.com/sethvargo/go-githubactions: step outputs, a Markdown step
// summary, error annotations pointing at a file and line, log groups, and
// masking of secrets.
//
// It is active only when GITHUB_ACTIONS=true, as the runner sets it. Outside
// Actions every method is a no-op, so commands call it unconditionally:
//
//	ga := gha.FromEnv(s.out, s.err)
//	end := ga.Group("validate: 6 cases against http://...")
//	... run ...
//	end()
//	ga.Validation(report, reportDir)
//
// File commands (outputs, the step summary) go to the files the runner names
// in GITHUB_OUTPUT and GITHUB_STEP_SUMMARY; a missing variable or an
// unwritable file is a warning on the command's stderr, never a panic or a
// failed command. Workflow commands (::error::, ::group::, ::add-mask::) are
// printed on the writer given to FromEnv: the command's stdout, or its stderr
// when stdout carries machine-readable output (--json); the runner reads
// workflow commands from both.
package gha

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	githubactions "github.com/sethvargo/go-githubactions"

	"github.com/modelship/modelship/internal/config"
)

// fileCommandDelimiter is the heredoc delimiter go-githubactions writes
// around every output value (name<<DELIM\nvalue\nDELIM). A value holding it
// on a line of its own could end the value early and forge other outputs.
const fileCommandDelimiter = "_GitHubActionsFileCommandDelimeter_"

// outputName is what GitHub accepts as a step output id.
var outputName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// Actions is the GitHub Actions side of one command run. The zero value and
// a nil *Actions are valid and do nothing.
type Actions struct {
	a         *githubactions.Action // nil outside Actions
	getenv    func(string) string
	warn      io.Writer
	workspace string

	mu     sync.Mutex
	masked map[string]bool
	warned map[string]bool
}

// FromEnv returns the Actions of this process: active when the environment
// says GITHUB_ACTIONS=true. Workflow commands are printed on w, warnings
// (an output file that cannot be written) on warn.
func FromEnv(w, warn io.Writer) *Actions { return New(os.Getenv, w, warn) }

// New is FromEnv with the environment read through getenv (tests inject
// theirs).
func New(getenv func(string) string, w, warn io.Writer) *Actions {
	if getenv == nil {
		getenv = os.Getenv
	}
	if warn == nil {
		warn = io.Discard
	}
	x := &Actions{getenv: getenv, warn: warn, masked: map[string]bool{}, warned: map[string]bool{}}
	if getenv("GITHUB_ACTIONS") != "true" {
		return x
	}
	if w == nil {
		w = os.Stdout
	}
	x.a = githubactions.New(githubactions.WithWriter(w), githubactions.WithGetenv(githubactions.GetenvFunc(getenv)))
	x.workspace = getenv("GITHUB_WORKSPACE")
	return x
}

// Enabled reports whether the process runs in GitHub Actions.
func (x *Actions) Enabled() bool { return x != nil && x.a != nil }

// warnf prints a warning once per key.
func (x *Actions) warnf(key, format string, a ...any) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.warned[key] {
		return
	}
	x.warned[key] = true
	fmt.Fprintf(x.warn, "modelship: warning: GitHub Actions: "+format+"\n", a...)
}

// fileCommand runs a go-githubactions file command, turning its panics (no
// such variable, unwritable file) into one warning.
func (x *Actions) fileCommand(env, what string, f func()) {
	if x.getenv(env) == "" {
		x.warnf(env, "%s is not set: %s not written", env, what)
		return
	}
	defer func() {
		if r := recover(); r != nil {
			x.warnf(env+"!", "%s not written: %v", what, r)
		}
	}()
	f()
}

// SetOutput sets the step output name to value (written to GITHUB_OUTPUT in
// the name<<delimiter format, so values may span lines). Empty values are
// skipped, so a missing figure reads as an unset output.
func (x *Actions) SetOutput(name, value string) {
	if !x.Enabled() || value == "" {
		return
	}
	if !outputName.MatchString(name) {
		x.warnf("name:"+name, "output name %q is not valid (letters, digits, - and _)", name)
		return
	}
	if strings.Contains(value, fileCommandDelimiter) {
		x.warnf("delim:"+name, "output %s not set: its value holds the file command delimiter", name)
		return
	}
	x.fileCommand("GITHUB_OUTPUT", "output "+name, func() { x.a.SetOutput(name, value) })
}

// AddStepSummary appends Markdown to the job's step summary
// (GITHUB_STEP_SUMMARY).
func (x *Actions) AddStepSummary(markdown string) {
	if !x.Enabled() || markdown == "" {
		return
	}
	x.fileCommand("GITHUB_STEP_SUMMARY", "step summary", func() { x.a.AddStepSummary(markdown) })
}

// Annotation is a message GitHub shows on the run and, with File and Line,
// on that line of the file in the pull request and commit views.
type Annotation struct {
	// File is a path; it is written relative to GITHUB_WORKSPACE (the
	// repository checkout) when it lies inside it, as GitHub expects.
	File    string
	Line    int
	EndLine int
	Title   string
	Message string
}

func (x *Actions) fields(an Annotation) map[string]string {
	m := map[string]string{}
	if an.File != "" {
		m["file"] = x.RepoPath(an.File)
		if an.Line > 0 {
			m["line"] = fmt.Sprint(an.Line)
		}
		if an.EndLine > an.Line {
			m["endLine"] = fmt.Sprint(an.EndLine)
		}
	}
	if an.Title != "" {
		m["title"] = an.Title
	}
	return m
}

// Error prints an error annotation (::error file=F,line=N,title=T::message).
func (x *Actions) Error(an Annotation) {
	if !x.Enabled() {
		return
	}
	x.a.WithFieldsMap(x.fields(an)).Errorf("%s", an.Message)
}

// Warning prints a warning annotation.
func (x *Actions) Warning(an Annotation) {
	if !x.Enabled() {
		return
	}
	x.a.WithFieldsMap(x.fields(an)).Warningf("%s", an.Message)
}

// Notice prints a notice annotation.
func (x *Actions) Notice(an Annotation) {
	if !x.Enabled() {
		return
	}
	x.a.WithFieldsMap(x.fields(an)).Noticef("%s", an.Message)
}

// Group starts a collapsible group of log lines titled title and returns the
// function that ends it. Groups do not nest in GitHub's log view.
func (x *Actions) Group(title string) (end func()) {
	if !x.Enabled() {
		return func() {}
	}
	x.a.Group(title)
	var once sync.Once
	return func() { once.Do(x.a.EndGroup) }
}

// Mask tells the runner to replace each value with *** in the log from now
// on. A value spanning lines is masked whole and line by line (the runner
// matches log lines). Empty values and values already masked are skipped.
func (x *Actions) Mask(values ...string) {
	if !x.Enabled() {
		return
	}
	for _, v := range values {
		parts := []string{v}
		if strings.ContainsAny(v, "\r\n") {
			parts = append(parts, strings.FieldsFunc(v, func(r rune) bool { return r == '\n' || r == '\r' })...)
		}
		for _, p := range parts {
			if strings.TrimSpace(p) == "" {
				continue
			}
			x.mu.Lock()
			seen := x.masked[p]
			x.masked[p] = true
			x.mu.Unlock()
			if !seen {
				x.a.AddMask(p)
			}
		}
	}
}

// MaskSecrets resolves every secret reference of cfg (Config.Secrets) and
// masks its value, so that no later log line can show it. References that
// do not resolve are skipped: the code that needs them reports that.
// It returns how many values were masked.
func (x *Actions) MaskSecrets(cfg *config.Config) int {
	if !x.Enabled() || cfg == nil {
		return 0
	}
	n := 0
	for _, s := range cfg.Secrets() {
		v, err := s.Resolve(x.getenv)
		if err != nil || v == "" {
			continue
		}
		x.Mask(v)
		n++
	}
	return n
}

// MaskEnv masks the values of the named environment variables (API keys
// read with --api-key-env, OPENAI_API_KEY).
func (x *Actions) MaskEnv(names ...string) {
	if !x.Enabled() {
		return
	}
	for _, n := range names {
		if n != "" {
			x.Mask(x.getenv(n))
		}
	}
}

// RepoPath returns path as GitHub wants it in an annotation: relative to
// GITHUB_WORKSPACE when inside it, with forward slashes; otherwise path
// cleaned.
func (x *Actions) RepoPath(path string) string {
	if x == nil || path == "" {
		return path
	}
	ws := x.workspace
	if ws == "" {
		return filepath.ToSlash(filepath.Clean(path))
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return filepath.ToSlash(filepath.Clean(path))
	}
	wsAbs, err := filepath.Abs(ws)
	if err != nil {
		return filepath.ToSlash(filepath.Clean(path))
	}
	rel, err := filepath.Rel(wsAbs, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return filepath.ToSlash(filepath.Clean(path))
	}
	return filepath.ToSlash(rel)
}
