package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/modelship/modelship/internal/buildinfo"
	"github.com/modelship/modelship/internal/config"
	"github.com/modelship/modelship/internal/gha"
	"github.com/modelship/modelship/internal/logging"
	"github.com/modelship/modelship/notify"
)

// stageNotifier tells the sinks of modelship.yaml's notifications section
// about one stage of a release: Start posts "started", Finish the outcome,
// Close waits (bounded) for the sinks and reports the ones that could not be
// told. Nothing it does fails or stalls the command: posting never blocks,
// Close waits at most notifyWait, and an undelivered event is a warning on
// stderr and, in GitHub Actions, in the step summary.
//
// Commands fill Event (environment, image, digests, figures) before Start
// and Finish; every event of the stage carries those fields, the git SHA
// ($GITHUB_SHA) and the link to the run. A stage that Started and never
// Finished is reported failed by Close ("ended before a verdict"). A nil
// *stageNotifier does nothing.
type stageNotifier struct {
	Event notify.Event

	n       *notify.Notifier // nil: no sink configured
	ga      *gha.Actions
	errw    io.Writer
	setup   []string // sinks that could not be built, and why
	started time.Time
	done    bool
}

// notifyWait bounds Close: one event's worst case on a sink (3 attempts of
// 5s and the backoffs between them).
var notifyWait = notify.Options{}.Budget()

// stageEvents builds the sinks cfg configures (none when cfg is nil or has
// no notifications) for stage. Every secret a sink resolves is registered
// with logging.Redact and masked in GitHub Actions before anything is sent.
// A sink that cannot be built (a secret that does not resolve) is a warning.
func stageEvents(cfg *config.Config, stage notify.Stage, ga *gha.Actions, errw io.Writer) *stageNotifier {
	sn := &stageNotifier{Event: notify.Event{Stage: stage}, ga: ga, errw: errw}
	if cfg == nil || len(notify.Configured(cfg.Notifications.Settings(nil))) == 0 {
		return sn
	}
	sn.Event.Model = cfg.Model.ServedName
	var sinks []notify.Sink
	client := &http.Client{}
	for _, kind := range notify.Configured(cfg.Notifications.Settings(nil)) {
		sink, secrets, err := notify.NewSink(kind, cfg.Notifications.Settings(nil), client)
		logging.Redact(secrets...)
		ga.Mask(secrets...)
		if err != nil {
			sn.setup = append(sn.setup, kind+" left out: "+logging.Default.String(err.Error()))
			continue
		}
		sinks = append(sinks, sink)
	}
	if len(sinks) > 0 {
		sn.n = notify.New(sinks, notify.Options{})
	}
	return sn
}

// eventsConfig is the config whose notifications a stage uses: cfg when the
// command read one (--config), else modelship.yaml in the working directory
// when there is one. A default file that does not load is a warning (the
// stage goes on without notifications), never an error.
func eventsConfig(cfg *config.Config, errw io.Writer) *config.Config {
	if cfg != nil {
		return cfg
	}
	if _, err := os.Stat(config.DefaultFile); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	c, err := config.Load(config.DefaultFile)
	if err != nil {
		fmt.Fprintf(errw, "modelship: warning: no notifications: %v\n", err)
		return nil
	}
	return c
}

// Start posts the stage's started event.
func (sn *stageNotifier) Start() {
	sn.Begin()
	sn.Post(notify.StatusStarted)
}

// Begin starts the stage's clock (its duration, the Grafana region)
// without posting anything: for a stage whose "started" event waits for
// what it starts (a deploy's release id).
func (sn *stageNotifier) Begin() {
	if sn != nil {
		sn.started = time.Now()
	}
}

// Post sends the stage's event with status now, timed at the stage's start.
func (sn *stageNotifier) Post(status notify.Status) {
	if sn == nil || sn.n == nil {
		return
	}
	e := sn.Event
	e.Status, e.Time = status, sn.started
	e.FillFromEnv(nil)
	sn.n.Post(e)
}

// Finish posts the stage's outcome with message (redacted: it may quote an
// error).
func (sn *stageNotifier) Finish(status notify.Status, message string) {
	if sn == nil {
		return
	}
	sn.done = true
	sn.postNow(status, sn.started, message)
}

// Progress posts a step of the stage under way (notify.StatusProgress: a
// canary step, a shadow step), timed now, with message (redacted: a step's
// detail may quote an error). It has no start, so Grafana marks a point.
func (sn *stageNotifier) Progress(message string) {
	if sn != nil {
		sn.postNow(notify.StatusProgress, time.Time{}, message)
	}
}

// postNow posts the stage's event with status, timed now, from started,
// with message redacted.
func (sn *stageNotifier) postNow(status notify.Status, started time.Time, message string) {
	if sn.n == nil {
		return
	}
	e := sn.Event
	e.Status, e.Started, e.Time = status, started, time.Now()
	e.Message = logging.Default.String(message)
	e.FillFromEnv(nil)
	sn.n.Post(e)
}

// Close finishes a stage left unfinished, waits for the sinks (at most
// notifyWait, even when ctx was cancelled: a rolled-back deploy is still
// told), and prints every warning on stderr and in the step summary.
func (sn *stageNotifier) Close(ctx context.Context) {
	if sn == nil {
		return
	}
	if !sn.started.IsZero() && !sn.done {
		sn.Finish(notify.StatusFailed, "ended before a verdict")
	}
	warns := append([]string(nil), sn.setup...)
	if sn.n != nil {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), notifyWait)
		for _, w := range sn.n.Close(wctx) {
			warns = append(warns, w.String())
		}
		cancel()
	}
	if len(warns) == 0 {
		return
	}
	var md strings.Builder
	md.WriteString("\n#### Notifications not delivered\n\n")
	for _, w := range warns {
		msg := logging.Default.String(w)
		fmt.Fprintf(sn.errw, "modelship: warning: notification: %s\n", msg)
		fmt.Fprintf(&md, "- %s\n", strings.ReplaceAll(msg, "\n", " "))
	}
	sn.ga.AddStepSummary(md.String())
}

// progressLog is where a long stage's progress lines go: the terminal as
// they are (people read them), or, off a terminal (CI logs, files, log
// shippers), one structured log line each (logging.New: ECS fields, secrets
// redacted), with the stage and environment as fields. Lines starting with
// "warning: " are logged at level warn.
type progressLog struct {
	log *slog.Logger

	mu  sync.Mutex
	buf []byte
}

// stageProgress returns the writer for a stage's progress (see progressLog)
// and the function that flushes a last unterminated line.
func stageProgress(w io.Writer, format logging.Format, stage notify.Stage, env string) (io.Writer, func()) {
	opts := logging.Options{Format: format, Version: buildinfo.Version}
	if f, err := opts.Resolve(w); err == nil && f == logging.FormatText {
		return w, func() {}
	}
	log := logging.New(w, opts).With(slog.String(logging.KeyStage, string(stage)))
	if env != "" {
		log = log.With(slog.String(logging.KeyEnvironment, env))
	}
	p := &progressLog{log: log}
	return p, p.flush
}

func (p *progressLog) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		p.line(string(p.buf[:i]))
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

func (p *progressLog) line(s string) {
	s = strings.TrimRight(s, "\r")
	if strings.TrimSpace(s) == "" {
		return
	}
	if rest, ok := strings.CutPrefix(s, "warning: "); ok {
		p.log.Warn(rest)
		return
	}
	p.log.Info(s)
}

func (p *progressLog) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		p.line(string(p.buf))
		p.buf = nil
	}
}
