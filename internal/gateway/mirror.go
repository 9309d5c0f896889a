package gateway

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/modelship/modelship/internal/measure"
	"github.com/modelship/modelship/internal/shadow"
	"github.com/modelship/modelship/suite"
)

// MaxMirrorBody bounds the request body a mirrored exchange carries (a
// larger request is skipped, not mirrored) and the response it captures
// (beyond it, Truncated).
const MaxMirrorBody = 1 << 20

// Shadower takes the exchanges the gateway mirrors: shadow.Mirror
// implements it. Offer must not block.
type Shadower interface {
	Sample() bool
	Offer(shadow.Exchange) bool
	Skip()
	Report() shadow.Report
	Close()
}

// ErrNoShadowBuild is SetShadow's error when Options.NewShadow is nil.
var ErrNoShadowBuild = errors.New("shadow traffic not available in this build")

// ErrShadowRunning is SetShadow's error when a mirror is already running.
var ErrShadowRunning = errors.New("a shadow is already running")

// ShadowRequest is the body of POST /shadow.
type ShadowRequest struct {
	Upstream string  `json:"upstream"`
	Percent  float64 `json:"percent"` // 0 stops the mirror
	Queue    int     `json:"queue,omitempty"`
	// Checks are the validation suite's text assertions, applied to both
	// releases' answers to a request with a case's prompt.
	Checks []suite.TextCheck `json:"checks,omitempty"`
}

// ShadowState is the mirror in State.
type ShadowState struct {
	Upstream string  `json:"upstream"`
	Percent  float64 `json:"percent"`
	// Control is the operator's action for the rollout (see SetControl).
	Control string `json:"control,omitempty"`
}

// mirror is a running Shadower. closed, under mu, keeps Offer and Skip
// from reaching it once Close has begun.
type mirror struct {
	sh       Shadower
	upstream string
	percent  float64

	mu     sync.RWMutex
	closed bool
}

func (m *mirror) offer(ex shadow.Exchange) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if !m.closed {
		m.sh.Offer(ex)
	}
}

func (m *mirror) skip() {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if !m.closed {
		m.sh.Skip()
	}
}

func (m *mirror) close() shadow.Report {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.sh.Close()
	return m.sh.Report()
}

// SetShadow starts mirroring req.Percent of the requests the active
// upstream answers to req.Upstream and returns the new mirror's Report;
// Percent 0 stops the running mirror, closes it and returns its final
// Report. Like the canary, the mirror is not kept across a restart.
func (g *Gateway) SetShadow(req ShadowRequest) (*shadow.Report, error) {
	if math.IsNaN(req.Percent) || req.Percent < 0 || req.Percent > 100 {
		return nil, &fieldError{"percent", fmt.Sprintf("%v is not between 0 and 100", req.Percent)}
	}
	if req.Percent == 0 {
		return g.stopShadow()
	}
	if req.Queue < 0 {
		return nil, &fieldError{"queue", fmt.Sprintf("%d is negative; want a count of exchanges (0: the default)", req.Queue)}
	}
	parsed, err := ParseUpstream(req.Upstream)
	if err != nil {
		return nil, &fieldError{"upstream", err.Error()}
	}
	u := parsed.String()
	if u == g.Active() {
		return nil, &fieldError{"upstream", u + " is the active release; a shadow must be another one"}
	}
	if g.newShadow == nil {
		return nil, ErrNoShadowBuild
	}
	opt := shadow.Options{Upstream: u, Percent: req.Percent, Queue: req.Queue, Transport: g.transport, Logger: g.logger()}
	if len(req.Checks) > 0 {
		c, err := suite.NewChecker(req.Checks)
		if err != nil {
			return nil, &fieldError{"checks", err.Error()}
		}
		opt.Check = c.Check
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if cur := g.shadow.Load(); cur != nil {
		return nil, fmt.Errorf("%w to %s; stop it first (percent 0)", ErrShadowRunning, cur.upstream)
	}
	sh, err := g.newShadow(opt)
	if err != nil {
		return nil, fmt.Errorf("starting the shadow to %s: %w", u, err)
	}
	g.shadow.Store(&mirror{sh: sh, upstream: u, percent: req.Percent})
	g.logger().Info("shadow", "upstream", u, "percent", req.Percent, "checked_prompts", len(req.Checks))
	rep := sh.Report()
	return &rep, nil
}

func (g *Gateway) stopShadow() (*shadow.Report, error) {
	g.mu.Lock()
	m := g.shadow.Swap(nil)
	g.clearControlLocked()
	g.mu.Unlock()
	if m == nil {
		return nil, errNoShadow
	}
	rep := m.close()
	g.logger().Info("shadow stopped", "upstream", m.upstream, "offered", rep.Offered, "compared", rep.Compared)
	return &rep, nil
}

var errNoShadow = errors.New("no shadow is running")

// ShadowReport is the running mirror's report; the error is errNoShadow
// when none runs.
func (g *Gateway) ShadowReport() (*shadow.Report, error) {
	m := g.shadow.Load()
	if m == nil {
		return nil, errNoShadow
	}
	rep := m.sh.Report()
	return &rep, nil
}

// capture is one sampled exchange on its way: the request body as the
// proxy reads it and the response as the client is sent it.
type capture struct {
	m         *mirror
	body      *teeBody // nil: no request body
	resp      []byte
	truncated bool
}

// startMirror samples r for the running mirror, when r goes to the active
// upstream u: a request with a body known to be over MaxMirrorBody is
// skipped at once; otherwise its body is copied as the proxy reads it.
func (g *Gateway) startMirror(r *http.Request, u *upstream) *capture {
	m := g.shadow.Load()
	if m == nil || u != g.active.Load() || !m.sh.Sample() {
		return nil
	}
	if r.ContentLength > MaxMirrorBody {
		m.skip()
		return nil
	}
	c := &capture{m: m}
	if r.Body != nil && r.Body != http.NoBody {
		c.body = &teeBody{rc: r.Body, want: r.ContentLength}
		r.Body = c.body
	}
	return c
}

func (c *capture) response(p []byte) {
	if c.truncated {
		return
	}
	if n := MaxMirrorBody - len(c.resp); len(p) > n {
		p, c.truncated = p[:n], true
	}
	c.resp = append(c.resp, p...)
}

// finish offers the exchange once the client's answer is complete, or
// skips it when the request body was too large or not read whole.
func (c *capture) finish(r *http.Request, w *measure.Writer) {
	var body []byte
	if c.body != nil {
		var ok bool
		if body, ok = c.body.whole(); !ok {
			c.m.skip()
			return
		}
	}
	ex := shadow.Exchange{
		Method: r.Method, Path: r.URL.RequestURI(), Header: r.Header.Clone(), Body: body,
		Status: w.Status(), Response: c.resp, Truncated: c.truncated, Total: time.Since(w.Start), TTFB: w.TTFB(),
	}
	c.m.offer(ex)
}

// teeBody passes a request body through, keeping a copy up to
// MaxMirrorBody. The transport may still be reading it when the answer is
// complete, hence the lock.
type teeBody struct {
	rc   io.ReadCloser
	mu   sync.Mutex
	want int64 // the Content-Length, -1 when unknown
	buf  []byte
	over bool
	eof  bool
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.over {
		if len(b.buf)+n > MaxMirrorBody {
			b.over, b.buf = true, nil
		} else {
			b.buf = append(b.buf, p[:n]...)
		}
	}
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *teeBody) Close() error { return b.rc.Close() }

// whole returns the body read, ok false when it is not the whole body.
func (b *teeBody) whole() (body []byte, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf, !b.over && (b.eof || (b.want >= 0 && int64(len(b.buf)) == b.want))
}
