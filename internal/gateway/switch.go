package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/modelship/modelship/internal/clip"
)

// ErrNotReady is wrapped by Switch's error when the new upstream's GET
// /ready did not answer 200.
var ErrNotReady = errors.New("upstream is not ready")

// SwitchResult is what a switch did.
type SwitchResult struct {
	Active     string    `json:"active"`
	Previous   string    `json:"previous"` // "" when nothing was active
	Changed    bool      `json:"changed"`  // false: it was already active
	SwitchedAt time.Time `json:"switched_at"`
}

// Switch makes target the active upstream with one atomic store: requests
// in flight keep their upstream, new ones go to target. With requireReady,
// target's GET /ready must answer 200 first (within readyTimeout, default
// DefaultReadyTimeout); otherwise nothing changes and the error wraps
// ErrNotReady. The new state is written to the state file before the
// switch is reported; if that write fails, the switch is undone. A switch
// that changes the active upstream clears the canary split.
func (g *Gateway) Switch(ctx context.Context, target string, requireReady bool, readyTimeout time.Duration) (*SwitchResult, error) {
	u, err := ParseUpstream(target)
	if err != nil {
		return nil, err
	}
	if requireReady {
		if err := g.checkReady(ctx, u.String(), readyTimeout); err != nil {
			return nil, err
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	cur := g.active.Load()
	if cur != nil && cur.key == u.String() {
		return &SwitchResult{Active: cur.key, Previous: g.previous, SwitchedAt: g.switchedAt}, nil
	}
	next := g.upstreams[u.String()]
	if next == nil {
		next = newUpstream(u)
		g.upstreams[next.key] = next
	}
	oldPrev, oldAt := g.previous, g.switchedAt
	prev := ""
	if cur != nil {
		prev = cur.key
	}
	g.active.Store(next)
	g.previous, g.switchedAt = prev, time.Now().UTC()
	// A canary was split from, and measured against, the release switched
	// away from: a switch (promoting the canary, or any other) ends it, in
	// the same state file write.
	oldCanary, oldControl := g.canary.Swap(nil), g.control
	g.clearControlLocked()
	if err := g.persistLocked(); err != nil {
		// Undo: the state file must never disagree with what is served
		// after a restart. Requests that already went to next finish there.
		g.active.Store(cur)
		g.previous, g.switchedAt = oldPrev, oldAt
		g.canary.Store(oldCanary)
		g.control = oldControl
		return nil, fmt.Errorf("switch to %s undone: %w", next.key, err)
	}
	if oldCanary != nil {
		g.canaryClearedLocked(oldCanary)
	}
	g.pruneLocked()
	g.logger().Info("switched", append([]any{"active", next.key, "previous", prev}, next.releaseAttrs()...)...)
	return &SwitchResult{Active: next.key, Previous: prev, Changed: true, SwitchedAt: g.switchedAt}, nil
}

// pruneLocked forgets upstreams that are neither active, previous nor the
// canary and have nothing in flight, so the map stays small over many
// deploys.
func (g *Gateway) pruneLocked() {
	act := g.Active()
	for k, u := range g.upstreams {
		if c := g.canary.Load(); k == act || k == g.previous || (c != nil && c.up == u) {
			continue
		}
		if n, _ := u.idleState(); n == 0 {
			delete(g.upstreams, k)
		}
	}
}

// checkReady asks target's GET /ready and returns nil only on 200.
func (g *Gateway) checkReady(ctx context.Context, target string, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = DefaultReadyTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target+"/ready", nil)
	if err != nil {
		return err
	}
	resp, err := g.transport.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("%w: GET %s/ready: %v", ErrNotReady, target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	// modelship serve answers {"ready":false,"check":"...","reason":"..."}.
	var st struct {
		Check  string `json:"check"`
		Reason string `json:"reason"`
	}
	detail := ""
	if json.Unmarshal(body, &st) == nil && st.Reason != "" {
		detail = ": " + st.Reason
		if st.Check != "" {
			detail = ": " + st.Check + " check: " + st.Reason
		}
	} else if s := strings.TrimSpace(string(body)); s != "" {
		detail = ": " + clip.Bytes(s, 200)
	}
	return fmt.Errorf("%w: GET %s/ready answered %d%s", ErrNotReady, target, resp.StatusCode, detail)
}

// UpstreamState is one upstream's counters.
type UpstreamState struct {
	URL      string `json:"url"`
	InFlight int64  `json:"in_flight"`
	Requests uint64 `json:"requests"` // sent to it since the gateway started
	Errors   uint64 `json:"errors"`   // failed to reach it (answered 502/503)
	// Percent is its share of new requests: 100 minus the canary's for
	// the active upstream, the canary's for the canary, 0 for others.
	Percent float64 `json:"percent"`
}

// State is the body of GET /state on the admin socket.
type State struct {
	Active     string          `json:"active"`
	Previous   string          `json:"previous"`
	SwitchedAt time.Time       `json:"switched_at"`
	InFlight   int64           `json:"in_flight"` // all upstreams
	Requests   uint64          `json:"requests"`  // all proxied requests
	Errors     uint64          `json:"errors"`    // answered 502/503 by the gateway
	Retries    uint64          `json:"retries"`   // re-sent after nothing reached an upstream
	NoActive   uint64          `json:"no_active"` // answered 503 "no release is active"
	Upstreams  []UpstreamState `json:"upstreams"` // active first, then previous, then others
	StartedAt  time.Time       `json:"started_at"`
	// PID and BinarySHA256 identify the gateway process and the binary
	// it runs (what an upgrade in place compares).
	PID          int    `json:"pid"`
	BinarySHA256 string `json:"binary_sha256"`
	// Canary and Shadow are the rollout in progress; absent when none.
	Canary *CanaryState `json:"canary,omitempty"`
	Shadow *ShadowState `json:"shadow,omitempty"`
}

// State returns the gateway's state now.
func (g *Gateway) State() State {
	digest := selfDigest() // hashed once, never under g.mu (switches wait on it)
	g.mu.Lock()
	defer g.mu.Unlock()
	st := State{
		Active: g.Active(), Previous: g.previous, SwitchedAt: g.switchedAt,
		Requests: g.requests.Load(), Errors: g.errors.Load(), Retries: g.retries.Load(),
		NoActive: g.noActive.Load(), StartedAt: g.started,
		PID: os.Getpid(), BinarySHA256: digest,
	}
	rank := func(k string) int {
		switch k {
		case st.Active:
			return 0
		case st.Previous:
			return 1
		}
		return 2
	}
	g.rolloutStateLocked(&st)
	for _, u := range g.upstreams {
		n, _ := u.idleState()
		st.InFlight += n
		st.Upstreams = append(st.Upstreams, UpstreamState{URL: u.key, InFlight: n, Requests: u.requests.Load(), Errors: u.errors.Load(), Percent: st.percent(u.key)})
	}
	sort.Slice(st.Upstreams, func(i, j int) bool {
		a, b := st.Upstreams[i], st.Upstreams[j]
		if rank(a.URL) != rank(b.URL) {
			return rank(a.URL) < rank(b.URL)
		}
		return a.URL < b.URL
	})
	return st
}

// DrainResult is what WaitDrained saw.
type DrainResult struct {
	Upstream string        `json:"upstream"`
	InFlight int64         `json:"in_flight"`
	Drained  bool          `json:"drained"`
	Waited   time.Duration `json:"waited_ns"`
}

// ErrStillActive is returned by WaitDrained for the active upstream: new
// requests keep arriving there, so waiting for it to drain makes no sense.
var ErrStillActive = errors.New("upstream is the active one; switch away from it first")

// WaitDrained blocks until upstream has no request in flight, or timeout
// (or ctx) ends first; then Drained is false and InFlight is the count left.
// An upstream the gateway never sent to is drained at once.
func (g *Gateway) WaitDrained(ctx context.Context, target string, timeout time.Duration) (*DrainResult, error) {
	u, err := ParseUpstream(target)
	if err != nil {
		return nil, err
	}
	key := u.String()
	if g.Active() == key {
		return nil, fmt.Errorf("waiting for %s to drain: %w", key, ErrStillActive)
	}
	g.mu.Lock()
	up := g.upstreams[key]
	g.mu.Unlock()
	start := time.Now()
	res := &DrainResult{Upstream: key, Drained: true}
	if up == nil {
		return res, nil
	}
	var timer <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	for {
		n, idle := up.idleState()
		if n == 0 {
			res.Waited = time.Since(start)
			return res, nil
		}
		select {
		case <-idle:
		case <-timer:
			res.InFlight, _ = up.idleState()
			res.Drained = res.InFlight == 0
			res.Waited = time.Since(start)
			return res, nil
		case <-ctx.Done():
			res.InFlight, _ = up.idleState()
			res.Drained = res.InFlight == 0
			res.Waited = time.Since(start)
			return res, ctx.Err()
		}
	}
}
