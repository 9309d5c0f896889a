package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"

	"github.com/modelship/modelship/serving/stage"
)

// stageRun is one run of a stage command (preflight, validate, bench,
// smoke, deploy, rollback): what the stage decided and how it is told. With
// --json the command's stdout carries exactly one line, the stage.Result
// (see docs/STAGE-RESULT.md); the human summary goes to stderr instead.
// The process exits with the result's exit code.
type stageRun struct {
	name   string
	stdout io.Writer // the process's stdout: the Result with --json
	json   bool
	res    *stage.Result
	errs   *stderrLine // the first error line on stderr: a usage error's message
}

// stageCommand makes the run function of the stage command name out of its
// body, which parses its flags, calls sr.output once it knows whether
// --json was given, and decides its verdict with sr.decide.
func stageCommand(name string, body func(ctx context.Context, args []string, s stdio, sr *stageRun) int) func(context.Context, []string, stdio) int {
	return func(ctx context.Context, args []string, s stdio) int {
		sr := &stageRun{name: name, stdout: s.out, res: stage.New(name), errs: &stderrLine{w: s.err, prefix: "modelship " + name + ": "}}
		s.err = sr.errs
		return sr.end(body(ctx, args, s, sr), args)
	}
}

// output is the stdio the command writes through once its flags are read:
// with --json its stdout is stderr (the Result alone goes to stdout).
func (sr *stageRun) output(s stdio, asJSON bool) stdio {
	sr.json = asJSON
	if asJSON {
		s.out = s.err
	}
	return s
}

// decide records the stage's verdict and the sentence that says why (the
// notification's message; the Result's message starts with the verdict).
func (sr *stageRun) decide(v stage.Verdict, message string) {
	if !strings.HasPrefix(message, string(v)) {
		message = strings.TrimSuffix(string(v)+": "+message, ": ")
	}
	sr.res.Finish(v, message)
}

// figure records one of the numbers the verdict was decided on.
func (sr *stageRun) figure(name string, v float64) {
	if sr.res.Figures == nil {
		sr.res.Figures = map[string]float64{}
	}
	sr.res.Figures[name] = v
}

// report records a report file the stage wrote.
func (sr *stageRun) report(paths ...string) {
	sr.res.Reports = append(sr.res.Reports, paths...)
}

// verdictOf is the verdict of a command's exit code.
func verdictOf(code int) stage.Verdict {
	switch code {
	case exitOK:
		return stage.Passed
	case exitFailed:
		return stage.Failed
	case exitUsage:
		return stage.Invalid
	}
	return stage.Inconclusive
}

// end prints the Result with --json and returns the exit code. A command
// that ended before deciding (bad flags, an input error) or whose exit code
// says otherwise than its verdict (a report that could not be written)
// ends with the verdict of its code, and the error it printed as the
// reason. After --help nothing is printed.
func (sr *stageRun) end(code int, args []string) int {
	if !sr.json && !(code == exitUsage && askedJSON(args)) {
		return code
	}
	if sr.res.Verdict == "" && code == exitOK {
		return code // --help
	}
	if sr.res.Verdict == "" || sr.res.ExitCode != code {
		msg := sr.errs.line()
		if sr.res.Message != "" {
			msg = strings.TrimSuffix(sr.res.Message+"; "+msg, "; ")
		}
		sr.res.Message = ""
		sr.decide(verdictOf(code), msg)
	}
	if err := sr.res.Write(sr.stdout); err != nil {
		return exitFailed
	}
	return sr.res.ExitCode
}

// askedJSON reports whether args ask for --json, for a command whose flags
// did not parse.
func askedJSON(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-json", "--json", "-json=true", "--json=true":
			return true
		}
	}
	return false
}

// stderrLine passes stderr through and remembers its first error line: the
// first starting with prefix ("modelship NAME: "), else the first line.
type stderrLine struct {
	w      io.Writer
	prefix string

	mu           sync.Mutex
	first, error string
	done         bool // the error line is complete
	partial      []byte
}

func (l *stderrLine) Write(p []byte) (int, error) {
	l.mu.Lock()
	if !l.done {
		l.partial = append(l.partial, p...)
		for !l.done {
			i := bytes.IndexByte(l.partial, '\n')
			if i < 0 {
				break
			}
			line := strings.TrimSpace(string(l.partial[:i]))
			l.partial = l.partial[i+1:]
			l.take(line)
		}
	}
	l.mu.Unlock()
	return l.w.Write(p)
}

// take looks at one line: an error line ending in ":" takes the next line
// too (the error it introduces).
func (l *stderrLine) take(s string) {
	switch {
	case l.error != "":
		l.error += " " + s
		l.done = true
	case strings.HasPrefix(s, l.prefix):
		l.error = strings.TrimPrefix(s, l.prefix)
		l.done = !strings.HasSuffix(l.error, ":")
	case l.first == "":
		l.first = s
	}
	if l.done {
		l.partial = nil
	}
}

func (l *stderrLine) line() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.error != "" {
		return l.error
	}
	return l.first
}
