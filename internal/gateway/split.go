package gateway

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/modelship/modelship/internal/sticky"
)

// CanaryRequest is the body of POST /canary and the argument of SetCanary.
type CanaryRequest struct {
	// Upstream is the canary release's base URL; it may be "" when
	// Percent is 0.
	Upstream string `json:"upstream"`
	// Percent (0..100) of new requests go to the canary; 0 clears it.
	Percent float64 `json:"percent"`
	// StickyHeader names a request header (e.g. X-Conversation-Id): a
	// request carrying it goes to the version its value hashes to, so one
	// conversation stays on one version; "" or a request without it is
	// split at random.
	StickyHeader string `json:"sticky_header,omitempty"`
	// RequireReady (default true when absent) checks the canary's GET
	// /ready first, as a switch does.
	RequireReady *bool `json:"require_ready,omitempty"`
	// ReadyTimeout bounds that check, as a Go duration; default
	// DefaultReadyTimeout.
	ReadyTimeout string `json:"ready_timeout,omitempty"`
}

// CanaryState is the canary split in force; Percent 0 and no Upstream when
// there is none.
type CanaryState struct {
	Upstream     string  `json:"upstream,omitempty"`
	Percent      float64 `json:"percent"`
	StickyHeader string  `json:"sticky_header,omitempty"`
	// Since is when this percent took effect.
	Since time.Time `json:"since,omitzero"`
	// Control is the operator's action for the rollout (see SetControl).
	Control string `json:"control,omitempty"`
}

// canary is one split: immutable, replaced as a whole.
type canary struct {
	up        *upstream
	percent   float64
	threshold uint32 // a request whose sticky.Bucket is below goes to the canary
	sticky    string
	since     time.Time
}

// pick reports whether r goes to the canary.
func (c *canary) pick(r *http.Request) bool {
	if c.sticky != "" {
		if v := r.Header.Get(c.sticky); v != "" {
			return sticky.Bucket(v) < c.threshold
		}
	}
	return rand.Uint32N(sticky.Buckets) < c.threshold
}

// fieldError is a bad value in a request: the admin API answers 400.
type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

// acquireRoute counts r against the upstream it goes to (the canary for
// its share while one is set, else the active one) and returns it; nil
// when no release is active. As in acquireActive, the re-check after
// counting means that once SetCanary has cleared or replaced a split, no
// request counted after that goes by the old one.
func (g *Gateway) acquireRoute(r *http.Request) *upstream {
	for {
		c := g.canary.Load()
		if c == nil || !c.pick(r) {
			return g.acquireActive()
		}
		c.up.acquire()
		if g.canary.Load() == c {
			return c.up
		}
		c.up.release()
	}
}

// SetCanary sends req.Percent of new requests to req.Upstream and the rest
// to the active upstream; requests in flight keep theirs. Percent 0 clears
// the split at once. The split is written to the state file before it is
// reported, so a gateway restarted mid-canary (a crash, docker restart, a
// host reboot) goes on splitting; if that write fails, a new split is
// undone, and a cleared one stays cleared (the safe side) with an error
// saying the file still holds it. Errors name the request field that is
// wrong; an upstream that is not ready wraps ErrNotReady.
func (g *Gateway) SetCanary(ctx context.Context, req CanaryRequest) (*CanaryState, error) {
	if math.IsNaN(req.Percent) || req.Percent < 0 || req.Percent > 100 {
		return nil, &fieldError{"percent", fmt.Sprintf("%v is not between 0 and 100", req.Percent)}
	}
	if req.Percent == 0 {
		if err := g.clearCanary(); err != nil {
			return nil, err
		}
		return &CanaryState{}, nil
	}
	timeout, err := parseReadyTimeout(req.ReadyTimeout)
	if err != nil {
		return nil, err
	}
	u, err := g.canaryUpstream(req)
	if err != nil {
		return nil, err
	}
	if req.RequireReady == nil || *req.RequireReady {
		if err := g.checkReady(ctx, u, timeout); err != nil {
			return nil, err
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.Active() == u {
		return nil, &fieldError{"upstream", u + " became the active release meanwhile; a canary must be another one"}
	}
	up := g.upstreams[u]
	if up == nil {
		parsed, _ := ParseUpstream(u)
		up = newUpstream(parsed)
		g.upstreams[u] = up
	}
	c := &canary{up: up, percent: req.Percent, threshold: sticky.Threshold(req.Percent), sticky: req.StickyHeader, since: time.Now().UTC()}
	old := g.canary.Swap(c)
	if err := g.persistLocked(); err != nil {
		// Undo: a restart must not bring back another split than the
		// one in force. Requests that already went to c finish there.
		g.canary.Store(old)
		g.pruneLocked()
		return nil, fmt.Errorf("canary to %s undone: %w", u, err)
	}
	g.logger().Info("canary", "upstream", u, "percent", req.Percent, "sticky_header", req.StickyHeader, "active", g.Active())
	return g.canaryStateLocked(), nil
}

// restoreCanaryLocked puts back the split a state file kept (New, once the
// active upstream is set): no readiness check, as the split was in force
// when the gateway stopped, and the deploy watching the rollout judges the
// canary's answers. g.mu is held or g not yet shared.
func (g *Gateway) restoreCanaryLocked(st *CanaryState) {
	parsed, _ := ParseUpstream(st.Upstream) // checked by ParseStateFile
	up := g.upstreams[parsed.String()]
	if up == nil {
		up = newUpstream(parsed)
		g.upstreams[up.key] = up
	}
	g.canary.Store(&canary{up: up, percent: st.Percent, threshold: sticky.Threshold(st.Percent), sticky: st.StickyHeader, since: st.Since})
	g.control = st.Control
	g.logger().Info("canary restored from the state file", "upstream", up.key, "percent", st.Percent, "sticky_header", st.StickyHeader,
		"since", st.Since, "control", st.Control, "active", g.Active())
}

// canaryUpstream checks req's upstream and sticky header and returns the
// upstream's canonical URL.
func (g *Gateway) canaryUpstream(req CanaryRequest) (string, error) {
	if err := checkStickyHeader(req.StickyHeader); err != nil {
		return "", err
	}
	parsed, err := ParseUpstream(req.Upstream)
	if err != nil {
		return "", &fieldError{"upstream", err.Error()}
	}
	u := parsed.String()
	switch g.Active() {
	case "":
		return "", &fieldError{"upstream", "no release is active: a canary needs a stable release to split from (switch first)"}
	case u:
		return "", &fieldError{"upstream", u + " is the active release; a canary must be another one"}
	}
	return u, nil
}

// checkStickyHeader refuses a sticky header that is not a header name;
// "" (no sticky header) is fine.
func checkStickyHeader(h string) error {
	if h != "" && (strings.ContainsAny(h, " \t\r\n:") || http.CanonicalHeaderKey(h) == "") {
		return &fieldError{"sticky_header", fmt.Sprintf("%q is not a header name like X-Conversation-Id", h)}
	}
	return nil
}

func parseReadyTimeout(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, &fieldError{"ready_timeout", fmt.Sprintf("%q is not a duration like \"10s\"", v)}
	}
	return d, nil
}

// clearCanary sends every new request to the active upstream; the
// canary's requests in flight finish there (WaitDrained waits for them),
// and an idle canary is forgotten. The state file is rewritten without
// it; the error says when that failed (the split stays cleared).
func (g *Gateway) clearCanary() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.canary.Swap(nil)
	if c == nil {
		return nil
	}
	g.canaryClearedLocked(c)
	if err := g.persistLocked(); err != nil {
		return fmt.Errorf("canary to %s cleared, but a restart would restore it: %w", c.up.key, err)
	}
	return nil
}

// canaryClearedLocked follows the removal of c from g.canary: the
// rollout's control goes with it (unless a shadow runs), idle upstreams
// are forgotten.
func (g *Gateway) canaryClearedLocked(c *canary) {
	g.logger().Info("canary cleared", "upstream", c.up.key, "percent", c.percent)
	g.clearControlLocked()
	g.pruneLocked()
}

// Canary returns the split in force (Percent 0 when none).
func (g *Gateway) Canary() *CanaryState {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.canaryStateLocked()
}

func (g *Gateway) canaryStateLocked() *CanaryState {
	c := g.canary.Load()
	if c == nil {
		return &CanaryState{Control: g.control}
	}
	return &CanaryState{Upstream: c.up.key, Percent: c.percent, StickyHeader: c.sticky, Since: c.since, Control: g.control}
}

// Control actions an operator can ask a rollout for; "" is none.
const (
	ActionPromote = "promote"
	ActionAbort   = "abort"
	ActionResume  = "resume"
)

// ErrNoRollout is SetControl's error while neither a canary nor a shadow
// is set.
var ErrNoRollout = errors.New("no rollout in progress")

// ControlRequest is the body of POST /control and the answer of GET
// /control.
type ControlRequest struct {
	Action string `json:"action"`
}

// SetControl records action ("promote", "abort", "resume", or "" to clear)
// for the deploy running the rollout to read; it is cleared with the
// canary and shadow. While a canary is set it is kept in the state file
// with it; if that write fails, the action is undone.
func (g *Gateway) SetControl(action string) error {
	if err := checkAction(action); err != nil {
		return &fieldError{"action", err.Error()}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.canary.Load() == nil && g.shadow.Load() == nil {
		return ErrNoRollout
	}
	old := g.control
	g.control = action
	if err := g.persistLocked(); err != nil {
		g.control = old
		return fmt.Errorf("control %q undone: %w", action, err)
	}
	g.logger().Info("rollout control", "action", action)
	return nil
}

// checkAction refuses what is not a control action.
func checkAction(action string) error {
	switch action {
	case ActionPromote, ActionAbort, ActionResume, "":
		return nil
	}
	return fmt.Errorf("%q is not one of \"promote\", \"abort\", \"resume\", \"\"", action)
}

// Control returns the action last asked for the rollout, "" when none.
func (g *Gateway) Control() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.control
}

// clearControlLocked forgets the action once no rollout is left.
func (g *Gateway) clearControlLocked() {
	if g.canary.Load() == nil && g.shadow.Load() == nil {
		g.control = ""
	}
}

// rolloutStateLocked fills st's Canary and Shadow.
func (g *Gateway) rolloutStateLocked(st *State) {
	if g.canary.Load() != nil {
		st.Canary = g.canaryStateLocked()
	}
	if m := g.shadow.Load(); m != nil {
		st.Shadow = &ShadowState{Upstream: m.upstream, Percent: m.percent, Control: g.control}
	}
}

// percent is the share of new requests the upstream key gets.
func (st *State) percent(key string) float64 {
	canary := 0.0
	if st.Canary != nil {
		canary = st.Canary.Percent
		if key == st.Canary.Upstream {
			return canary
		}
	}
	if key == st.Active {
		return 100 - canary
	}
	return 0
}
