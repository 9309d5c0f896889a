package gateway

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"sync"

	"github.com/modelship/modelship/internal/shadow"
	"github.com/modelship/modelship/suite"
)

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

// mirror is a running Shadower, and the shadow.Sink the gateway's
// captures finish into. closed, under mu, keeps Offer and Skip from
// reaching it once Close has begun.
type mirror struct {
	sh       Shadower
	upstream string
	percent  float64

	mu     sync.RWMutex
	closed bool
}

func (m *mirror) Offer(ex shadow.Exchange) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return !m.closed && m.sh.Offer(ex)
}

func (m *mirror) Skip() {
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
// Report. Unlike the canary, the mirror is not kept in the state file (its
// counts cannot be): a restart ends it, and GET /shadow then answers 404.
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

// startMirror samples r for the running mirror, when r goes to the active
// upstream u, and starts capturing it (shadow.StartCapture); nil when r is
// not mirrored.
func (g *Gateway) startMirror(r *http.Request, u *upstream) *shadow.Capture {
	m := g.shadow.Load()
	if m == nil || u != g.active.Load() || !m.sh.Sample() {
		return nil
	}
	return shadow.StartCapture(r, m)
}
