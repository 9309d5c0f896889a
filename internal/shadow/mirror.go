package shadow

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelship/modelship/internal/proxyhttp"
)

// Defaults of Options.
const (
	DefaultQueue   = 64
	DefaultWorkers = 2
	DefaultTimeout = 60 * time.Second
)

// Mirror sends the exchanges offered to it to the candidate, from a
// bounded queue, and compares the candidate's answers with stable's.
// Its methods are safe for concurrent use.
type Mirror struct {
	opt      Options
	upstream string // the base URL, no trailing "/"
	shown    string // the base URL as reports and logs show it (no password)
	rt       http.RoundTripper
	ownRT    *http.Transport // the default transport, closed with the mirror
	log      *slog.Logger
	queue    chan Exchange

	offered, dropped, skipped, cancelled atomic.Uint64
	closed                               atomic.Bool
	t                                    tally

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// New validates opt and starts the mirror's workers; Close stops them.
func New(opt Options) (*Mirror, error) {
	m, err := build(opt)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	for range m.opt.Workers {
		m.wg.Add(1)
		go m.work(ctx)
	}
	m.log.Info("shadow: mirroring", "upstream", m.shown, "percent", m.opt.Percent,
		"queue", m.opt.Queue, "workers", m.opt.Workers)
	return m, nil
}

// build is New without starting the workers.
func build(opt Options) (*Mirror, error) {
	base, err := checkOptions(&opt)
	if err != nil {
		return nil, err
	}
	m := &Mirror{
		opt:      opt,
		upstream: strings.TrimSuffix(base.String(), "/"),
		shown:    strings.TrimSuffix(base.Redacted(), "/"),
		rt:       opt.Transport,
		log:      opt.Logger,
		queue:    make(chan Exchange, opt.Queue),
		cancel:   func() {},
	}
	if m.rt == nil {
		m.ownRT = proxyhttp.Transport(0)
		m.rt = m.ownRT
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	return m, nil
}

// checkOptions validates opt, fills in its defaults, and returns the
// candidate's base URL.
func checkOptions(opt *Options) (*url.URL, error) {
	base, err := url.Parse(opt.Upstream)
	switch {
	case opt.Upstream == "":
		return nil, fmt.Errorf("shadow upstream: empty, expected the candidate's base URL (http://NAME:8000)")
	case err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" || base.RawQuery != "" || base.Fragment != "":
		return nil, fmt.Errorf("shadow upstream %q: expected a base http(s) URL (http://NAME:8000), no query", redact(opt.Upstream, base, err))
	case math.IsNaN(opt.Percent) || opt.Percent <= 0 || opt.Percent > 100:
		return nil, fmt.Errorf("shadow percent %v: expected more than 0 and at most 100", opt.Percent)
	case opt.Queue < 0:
		return nil, fmt.Errorf("shadow queue %d: expected 0 (default %d) or more", opt.Queue, DefaultQueue)
	case opt.Workers < 0:
		return nil, fmt.Errorf("shadow workers %d: expected 0 (default %d) or more", opt.Workers, DefaultWorkers)
	case opt.Timeout < 0:
		return nil, fmt.Errorf("shadow timeout %v: expected 0 (default %v) or more", opt.Timeout, DefaultTimeout)
	}
	opt.Queue = cmp.Or(opt.Queue, DefaultQueue)
	opt.Workers = cmp.Or(opt.Workers, DefaultWorkers)
	opt.Timeout = cmp.Or(opt.Timeout, DefaultTimeout)
	return base, nil
}

// redact is the upstream as an error may show it: without a password.
func redact(raw string, u *url.URL, err error) string {
	if err != nil || u == nil {
		if strings.Contains(raw, "@") {
			return "(unreadable URL with user information)"
		}
		return raw
	}
	return u.Redacted()
}

// Sample reports whether this request should be mirrored: true for
// Percent of calls, at random.
func (m *Mirror) Sample() bool {
	return m.opt.Percent >= 100 || rand.Float64()*100 < m.opt.Percent
}

// Offer queues ex to be mirrored and reports whether it was queued. It
// never waits: when the queue is full (or the mirror closed) ex is dropped
// (Report.Dropped), and a request that is not a generation
// (/v1/chat/completions, /v1/completions) is skipped (Report.Skipped).
// The mirror keeps ex: the caller must not change its slices afterwards.
func (m *Mirror) Offer(ex Exchange) bool {
	m.offered.Add(1)
	if _, ok := generation(ex.Path); !ok {
		m.skipped.Add(1)
		return false
	}
	if m.closed.Load() {
		m.dropped.Add(1)
		return false
	}
	select {
	case m.queue <- ex:
		return true
	default:
		m.dropped.Add(1)
		return false
	}
}

// Skip counts an exchange the gateway sampled but could not mirror (its
// body too large to keep), in Report.Offered and Report.Skipped.
func (m *Mirror) Skip() {
	m.offered.Add(1)
	m.skipped.Add(1)
}

// Report is a snapshot of what the mirror saw so far. Counters are read
// after the comparisons, so Offered is never less than what it accounts
// for.
func (m *Mirror) Report() Report {
	r := m.t.report()
	r.Upstream, r.Percent = m.shown, m.opt.Percent
	r.Cancelled = m.cancelled.Load()
	r.Dropped = m.dropped.Load()
	r.Skipped = m.skipped.Load()
	r.Offered = m.offered.Load()
	return r
}

// Close stops the workers and waits for them: requests in flight to the
// candidate are cancelled, and they and the exchanges still queued count
// in Report.Cancelled. Later offers are dropped. Close may be called more
// than once.
func (m *Mirror) Close() {
	m.once.Do(func() {
		m.closed.Store(true)
		m.cancel()
		m.wg.Wait()
		for n := len(m.queue); n > 0; n-- {
			<-m.queue
			m.cancelled.Add(1)
		}
		if m.ownRT != nil {
			m.ownRT.CloseIdleConnections()
		}
	})
}

// work mirrors queued exchanges until ctx ends.
func (m *Mirror) work(ctx context.Context) {
	defer m.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case ex := <-m.queue:
			m.mirror(ctx, ex)
		}
	}
}

// mirror sends ex to the candidate, compares the answers, and counts the
// outcome.
func (m *Mirror) mirror(ctx context.Context, ex Exchange) {
	a := m.send(ctx, ex)
	if ctx.Err() != nil {
		m.cancelled.Add(1)
		return
	}
	o := judge(ex, a, m.opt.Check)
	m.logOutcome(ex, a, o)
	m.t.add(o)
}

// logOutcome logs what went wrong with one exchange, at debug level (a
// broken candidate fails every request): the path and statuses, never a
// header.
func (m *Mirror) logOutcome(ex Exchange, a answer, o outcome) {
	switch {
	case a.err != nil:
		m.log.Debug("shadow: candidate failed", "path", ex.Path, "stable_status", ex.Status, "error", a.err.Error())
	case o.worst != nil:
		m.log.Debug("shadow: answers differ", "path", ex.Path, "stable_status", ex.Status,
			"candidate_status", a.status, "similarity", o.worst.Similarity)
	}
	if o.candCheck != nil {
		m.log.Debug("shadow: candidate answer failed the checks", "path", ex.Path, "error", o.candCheck.Error())
	}
}
