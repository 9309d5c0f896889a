package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Sink delivers events somewhere. Send makes one attempt, bounded by ctx;
// the Notifier retries. A Sink's errors never contain its secrets.
type Sink interface {
	// Name is the sink's kind ("slack", "webhook", "grafana",
	// "pushgateway"), used in warnings.
	Name() string
	Send(ctx context.Context, e Event) error
}

// Permanent marks an error that retrying cannot fix (a 4xx answer): the
// Notifier gives up at once.
type Permanent struct{ Err error }

func (p *Permanent) Error() string { return p.Err.Error() }
func (p *Permanent) Unwrap() error { return p.Err }

// Warning says a sink could not be told about an event. It goes in the log
// and in the run summary; it never fails the pipeline.
type Warning struct {
	Sink     string `json:"sink"`
	Stage    Stage  `json:"stage"`
	Status   Status `json:"status"`
	Attempts int    `json:"attempts"`
	Message  string `json:"message"` // the last error, without secrets
}

func (w Warning) String() string {
	return fmt.Sprintf("%s: %s %s not delivered after %d attempt(s): %s", w.Sink, w.Stage, w.Status, w.Attempts, w.Message)
}

// Options tune a Notifier. Zero values take the defaults.
type Options struct {
	// Timeout bounds one attempt (default 5s).
	Timeout time.Duration
	// Attempts per event and sink (default 3).
	Attempts int
	// Backoff is the wait before the second attempt, doubled before each
	// next one (default 500ms).
	Backoff time.Duration
	// Queue is how many events Post holds per sink before dropping (with a
	// warning) instead of blocking (default 64).
	Queue int
	// Logger receives one warning line per undelivered event (default: none).
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	if o.Backoff <= 0 {
		o.Backoff = 500 * time.Millisecond
	}
	if o.Queue <= 0 {
		o.Queue = 64
	}
	return o
}

// Budget is the longest one event can take on one sink: every attempt timed
// out plus the backoffs between them.
func (o Options) Budget() time.Duration {
	o = o.withDefaults()
	total := time.Duration(o.Attempts) * o.Timeout
	b := o.Backoff
	for i := 1; i < o.Attempts; i++ {
		total += b
		b *= 2
	}
	return total
}

// Notifier sends events to every sink concurrently, each sink in event
// order, with a bounded timeout per attempt and retries with backoff. It
// never returns an error: what could not be delivered comes back as
// Warnings, is logged, and is kept for the run summary (Warnings).
type Notifier struct {
	opts    Options
	workers []*worker

	mu       sync.Mutex
	warnings []Warning
	closed   bool
}

type job struct {
	e    Event
	done chan struct{} // closed when delivered or given up; nil for Post
	warn *Warning      // set before done is closed
}

type worker struct {
	sink Sink
	q    chan *job
	wg   sync.WaitGroup // jobs queued and not finished
}

// New starts a Notifier over sinks. Close it when done.
func New(sinks []Sink, opts Options) *Notifier {
	n := &Notifier{opts: opts.withDefaults()}
	for _, s := range sinks {
		w := &worker{sink: s, q: make(chan *job, n.opts.Queue)}
		n.workers = append(n.workers, w)
		go n.loop(w)
	}
	return n
}

// Sinks are the names of the sinks, in order.
func (n *Notifier) Sinks() []string {
	names := make([]string, len(n.workers))
	for i, w := range n.workers {
		names[i] = w.sink.Name()
	}
	return names
}

func (n *Notifier) loop(w *worker) {
	for j := range w.q {
		warn := n.deliver(w.sink, j.e)
		if warn != nil {
			n.record(*warn)
		}
		j.warn = warn
		if j.done != nil {
			close(j.done)
		}
		w.wg.Done()
	}
}

// deliver tries up to Attempts times; nil when delivered.
func (n *Notifier) deliver(s Sink, e Event) *Warning {
	backoff := n.opts.Backoff
	var err error
	attempt := 0
	for attempt < n.opts.Attempts {
		if attempt > 0 {
			time.Sleep(backoff)
			backoff *= 2
		}
		attempt++
		ctx, cancel := context.WithTimeout(context.Background(), n.opts.Timeout)
		err = s.Send(ctx, e)
		if err != nil && ctx.Err() != nil && !errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w (no answer within %s)", err, n.opts.Timeout)
		}
		cancel()
		if err == nil {
			return nil
		}
		var p *Permanent
		if errors.As(err, &p) {
			break
		}
	}
	return &Warning{Sink: s.Name(), Stage: e.Stage, Status: e.Status, Attempts: attempt, Message: err.Error()}
}

func (n *Notifier) record(w Warning) {
	n.mu.Lock()
	n.warnings = append(n.warnings, w)
	n.mu.Unlock()
	if n.opts.Logger != nil {
		n.opts.Logger.Warn("notification not delivered",
			slog.String("modelship.sink", w.Sink),
			slog.String("event.action", string(w.Stage)),
			slog.String("modelship.status", string(w.Status)),
			slog.Int("modelship.attempts", w.Attempts),
			slog.String("error.message", w.Message))
	}
}

// Notify sends e to every sink and waits until each has delivered it or
// given up, or ctx is done (what is still in flight then is reported as a
// warning and carries on in the background until Close). It returns the
// warnings for this event; it takes at most about Options.Budget.
func (n *Notifier) Notify(ctx context.Context, e Event) []Warning {
	if err := e.Check(); err != nil {
		w := Warning{Sink: "notify", Stage: e.Stage, Status: e.Status, Message: err.Error()}
		n.record(w)
		return []Warning{w}
	}
	jobs := make([]*job, len(n.workers))
	var out []Warning
	for i, w := range n.workers {
		j := &job{e: e, done: make(chan struct{})}
		if warn := n.enqueue(w, j); warn != nil {
			out = append(out, *warn)
			continue
		}
		jobs[i] = j
	}
	for i, j := range jobs {
		if j == nil {
			continue
		}
		select {
		case <-j.done:
			if j.warn != nil {
				out = append(out, *j.warn)
			}
		case <-ctx.Done():
			w := Warning{Sink: n.workers[i].sink.Name(), Stage: e.Stage, Status: e.Status, Message: "still sending when the caller stopped waiting: " + ctx.Err().Error()}
			n.record(w)
			out = append(out, w)
		}
	}
	return out
}

// Post queues e for every sink and returns at once; Flush or Close waits.
func (n *Notifier) Post(e Event) {
	if err := e.Check(); err != nil {
		n.record(Warning{Sink: "notify", Stage: e.Stage, Status: e.Status, Message: err.Error()})
		return
	}
	for _, w := range n.workers {
		n.enqueue(w, &job{e: e})
	}
}

// enqueue never blocks: a full queue drops the event with a warning.
func (n *Notifier) enqueue(w *worker, j *job) *Warning {
	n.mu.Lock()
	msg := "notifier closed"
	if !n.closed {
		w.wg.Add(1)
		select {
		case w.q <- j:
			n.mu.Unlock()
			return nil
		default:
			w.wg.Done()
			msg = fmt.Sprintf("dropped: %d events already waiting for this sink", cap(w.q))
		}
	}
	n.mu.Unlock()
	warn := Warning{Sink: w.sink.Name(), Stage: j.e.Stage, Status: j.e.Status, Message: msg}
	n.record(warn)
	return &warn
}

// Flush waits until every queued event is delivered or given up, or ctx is
// done, and returns every warning so far (see Warnings).
func (n *Notifier) Flush(ctx context.Context) []Warning {
	done := make(chan struct{})
	go func() {
		for _, w := range n.workers {
			w.wg.Wait()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		n.record(Warning{Sink: "notify", Message: "stopped waiting for notifications still being sent: " + ctx.Err().Error()})
	}
	return n.Warnings()
}

// Close flushes (bounded by ctx) and stops the workers; later events are
// dropped with a warning. It returns every warning of the run.
func (n *Notifier) Close(ctx context.Context) []Warning {
	ws := n.Flush(ctx)
	n.mu.Lock()
	if !n.closed {
		n.closed = true
		for _, w := range n.workers {
			close(w.q)
		}
	}
	n.mu.Unlock()
	return ws
}

// Warnings returns every warning so far, for the run summary.
func (n *Notifier) Warnings() []Warning {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Warning(nil), n.warnings...)
}
