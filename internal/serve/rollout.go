package serve

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/modelship/modelship/internal/proxyhttp"
	"github.com/modelship/modelship/internal/shadow"
	"github.com/modelship/modelship/internal/sticky"
	"github.com/modelship/modelship/serving"
	"github.com/modelship/modelship/suite"
)

// route is the Route in force as the proxy applies it, replaced as a
// whole: ServeHTTP loads it once per request.
type route struct {
	// Route is as posted, except that a mirror kept across a POST keeps
	// the ShadowRoute it was started with.
	Route
	// to is the reverse proxy to each version's Service, by
	// StickyRoute.Self's values; nil without a sticky route.
	to map[string]*httputil.ReverseProxy
	// mirror runs Route.Shadow; nil without one.
	mirror *shadow.Mirror
}

// forwardFor is the reverse proxy r goes to for its sticky header: nil
// when r is this replica's to answer (no sticky route, no header, a
// value that hashes to this replica's version, or a request another
// replica forwarded already).
func (rt *route) forwardFor(r *http.Request) *httputil.ReverseProxy {
	if rt == nil || rt.Sticky == nil || r.Header.Get(HeaderRouted) != "" {
		return nil
	}
	v := r.Header.Get(rt.Sticky.Header)
	if v == "" {
		return nil
	}
	side := SelfStable
	if sticky.Canary(v, rt.Sticky.Percent) {
		side = SelfCanary
	}
	if side == rt.Sticky.Self {
		return nil
	}
	return rt.to[side]
}

// startMirror samples r for the route's mirror and starts capturing it;
// nil when r is not mirrored.
func (rt *route) startMirror(r *http.Request) *shadow.Capture {
	if rt == nil || rt.mirror == nil || !rt.mirror.Sample() {
		return nil
	}
	return shadow.StartCapture(r, rt.mirror)
}

// clone is rt with copies of what it points to, for a caller to keep.
func (rt Route) clone() Route {
	if s := rt.Sticky; s != nil {
		c := *s
		rt.Sticky = &c
	}
	if s := rt.Shadow; s != nil {
		c := *s
		c.Checks = slices.Clone(s.Checks)
		rt.Shadow = &c
	}
	return rt
}

// fieldError is a bad value in a posted Route: RoutePath answers 400.
type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

// serveRoute answers RoutePath: 404 without an admin token configured,
// 401 without the right one, else GET the RouteState and POST a Route.
func (p *Proxy) serveRoute(w http.ResponseWriter, r *http.Request) {
	if p.AdminToken == "" {
		writeJSON(w, http.StatusNotFound, apiError("not found", "invalid_request_error", http.StatusNotFound))
		return
	}
	if !p.adminAuthorized(r) {
		writeJSON(w, http.StatusUnauthorized, apiError("missing or wrong admin token: send "+serving.HeaderAdminToken, "invalid_request_error", http.StatusUnauthorized))
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		writeJSON(w, http.StatusOK, p.CurrentRoute())
	case http.MethodPost:
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		var rt Route
		if err := dec.Decode(&rt); err != nil {
			writeJSON(w, http.StatusBadRequest, apiError("body: not a route as JSON: "+err.Error(), "invalid_request_error", http.StatusBadRequest))
			return
		}
		if _, _, err := p.newRoute(rt); err != nil { // bad values first: 400
			writeJSON(w, http.StatusBadRequest, apiError(err.Error(), "invalid_request_error", http.StatusBadRequest))
			return
		}
		if err := p.probeRoute(r.Context(), rt); err != nil {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, apiError(err.Error(), "upstream_unavailable", http.StatusServiceUnavailable))
			return
		}
		st, err := p.SetRoute(rt)
		var fe *fieldError
		switch {
		case errors.As(err, &fe):
			writeJSON(w, http.StatusBadRequest, apiError(err.Error(), "invalid_request_error", http.StatusBadRequest))
		case err != nil:
			p.logger().Error("setting the route", "err", err)
			writeJSON(w, http.StatusInternalServerError, apiError(err.Error(), "internal_error", http.StatusInternalServerError))
		default:
			writeJSON(w, http.StatusOK, st)
		}
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		writeJSON(w, http.StatusMethodNotAllowed, apiError("method "+r.Method+" not allowed; use GET or POST", "invalid_request_error", http.StatusMethodNotAllowed))
	}
}

// adminAuthorized reports whether r carries the admin token. The hashes
// are compared, in constant time, so that not even the token's length
// shows in the time of an answer.
func (p *Proxy) adminAuthorized(r *http.Request) bool {
	got := sha256.Sum256([]byte(r.Header.Get(serving.HeaderAdminToken)))
	want := sha256.Sum256([]byte(p.AdminToken))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// CurrentRoute is the route in force and the running mirror's report.
func (p *Proxy) CurrentRoute() RouteState {
	rt := p.route.Load()
	if rt == nil {
		return RouteState{}
	}
	st := RouteState{Route: rt.Route.clone()}
	if rt.mirror != nil {
		rep := rt.mirror.Report()
		st.Shadow = &rep
	}
	return st
}

// SetRoute checks rt and puts it in force for the requests that arrive
// from now on. A shadow with the running mirror's Upstream and Percent
// keeps that mirror (and its counts); any other shadow, or none, closes
// it, and the answer's Shadow is then its final report. Errors of rt's
// values are *fieldError, naming the field (sticky.percent, ...).
func (p *Proxy) SetRoute(rt Route) (RouteState, error) {
	next, opt, err := p.newRoute(rt)
	if err != nil {
		return RouteState{}, err
	}
	p.routeMu.Lock()
	defer p.routeMu.Unlock()
	cur := p.route.Load()
	var old *shadow.Mirror
	if cur != nil {
		old = cur.mirror
	}
	switch {
	case old != nil && next.Shadow != nil && next.Shadow.Upstream == cur.Shadow.Upstream && next.Shadow.Percent == cur.Shadow.Percent:
		next.mirror, next.Shadow, old = old, cur.Shadow, nil
	case next.Shadow != nil:
		opt.Transport, opt.Logger = p.transport, p.logger()
		if next.mirror, err = shadow.New(opt); err != nil {
			return RouteState{}, &fieldError{"shadow", err.Error()}
		}
	}
	p.route.Store(next)
	p.logRoute(next.Route)
	st := RouteState{Route: next.Route.clone()}
	if old != nil {
		// Requests that loaded the old route may still offer to it: the
		// closed mirror drops them.
		old.Close()
		rep := old.Report()
		p.logger().Info("shadow stopped", "upstream", rep.Upstream, "offered", rep.Offered, "compared", rep.Compared)
		st.Shadow = &rep
	} else if next.mirror != nil {
		rep := next.mirror.Report()
		st.Shadow = &rep
	}
	return st, nil
}

// closeRoute stops the mirror, if one runs, when serve shuts down.
func (p *Proxy) closeRoute() {
	p.routeMu.Lock()
	defer p.routeMu.Unlock()
	if rt := p.route.Swap(nil); rt != nil && rt.mirror != nil {
		rt.mirror.Close()
	}
}

// logRoute logs the route put in force: header names, versions and
// percents, never a header's value or a URL's password.
func (p *Proxy) logRoute(rt Route) {
	attrs := []any{}
	if s := rt.Sticky; s != nil {
		attrs = append(attrs, "sticky_header", s.Header, "sticky_percent", s.Percent, "self", s.Self)
	}
	if s := rt.Shadow; s != nil {
		attrs = append(attrs, "shadow_upstream", redactedURL(s.Upstream), "shadow_percent", s.Percent, "checked_prompts", len(s.Checks))
	}
	p.logger().Info("route", attrs...)
}

// newRoute checks rt, compiles its sticky route, and returns the options
// of its mirror (but for the transport and logger), which SetRoute starts
// or keeps.
func (p *Proxy) newRoute(rt Route) (*route, shadow.Options, error) {
	next := &route{Route: rt.clone()}
	var opt shadow.Options
	if s := next.Sticky; s != nil {
		if err := checkSticky(*s); err != nil {
			return nil, opt, err
		}
		next.to = map[string]*httputil.ReverseProxy{}
		for side, raw := range map[string]string{SelfStable: s.Stable, SelfCanary: s.Canary} {
			base, _ := url.Parse(raw) // checked
			next.to[side] = p.forwarder(side, base)
		}
	}
	if s := next.Shadow; s != nil {
		var err error
		if opt, err = shadowOptions(*s); err != nil {
			return nil, opt, err
		}
	}
	return next, opt, nil
}

// checkSticky checks each field of a sticky route.
func checkSticky(s StickyRoute) error {
	switch {
	case s.Header == "":
		return &fieldError{"sticky.header", "empty; want a header name like X-Conversation-Id"}
	case !isToken(s.Header):
		return &fieldError{"sticky.header", fmt.Sprintf("%q is not a header name like X-Conversation-Id", s.Header)}
	}
	if err := checkPercent("sticky.percent", s.Percent); err != nil {
		return err
	}
	if s.Self != SelfStable && s.Self != SelfCanary {
		return &fieldError{"sticky.self", fmt.Sprintf("%q is not %q or %q", s.Self, SelfStable, SelfCanary)}
	}
	if err := checkBaseURL("sticky.stable", s.Stable); err != nil {
		return err
	}
	return checkBaseURL("sticky.canary", s.Canary)
}

// shadowOptions checks each field of a shadow route and returns the
// mirror's options, but for its transport and logger.
func shadowOptions(s ShadowRoute) (shadow.Options, error) {
	if err := checkBaseURL("shadow.upstream", s.Upstream); err != nil {
		return shadow.Options{}, err
	}
	if err := checkPercent("shadow.percent", s.Percent); err != nil {
		return shadow.Options{}, err
	}
	if s.Queue < 0 {
		return shadow.Options{}, &fieldError{"shadow.queue", fmt.Sprintf("%d is negative; want a count of exchanges (0: the default, %d)", s.Queue, shadow.DefaultQueue)}
	}
	opt := shadow.Options{Upstream: s.Upstream, Percent: s.Percent, Queue: s.Queue}
	if len(s.Checks) > 0 {
		c, err := suite.NewChecker(s.Checks)
		if err != nil {
			return shadow.Options{}, &fieldError{"shadow", err.Error()}
		}
		opt.Check = c.Check
	}
	return opt, nil
}

func checkPercent(field string, v float64) error {
	switch {
	case math.IsNaN(v) || v < 0 || v > 100:
		return &fieldError{field, fmt.Sprintf("%v is not between 0 and 100", v)}
	case v == 0:
		return &fieldError{field, "0: want more than 0 and at most 100 (to stop, leave the route out)"}
	}
	return nil
}

// checkBaseURL checks that raw is a base http(s) URL, as a Service's
// http://CLUSTER-IP:PORT is; the error shows no password.
func checkBaseURL(field, raw string) error {
	u, err := url.Parse(raw)
	if raw == "" {
		return &fieldError{field, "empty; want a base URL like http://10.0.0.1:8000"}
	}
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return &fieldError{field, fmt.Sprintf("%q is not a base http(s) URL like http://10.0.0.1:8000 (no query)", redactedURL(raw))}
	}
	return nil
}

// redactedURL is raw as a log line or an error may show it: without a
// password.
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err == nil:
		return u.Redacted()
	case strings.Contains(raw, "@"):
		return "(unreadable URL with user information)"
	}
	return raw
}

// isToken reports whether s is a header name (RFC 9110's token).
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

// forwarder is the reverse proxy to the version side's Service at base:
// streamed as the engine's path is, the client's headers (its API key
// included) intact, marked HeaderRouted so that the replica there answers
// it itself.
func (p *Proxy) forwarder(side string, base *url.URL) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(base)
			r.SetXForwarded()
			r.Out.Header.Set(HeaderRouted, "1")
		},
		Transport:     p.transport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.forwardError(w, r, side, err)
		},
	}
}

// forward sends r to the other version through fw. While that version
// cannot be reached at all (it has no ready pod yet: the connection is
// refused before any of r was sent), this replica answers r itself, so a
// sticky split set before the new release's first pod is ready costs no
// request; a value answered here was never the new release's yet.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, fw *httputil.ReverseProxy, rt *route) {
	body := &readCounter{rc: r.Body}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = body
	}
	orig := r
	here := func(w http.ResponseWriter) {
		orig.Body = body.rc
		p.answer(w, orig, rt, true)
	}
	_ = http.NewResponseController(w).EnableFullDuplex()
	fw.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), answerHereKey{}, answerHere{body: body, answer: here})))
}

// answerHere is how forwardError answers a request here instead.
type answerHere struct {
	body   *readCounter
	answer func(http.ResponseWriter)
}

type answerHereKey struct{}

// readCounter counts what was read of a request body (by the transport,
// from its own goroutine).
type readCounter struct {
	rc io.ReadCloser
	n  atomic.Int64
}

func (b *readCounter) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *readCounter) Close() error { return b.rc.Close() }

// dialFailed reports whether err is a failure to connect: nothing of the
// request was sent.
func dialFailed(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// forwardError answers a request the other version could not be reached
// for: here, when the connection was refused before any of it was sent
// (forward), else 502; the error, which names its address, is logged
// only. A request the client abandoned gets no answer.
func (p *Proxy) forwardError(w http.ResponseWriter, r *http.Request, side string, err error) {
	if h, ok := r.Context().Value(answerHereKey{}).(answerHere); ok && dialFailed(err) && h.body.n.Load() == 0 && r.Context().Err() == nil {
		p.logger().Debug("sticky forward: the other version cannot be reached yet; answered here", "to", side, "err", err)
		h.answer(w)
		return
	}
	if r.Context().Err() != nil {
		p.logger().Debug("client went away", "path", r.URL.Path, "err", err)
		return
	}
	_, msg := proxyhttp.Public("the "+side+" release", err)
	p.logger().Warn("sticky forward failed", "method", r.Method, "path", r.URL.Path, "to", side, "status", http.StatusBadGateway, "err", err)
	writeJSON(w, http.StatusBadGateway, apiError(msg, "upstream_unavailable", http.StatusBadGateway))
}

// probeRoute checks, from this replica, that every address rt sends
// requests to answers as a serving release (GET /version, a JSON object
// with "version" or "engine"), or, for a sticky split's, refuses
// connections (a Service whose pods are not ready yet: a forward is then
// answered here). Anything else
// (no answer, or an answer from something else) means the address does
// not lead to a release from here yet, as a Service that kube-proxy has
// not programmed on this node: its connections would go wherever the
// node's default route leads, and be kept alive there. RoutePath then
// answers 503 and the deployer tries again.
func (p *Proxy) probeRoute(ctx context.Context, rt Route) error {
	if s := rt.Shadow; s != nil {
		// The release a shadow mirrors to runs already: it must answer.
		if err := probeUpstream(ctx, s.Upstream, false); err != nil {
			return err
		}
	}
	if s := rt.Sticky; s != nil {
		for _, u := range []string{s.Stable, s.Canary} {
			if err := probeUpstream(ctx, u, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// probeUpstream is probeRoute's check of one base URL, on a connection of
// its own; mayRefuse accepts a refused connection.
func probeUpstream(ctx context.Context, base string, mayRefuse bool) error {
	if checkBaseURL("url", base) != nil {
		return nil // SetRoute says what is wrong with it
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/version", nil)
	if err != nil {
		return err
	}
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true, DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if mayRefuse && errors.Is(err, syscall.ECONNREFUSED) {
		return nil
	}
	shown := redactedURL(base)
	if err != nil {
		return fmt.Errorf("%s does not answer from this replica yet (%v): try again once its Service is programmed", shown, err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&v) != nil || (v["version"] == nil && v["engine"] == nil) {
		return fmt.Errorf("%s answers GET /version with %d, not as a serving release: from this replica the address does not lead to one yet; try again", shown, resp.StatusCode)
	}
	return nil
}
