package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"strings"
	"sync"

	"github.com/modelship/modelship/internal/config"
	"github.com/modelship/modelship/internal/gha"
	"github.com/modelship/modelship/internal/logging"
	"github.com/modelship/modelship/notify"
	"github.com/modelship/modelship/serving/stage"
)

// stageRun is one run of a stage command (preflight, validate, bench,
// smoke, deploy, rollback), and the one place that tells its outcome: the
// stage's notification events (started, the verdict, Close), the GitHub
// Actions handle (group, outputs, step summary; commands set their own
// outputs through it), the --json stage.Result and the exit code. With
// --json the command's stdout carries exactly one line, the Result (see
// docs/STAGE-RESULT.md); the human summary goes to stderr instead.
//
// A command is its options (a struct whose flags method declares its
// flags; the runner adds --json) and one body, which stageCommand runs once
// the flags parsed: it builds the events with events once it knows its
// config, calls start, and decide with its verdict; bad reports a bad
// argument or input.
type stageRun struct {
	name   string
	stdout io.Writer // the process's stdout: the Result with --json
	json   bool
	res    *stage.Result
	errs   *stderrLine // the first error line on stderr: a usage error's message

	ga  *gha.Actions   // set by output; no-op outside GitHub Actions
	ev  *stageNotifier // set by events; nil: no events
	bad usageErr       // a usage error: "modelship NAME: ..." and the command's hint
}

// stageCommand makes the run function of the stage command name out of its
// options O and its body: O's flags and --json are parsed from the args
// (usage is the --help text before the flags), then the body runs with the
// positional arguments, which it takes or refuses through sr.bad; hint,
// when not empty, is the line sr.bad prints after its message. After the
// body the stage's notifications are closed (their warnings come after the
// command's own output) and, with --json, the Result is printed.
func stageCommand[T any, O interface {
	*T
	options
}](name, usage, hint string, body func(ctx context.Context, o O, pos []string, s stdio, sr *stageRun) int) func(context.Context, []string, stdio) int {
	return func(ctx context.Context, args []string, s stdio) int {
		sr := &stageRun{name: name, stdout: s.out, res: stage.New(name), errs: &stderrLine{w: s.err, prefix: "modelship " + name + ": "}}
		s.err = sr.errs
		sr.bad = newUsageErr(s, name, hint)
		o := O(new(T))
		pos, code, ok := sr.parse(&s, args, usage, o)
		if ok {
			code = body(ctx, o, pos, s, sr)
		}
		sr.ev.Close(ctx)
		return sr.end(code, args)
	}
}

// parse parses the command's args into o's flags and --json. When ok is
// false the command returns code at once; else *s is what it writes
// through (see output).
func (sr *stageRun) parse(s *stdio, args []string, usage string, o options) (pos []string, code int, ok bool) {
	var asJSON bool
	if pos, code, ok = parseOptionsArgs(*s, sr.name, usage, jsonFlag{o, &asJSON}, args); ok {
		*s = sr.output(*s, asJSON)
	}
	return pos, code, ok
}

// jsonFlag is a stage command's options and --json.
type jsonFlag struct {
	options
	json *bool
}

func (j jsonFlag) flags(fs *flag.FlagSet) {
	j.options.flags(fs)
	fs.BoolVar(j.json, "json", false, "print the stage result (docs/STAGE-RESULT.md) as one line of JSON on stdout; the human summary goes to stderr")
}

// output is the stdio the command writes through once its flags are read:
// with --json its stdout is stderr (the Result alone goes to stdout), and
// so are GitHub Actions' commands.
func (sr *stageRun) output(s stdio, asJSON bool) stdio {
	sr.json = asJSON
	if asJSON {
		s.out = s.err
	}
	sr.ga = gha.FromEnv(s.out, s.err)
	return s
}

// events builds the stage's notifications from cfg's notifications section
// (see stageEvents), for the command to fill the event's fields.
func (sr *stageRun) events(cfg *config.Config, st notify.Stage) *stageNotifier {
	sr.ev = stageEvents(cfg, st, sr.ga, sr.errs)
	return sr.ev
}

// start posts the stage's started event.
func (sr *stageRun) start() { sr.ev.Start() }

// group opens a GitHub Actions log group; call the function to close it.
func (sr *stageRun) group(title string) func() { return sr.ga.Group(title) }

// decide is the stage's verdict and the sentence that says why, in
// numbers: the event the sinks are told (notifyStatus) and the Result.
func (sr *stageRun) decide(v stage.Verdict, message string) {
	sr.ev.Finish(notifyStatus(v), message)
	sr.record(v, message)
}

// record sets the Result's verdict and message (redacted: it may quote an
// error), which starts with the verdict.
func (sr *stageRun) record(v stage.Verdict, message string) {
	message = logging.Default.String(message)
	if !strings.HasPrefix(message, string(v)) {
		message = strings.TrimSuffix(string(v)+": "+message, ": ")
	}
	sr.res.Finish(v, message)
}

// notifyStatus is the event status of a verdict: anything that stops the
// pipeline but a rollback (a failure, an inconclusive run, bad input) is
// failed; the message and the figures say which.
func notifyStatus(v stage.Verdict) notify.Status {
	switch {
	case v.OK():
		return notify.StatusPassed
	case v == stage.RolledBack:
		return notify.StatusRolledBack
	}
	return notify.StatusFailed
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
		if m := strings.TrimPrefix(sr.res.Message, string(sr.res.Verdict)+": "); m != "" {
			msg = strings.TrimSuffix(m+"; "+msg, "; ")
		}
		sr.record(verdictOf(code), msg)
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

// terminalErr is the stderr under w, a stage command's stderr: for what
// tells a terminal from a pipe (progress bars, log lines), which only the
// process's own stderr can say.
func terminalErr(w io.Writer) io.Writer {
	if l, ok := w.(*stderrLine); ok {
		return l.w
	}
	return w
}
