// Package gateway is the blue-green switch point in front of the releases of
// one environment: a streaming reverse proxy whose active upstream changes
// with one atomic store, with in-flight counters per upstream so "the old
// release is drained" is a fact, an admin API on a unix socket to switch and
// to wait for a drain, and a state file so a restarted gateway comes back
// pointing at the same release.
//
// Requests already in flight at a switch finish on the upstream they
// started on; new requests go to the new one. A request whose connection to
// an upstream fails before anything was sent (connection refused, name not
// found) is retried once on the upstream active at that moment, so a switch
// away from a release that is going down loses nothing.
//
// For progressive delivery the gateway also splits (a canary takes a
// percent of new requests, sticky by a header's value: split.go), measures
// every request it proxies into a ring the deploy reads (measure.go) and
// into Prometheus metrics per release (metrics.go), and mirrors a sample
// of the active release's exchanges to a shadow release (mirror.go). The
// canary split and the rollout's control are kept in the state file, so a
// restarted gateway goes on splitting; the rest is not kept across a
// restart or an upgrade in place: a running mirror ends (its counts cannot
// be kept), the samples start again from seq 1 in a ring with another
// boot (Samples.Boot: readers start over from 0) and the metrics from
// zero (State's pid and started_at tell).
package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelship/modelship/internal/measure"
	"github.com/modelship/modelship/internal/proxyhttp"
	"github.com/modelship/modelship/internal/releasemetrics"
	"github.com/modelship/modelship/internal/shadow"
)

// HealthPath is answered by the gateway itself (200) for a container
// HEALTHCHECK; every other path but MetricsPath is proxied.
const HealthPath = "/-/gateway/health"

// DefaultReadyTimeout bounds the GET /ready check a switch makes.
const DefaultReadyTimeout = 10 * time.Second

// Gateway is an http.Handler proxying to the active upstream. Create it with
// New; serve it on the public port and serve AdminHandler on a unix socket.
type Gateway struct {
	// Logger receives switches and proxy errors; nil means slog.Default().
	Logger *slog.Logger

	active atomic.Pointer[upstream]

	mu         sync.Mutex // guards the fields below and state file writes
	upstreams  map[string]*upstream
	previous   string
	switchedAt time.Time
	statePath  string

	transport http.RoundTripper
	rp        *httputil.ReverseProxy
	started   time.Time

	requests atomic.Uint64 // every proxied request
	errors   atomic.Uint64 // answered by the gateway with 502/503
	retries  atomic.Uint64 // re-sent after a connection failed before sending
	noActive atomic.Uint64 // answered 503 because no upstream was set

	handingOver atomic.Bool  // answers close their connections
	conns       atomic.Int64 // open public connections

	canary    atomic.Pointer[canary] // nil: every request to the active upstream
	shadow    atomic.Pointer[mirror] // nil: nothing mirrored
	control   string                 // under mu: the rollout's operator action
	newShadow func(shadow.Options) (Shadower, error)
	ring      *measure.Ring
	unrouted  *releasemetrics.Recorder // /v1/ requests with no release active
	metrics   http.Handler             // MetricsPath

	args     []string         // Options.Args: nil, no upgrade in place
	upgrades chan upgradeCall // POST /upgrade → Serve
	child    chan error       // the exit of the gateway handed over to
}

// upstream is one release the gateway has sent requests to.
type upstream struct {
	url *url.URL
	key string // url.String()

	mu       sync.Mutex
	inflight int64
	idle     chan struct{} // closed while inflight == 0

	requests atomic.Uint64
	errors   atomic.Uint64

	stats *releasemetrics.Recorder // its /v1/ requests, for MetricsPath
	about about                    // what its GET /version said
}

func newUpstream(u *url.URL) *upstream {
	idle := make(chan struct{})
	close(idle)
	return &upstream{url: u, key: u.String(), idle: idle, stats: releasemetrics.NewRecorder()}
}

func (u *upstream) acquire() {
	u.mu.Lock()
	if u.inflight == 0 {
		u.idle = make(chan struct{})
	}
	u.inflight++
	u.mu.Unlock()
}

func (u *upstream) release() {
	u.mu.Lock()
	u.inflight--
	if u.inflight == 0 {
		close(u.idle)
	}
	u.mu.Unlock()
}

// idleState returns the in-flight count and a channel closed once it is 0.
func (u *upstream) idleState() (int64, <-chan struct{}) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.inflight, u.idle
}

// Options configure New.
type Options struct {
	// StatePath, when set, is a JSON file holding the active upstream: read
	// by New, rewritten atomically on every switch.
	StatePath string
	// Upstream is the initial upstream, used only when the state file does
	// not exist or names none. Empty: no release is active (503) until a
	// switch.
	Upstream string
	// Transport carries proxied requests; nil means proxyhttp.Transport.
	Transport http.RoundTripper
	// HeaderTimeout bounds the wait for a release's response headers (0:
	// proxyhttp.DefaultHeaderTimeout).
	HeaderTimeout time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Args are the gateway's own command-line arguments (after the
	// program's name). Set, the gateway can be upgraded in place (POST
	// /upgrade): another binary is started with them and takes the
	// public port over.
	Args []string
	// NewShadow starts a mirror for POST /shadow (the command passes
	// shadow.New); nil answers 501 "shadow traffic not available in this
	// build".
	NewShadow func(shadow.Options) (Shadower, error)
}

// New returns a gateway, restoring the active upstream, and the canary
// split with its control, from opt.StatePath when that file exists. A
// state file that cannot be read or parsed is an error (a gateway must not
// silently forget which release is live).
func New(opt Options) (*Gateway, error) {
	g := &Gateway{
		Logger:    opt.Logger,
		upstreams: map[string]*upstream{},
		statePath: opt.StatePath,
		transport: opt.Transport,
		started:   time.Now().UTC(),
		args:      opt.Args,
		upgrades:  make(chan upgradeCall),
		child:     make(chan error, 1),
		newShadow: opt.NewShadow,
		ring:      measure.NewRing(),
		unrouted:  releasemetrics.NewRecorder(),
	}
	g.metrics = newMetricsHandler(g)
	if g.transport == nil {
		g.transport = proxyhttp.Transport(opt.HeaderTimeout)
	}
	g.rp = &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.Out.Host = ""; r.SetXForwarded() },
		Transport:     retryTransport{g},
		FlushInterval: -1, // flush every write: SSE tokens leave as they arrive
		ErrorHandler:  g.proxyError,
	}
	initial := opt.Upstream
	var split *CanaryState
	if opt.StatePath != "" {
		st, err := ReadStateFile(opt.StatePath)
		switch {
		case err == nil && st.Active != "":
			initial = st.Active
			g.previous = st.Previous
			g.switchedAt = st.SwitchedAt
			split = st.Canary
		case err == nil, errors.Is(err, errNoStateFile):
		default:
			return nil, err
		}
	}
	if initial != "" {
		u, err := ParseUpstream(initial)
		if err != nil {
			return nil, err
		}
		up := newUpstream(u)
		g.upstreams[up.key] = up
		g.active.Store(up)
		if split != nil {
			g.restoreCanaryLocked(split)
		}
		if opt.StatePath != "" {
			if err := g.persistLocked(); err != nil {
				return nil, err
			}
		}
	}
	return g, nil
}

func (g *Gateway) logger() *slog.Logger {
	if g.Logger != nil {
		return g.Logger
	}
	return slog.Default()
}

// Active returns the active upstream URL, "" when none.
func (g *Gateway) Active() string {
	if u := g.active.Load(); u != nil {
		return u.key
	}
	return ""
}

// holderKey keys the request's current upstream in its context.
type holderKey struct{}

// holder is the upstream a request is counted against; a retry moves it.
type holder struct{ u *upstream }

// acquireActive counts a request against the active upstream and returns
// it, or nil when none is set. The re-check after counting closes the race
// with a switch: once Switch has stored a new upstream, no request counted
// against the old one after a drain check saw it idle can go to it.
func (g *Gateway) acquireActive() *upstream {
	for {
		u := g.active.Load()
		if u == nil {
			return nil
		}
		u.acquire()
		if g.active.Load() == u {
			return u
		}
		u.release()
	}
}

// acquirePrevious is the upstream switched away from last, while it is
// known and not the active one; nil otherwise.
func (g *Gateway) acquirePrevious() *upstream {
	g.mu.Lock()
	u := g.upstreams[g.previous]
	g.mu.Unlock()
	if u == nil || u == g.active.Load() {
		return nil
	}
	u.acquire()
	return u
}

// ServeHTTP implements http.Handler: HealthPath and MetricsPath are
// answered here, every other request is proxied (to the canary for its
// share, else to the active upstream), measured, and offered to the
// mirror when sampled.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.handingOver.Load() {
		// Handed over: this answer is the connection's last, so the
		// client opens its next one on the new gateway (closing an idle
		// keep-alive connection here could meet a request in flight).
		w.Header().Set("Connection", "close")
	}
	switch r.URL.Path {
	case HealthPath:
		g.health(w, r)
		return
	case MetricsPath:
		g.metrics.ServeHTTP(w, r)
		return
	}
	g.requests.Add(1)
	mw := measure.NewWriter(w)
	u := g.acquireRoute(r)
	if u == nil {
		g.noActive.Add(1)
		g.errors.Add(1)
		writeJSON(mw, http.StatusServiceUnavailable, apiError("no release is active", "no_active_release", http.StatusServiceUnavailable))
		g.record(r, mw.Sample(r, ""), nil, g.unrouted)
		return
	}
	h := &holder{u: u}
	defer func() { h.u.release() }()
	u.requests.Add(1)
	if counted(r) {
		u.stats.Begin()
	}
	c := g.startMirror(r, u)
	if c != nil {
		mw.OnWrite = c.Response
	}
	r = r.WithContext(context.WithValue(r.Context(), holderKey{}, h))
	// Full duplex, as modelship serve's proxy: an upstream answering before
	// it has the whole request body must not have the body closed under it.
	_ = http.NewResponseController(mw).EnableFullDuplex()
	g.rp.ServeHTTP(mw, r)
	g.record(r, mw.Sample(r, h.u.key), u.stats, h.u.stats)
	if c != nil {
		c.Finish(r, mw)
	}
}

func (g *Gateway) health(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, apiError("method "+r.Method+" not allowed; use GET", "invalid_request_error", http.StatusMethodNotAllowed))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "active": g.active.Load() != nil})
}

// retryTransport sends a request to the upstream its holder names, and
// re-sends it once to the upstream active at that moment when the first
// attempt failed before a request header was written (nothing reached the
// upstream, so even a POST generation is safe to send again) — or, when
// that is the very upstream that failed, to the previous one. A canary
// refusing connections is thus retried on the active (stable) upstream.
type retryTransport struct{ g *Gateway }

func (t retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	h, _ := req.Context().Value(holderKey{}).(*holder)
	if h == nil {
		return nil, errors.New("gateway: request without an upstream")
	}
	body := &trackedBody{rc: req.Body}
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = body
	}
	resp, sent, err := t.try(req, h.u)
	if err == nil || sent || body.read.Load() || req.Context().Err() != nil {
		return resp, err
	}
	next := t.g.acquireActive()
	why := "retrying on the active upstream: nothing was sent"
	if next == h.u {
		// The active release itself refuses (its engine died right after
		// the switch): the previous one, while it is still up, answers
		// until the deploy switches back.
		next.release()
		next = t.g.acquirePrevious()
		why = "the active upstream refuses connections: sent to the previous one, nothing was sent before"
	}
	if next == nil {
		return nil, err
	}
	t.g.retries.Add(1)
	t.g.logger().Info(why, "failed", h.u.key, "to", next.key, "path", req.URL.Path, "err", err)
	h.u.release()
	h.u = next
	next.requests.Add(1)
	resp, _, err = t.try(req, next)
	return resp, err
}

// try sends req to u; sent reports whether the request header was written.
func (t retryTransport) try(req *http.Request, u *upstream) (resp *http.Response, sent bool, err error) {
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{WroteHeaders: func() { wrote.Store(true) }}
	out := req.Clone(httptrace.WithClientTrace(req.Context(), trace))
	out.Body = req.Body
	out.URL.Scheme = u.url.Scheme
	out.URL.Host = u.url.Host
	out.Host = ""
	resp, err = t.g.transport.RoundTrip(out)
	// A dial error is the transport's last word only when it re-dialled
	// after a kept-alive connection turned out closed (the upstream died
	// between two requests): it does that only when re-sending is safe
	// (nothing was written, or an idempotent request), so the header the
	// stale connection took does not count as sent.
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return resp, false, err
	}
	return resp, wrote.Load(), err
}

// trackedBody passes a request body through, remembering whether any of it
// was read, and leaves closing the server's body to the server so that a
// request can be re-sent after a failed attempt.
type trackedBody struct {
	rc   interface{ Read([]byte) (int, error) }
	read atomic.Bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.read.Store(true)
	}
	return n, err
}

func (b *trackedBody) Close() error { return nil }

// proxyError answers when the upstream could not be reached: 503 while it
// is not accepting connections, 502 for other failures. A request the
// client abandoned gets no answer.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		g.logger().Debug("client went away", "path", r.URL.Path, "err", err)
		return
	}
	key := ""
	var release []any
	if h, _ := r.Context().Value(holderKey{}).(*holder); h != nil {
		key, release = h.u.key, h.u.releaseAttrs()
		h.u.errors.Add(1)
	}
	g.errors.Add(1)
	code, msg := proxyhttp.Public("the release", err) // the error's text and key name internal addresses: log only
	g.logger().Warn("proxy error", append([]any{"method", r.Method, "path", r.URL.Path, "upstream", key, "status", code, "err", err}, release...)...)
	writeJSON(w, code, apiError(msg, "release_unavailable", code))
}
