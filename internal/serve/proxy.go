package serve

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelship/modelship/internal/clip"
	"github.com/modelship/modelship/internal/measure"
	"github.com/modelship/modelship/internal/proxyhttp"
	"github.com/modelship/modelship/internal/releasemetrics"
	"github.com/modelship/modelship/serving"
)

// Digest states reported by GET /version.
const (
	DigestProvided  = "provided"  // given by flag or environment
	DigestComputing = "computing" // being hashed in the background
	DigestComputed  = "computed"  // hashed at startup
	DigestFailed    = "failed"    // hashing failed; see digest_error
	DigestUnknown   = "unknown"   // neither given nor computed
)

// VersionInfo is the body of GET /version: what is serving and where it came
// from.
type VersionInfo struct {
	// ReleaseID is the deploy's release id (Config.ReleaseID); "" outside
	// a deploy.
	ReleaseID        string `json:"release_id"`
	ServedModelName  string `json:"served_model_name"`
	ModelPath        string `json:"model_path"`
	Digest           string `json:"digest"`        // model digest, "sha256:..."
	DigestStatus     string `json:"digest_status"` // one of the Digest* states
	DigestError      string `json:"digest_error,omitempty"`
	Image            string `json:"image"`
	ImageDigest      string `json:"image_digest"`
	GitSHA           string `json:"git_sha"`
	DeployedAt       string `json:"deployed_at"` // RFC 3339
	ModelshipVersion string `json:"modelship_version"`
	Engine           string `json:"engine"`         // "vllm", "sim" or "ollama"
	EngineVersion    string `json:"engine_version"` // from the engine's GET /version; "" until ready
	// EngineArgv is the command line the engine was started with, the
	// serving contract's `vllm serve MODEL ...` (the same for sim).
	EngineArgv []string `json:"engine_argv"`
	// EngineEnv are the engine's settings given as environment (engine
	// ollama: OLLAMA_NUM_PARALLEL, ...), EngineModelfile the Modelfile
	// the checkpoint was made an Ollama model with.
	EngineEnv       []string `json:"engine_env,omitempty"`
	EngineModelfile string   `json:"engine_modelfile,omitempty"`
}

// ReadyStatus is the body of GET /ready.
type ReadyStatus struct {
	Ready bool   `json:"ready"`
	Model string `json:"model"`
	// Check names the failing step: "health", "models" or "generation".
	Check  string `json:"check,omitempty"`
	Reason string `json:"reason,omitempty"`
	// CheckedAt is when the engine was last asked (a cached success keeps
	// its time).
	CheckedAt time.Time `json:"checked_at"`
}

// Proxy is the public HTTP handler: it serves GET /version and GET /ready
// itself and streams every other request to the engine unbuffered. During
// a rollout on Kubernetes it also applies the route the deployer set at
// RoutePath: a sticky header's requests for the other version are
// forwarded to that version's Service, and a sample of what this replica
// answers is mirrored to a shadow.
type Proxy struct {
	// ReadyTTL is how long a successful readiness check is reused (default
	// 5s). Failures are never cached.
	ReadyTTL time.Duration
	// ReadyTimeout bounds one readiness check (default 30s).
	ReadyTimeout time.Duration
	// Logger receives proxy errors; nil means slog.Default().
	Logger *slog.Logger
	// APIKey, when set, is required on /v1/ routes, as vLLM's --api-key
	// does: "Authorization: Bearer KEY", or "api-key: KEY" (the header
	// OpenAI's Azure clients send, and one the Kubernetes API server's
	// service proxy lets through: it consumes Authorization itself).
	APIKey string
	// API is where the engine's health and version are; NewProxy sets
	// vLLM's (APIFor).
	API EngineAPI
	// Prepare, when set, runs once the engine is healthy and before the
	// first readiness check can pass (engine ollama: create and load the
	// model); a failure is the readiness reason, retried every 5s.
	Prepare func(ctx context.Context) error

	// AdminToken, when set, opens RoutePath to requests that carry it
	// (serving.HeaderAdminToken); unset, RoutePath answers 404.
	AdminToken string
	// route is what the rollout endpoint set; nil answers every request
	// here. routeMu serializes its changes.
	route   atomic.Pointer[route]
	routeMu sync.Mutex

	// MaxConnAge: a response on a keep-alive connection older than this
	// says "Connection: close" (NewProxy: DefaultMaxConnAge; 0 never), so
	// clients reconnect and the Service spreads them over the replicas it
	// selects now: how a canary by replica ratio gets its share from
	// clients that keep their connections (the server must use
	// ConnContext).
	MaxConnAge time.Duration

	metrics *proxyMetrics // set by MeasureCompletions
	samples *measure.Ring // every /v1/ request, read at SamplesPath
	// own is the release's own metrics of every /v1/ request, in ownReg.
	own    *releasemetrics.Single
	ownReg *prometheus.Registry

	engine    *url.URL
	rp        *httputil.ReverseProxy
	client    *http.Client
	transport *http.Transport

	mu   sync.Mutex
	info VersionInfo

	readyMu   sync.Mutex // serializes checks so concurrent probes share one
	lastReady ReadyStatus
	// Prepare's outcome, under readyMu.
	prepared   bool
	prepareErr error
	preparedAt time.Time

	// drainUntil (unix nanoseconds, 0 for none) is when the current drain
	// ends if no shutdown follows it: until then every response says
	// "Connection: close" and /ready answers 503.
	drainUntil atomic.Int64
	// DrainHold is how long a drain outlasts its wait before serve is
	// ready again (a pre-stop hook with no SIGTERM after it: an aborted
	// termination, a hook run by hand). Zero means 30s.
	DrainHold time.Duration
}

// draining reports whether a drain is in force.
func (p *Proxy) draining() bool {
	u := p.drainUntil.Load()
	return u != 0 && time.Now().UnixNano() < u
}

// AdminHandler serves the pre-stop drain, serving.DrainPath, for the admin
// socket only (never the public port). GET DrainPath?wait=5s makes every
// later response carry "Connection: close" (so clients move their
// keep-alive connections to other replicas instead of having an idle one
// closed under them at shutdown), makes /ready answer 503, and returns
// after wait (at most 60s) — the time endpoint removal needs to reach
// every proxy — before the kubelet sends SIGTERM and serve drains what is
// still in flight. A drain ends: if no shutdown comes within DrainHold
// after the wait, the replica is ready again.
func (p *Proxy) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(serving.DrainPath, func(w http.ResponseWriter, r *http.Request) {
		if !allowGet(w, r) {
			return
		}
		wait := 5 * time.Second
		if q := r.URL.Query().Get("wait"); q != "" {
			d, err := time.ParseDuration(q)
			if err != nil || d < 0 || d > time.Minute {
				writeJSON(w, http.StatusBadRequest, apiError("wait: expected a duration from 0s to 60s, got "+strconv.Quote(q), "invalid_request_error", http.StatusBadRequest))
				return
			}
			wait = d
		}
		hold := p.DrainHold
		if hold <= 0 {
			hold = 30 * time.Second
		}
		until := time.Now().Add(wait + hold).UnixNano()
		p.drainUntil.Store(until)
		p.logger().Info("draining for the pre-stop hook", "wait", wait.String(), "ready_again_without_shutdown_after", (wait + hold).String())
		time.AfterFunc(wait+hold, func() {
			if p.drainUntil.CompareAndSwap(until, 0) {
				p.logger().Warn("drain ended: no shutdown followed it; ready again", "after", (wait + hold).String())
			}
		})
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
		writeJSON(w, http.StatusOK, map[string]any{"draining": true, "waited": wait.String(), "ready_again_after": hold.String()})
	})
	return mux
}

// NewProxy returns a handler that forwards to the engine at engineURL (e.g.
// http://127.0.0.1:8001) and reports info on GET /version.
func NewProxy(engineURL *url.URL, info VersionInfo) *Proxy {
	p := &Proxy{engine: engineURL, info: info, ReadyTTL: 5 * time.Second, ReadyTimeout: 30 * time.Second, API: APIFor(EngineVLLM),
		samples: measure.NewRing(), MaxConnAge: DefaultMaxConnAge}
	p.ownReg = p.newOwnMetrics()
	tr := proxyhttp.Transport(0)
	p.transport = tr
	p.client = &http.Client{Transport: tr}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(engineURL)
			r.SetXForwarded()
		},
		Transport:     tr,
		FlushInterval: -1, // flush every write: SSE tokens leave as they arrive
		ErrorHandler:  p.proxyError,
	}
	return p
}

// SetHeaderTimeout bounds the wait for the engine's response headers
// (default proxyhttp.DefaultHeaderTimeout).
func (p *Proxy) SetHeaderTimeout(d time.Duration) { p.transport.ResponseHeaderTimeout = d }

// SetDigest records the model digest once computed (err non-nil: failed).
func (p *Proxy) SetDigest(digest string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.info.Digest, p.info.DigestStatus, p.info.DigestError = "", DigestFailed, err.Error()
		return
	}
	p.info.Digest, p.info.DigestStatus, p.info.DigestError = digest, DigestComputed, ""
}

// SetEngineVersion records the version the engine reported.
func (p *Proxy) SetEngineVersion(v string) {
	p.mu.Lock()
	p.info.EngineVersion = v
	p.mu.Unlock()
}

// Version returns what GET /version reports now.
func (p *Proxy) Version() VersionInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.info
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.draining() || p.connTooOld(r) {
		w.Header().Set("Connection", "close")
	}
	switch r.URL.Path {
	case SamplesPath:
		p.serveSamples(w, r)
		return
	case RoutePath:
		p.serveRoute(w, r)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/-/") {
		// Admin endpoints live on the container's admin socket only.
		writeJSON(w, http.StatusNotFound, apiError("not found", "invalid_request_error", http.StatusNotFound))
		return
	}
	authorized, rt := p.authorized(r), p.route.Load()
	if authorized {
		if fw := rt.forwardFor(r); fw != nil {
			// Another version's to answer, and to measure: the canary's
			// analysis counts each request once, where it was answered.
			p.forward(w, r, fw, rt)
			return
		}
	}
	p.answer(w, r, rt, authorized)
}

// answer answers r here: GET /version, /metrics and /ready itself, every
// other request from the engine (measured, and mirrored when rt says so).
func (p *Proxy) answer(w http.ResponseWriter, r *http.Request, rt *route, authorized bool) {
	switch r.URL.Path {
	case "/version":
		if !allowGet(w, r) {
			return
		}
		writeJSON(w, http.StatusOK, p.Version())
	case "/metrics":
		p.serveMetrics(w, r)
	case "/ready":
		if !allowGet(w, r) {
			return
		}
		st := p.Ready(r.Context())
		if p.draining() {
			st = ReadyStatus{Model: st.Model, Check: "draining", Reason: "draining before shutdown", CheckedAt: time.Now().UTC()}
		}
		code := http.StatusOK
		if !st.Ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, st)
	default:
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			mw := measure.NewWriter(w)
			p.own.Begin()
			defer func() {
				s := mw.Sample(r, "")
				p.samples.Add(s)
				p.own.Done(s)
			}()
			w = mw
			if authorized {
				// Mirrored as it is answered here, the API key with it.
				if c := rt.startMirror(r); c != nil {
					mw.OnWrite = c.Response
					defer c.Finish(r, mw)
				}
			}
		}
		if !authorized {
			w.Header().Set("WWW-Authenticate", "Bearer")
			writeJSON(w, http.StatusUnauthorized, apiError("missing or wrong API key: send \"Authorization: Bearer KEY\"", "invalid_request_error", http.StatusUnauthorized))
			return
		}
		r.Header.Del(serving.HeaderAPIKey) // the engine needs no key on loopback
		if r.URL.Path == "/health" && p.API.Health != "/health" {
			// vLLM's health endpoint, which probes (Kubernetes' startup
			// probe) ask, answered from the engine's own.
			code, err := p.EngineHealth(r.Context())
			if err != nil {
				p.proxyError(w, r, err)
				return
			}
			if code != http.StatusOK {
				code = http.StatusServiceUnavailable
			}
			w.WriteHeader(code)
			return
		}
		if p.API.ModelIDSuffix != "" && r.URL.Path == "/v1/models" && r.Method == http.MethodGet {
			p.serveModels(w, r)
			return
		}
		if m := p.metrics; m != nil && measured(r) {
			mw := &meter{ResponseWriter: w, start: time.Now()}
			m.Running.Inc()
			defer func() { m.Running.Dec(); m.done(mw) }()
			w = mw
		}
		// Full duplex: an engine may start answering (a stream's first
		// token) before the transport has sent it all of the request body;
		// otherwise the server discards and closes the unread body when the
		// answer starts, which closes the engine connection mid-stream.
		_ = http.NewResponseController(w).EnableFullDuplex()
		p.rp.ServeHTTP(w, r)
	}
}

// DefaultMaxConnAge is Proxy.MaxConnAge's default: a replica added to a
// Service gets its share of keep-alive clients within about this long.
const DefaultMaxConnAge = 10 * time.Second

type connStartKey struct{}

// ConnContext is the http.Server hook that notes when each connection was
// accepted (for MaxConnAge).
func ConnContext(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, connStartKey{}, time.Now())
}

func (p *Proxy) connTooOld(r *http.Request) bool {
	start, ok := r.Context().Value(connStartKey{}).(time.Time)
	return ok && p.MaxConnAge > 0 && time.Since(start) > p.MaxConnAge
}

// SamplesPath answers GET SamplesPath?since=N with the /v1/ requests this
// replica answered after seq N (measure.Samples, the JSON of the Docker
// gateway's GET /samples; upstream is "", this replica): what a canary on
// Kubernetes is analysed on, read through the API server's pod proxy. It
// holds timings and statuses only, so it asks for no API key.
const SamplesPath = "/-/modelship/samples"

func (p *Proxy) serveSamples(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) {
		return
	}
	since, err := measure.ParseSince(r.URL.Query().Get("since"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError(err.Error(), "invalid_request_error", http.StatusBadRequest))
		return
	}
	writeJSON(w, http.StatusOK, p.samples.Since(since, measure.MaxSamplesPerAnswer))
}

// authorized reports whether r may pass: any path outside /v1/, or the
// API key when one is set (compared in constant time).
func (p *Proxy) authorized(r *http.Request) bool {
	if p.APIKey == "" || !strings.HasPrefix(r.URL.Path, "/v1/") {
		return true
	}
	got := r.Header.Get(serving.HeaderAPIKey)
	if got == "" {
		got, _ = serving.BearerToken(r.Header.Get("Authorization"))
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(p.APIKey)) == 1
}

func allowGet(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	writeJSON(w, http.StatusMethodNotAllowed, apiError("method "+r.Method+" not allowed; use GET", "invalid_request_error", http.StatusMethodNotAllowed))
	return false
}

// proxyError answers when the engine could not be reached: 503 while it is
// not listening (starting or gone), 502 for other failures. A request the
// client abandoned gets no answer.
func (p *Proxy) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		p.logger().Debug("client went away", "path", r.URL.Path, "err", err)
		return
	}
	code, msg := proxyhttp.Public("engine", err) // the error's text names internal addresses: log only
	p.logger().Warn("proxy error", "method", r.Method, "path", r.URL.Path, "status", code, "err", err)
	writeJSON(w, code, apiError(msg, "engine_unavailable", code))
}

func (p *Proxy) logger() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.Default()
}

// apiError is an OpenAI-style error body.
func apiError(msg, typ string, code int) map[string]any {
	return map[string]any{"error": map[string]any{"message": msg, "type": typ, "code": code}}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// MeasureCompletions makes the proxy export vLLM's metrics at GET /metrics
// from its own measurements of the completions that pass through, labelled
// model_name: for an engine that exports none.
func (p *Proxy) MeasureCompletions(model string) { p.metrics = newProxyMetrics(model) }

// serveModels answers GET /v1/models with the engine's list, its ids
// without the engine's suffix (Ollama's ":latest"): clients see exactly
// the served names.
func (p *Proxy) serveModels(w http.ResponseWriter, r *http.Request) {
	code, body, err := p.call(r.Context(), http.MethodGet, "/v1/models", nil)
	if err != nil {
		p.proxyError(w, r, err)
		return
	}
	if code == http.StatusOK {
		if b, err := rewriteModelIDs(body, p.API.ModelIDSuffix); err == nil {
			body = b
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(body)
}

// snippet formats the start of a response body for an error message.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return ""
	}
	return ": " + clip.Bytes(s, 200)
}
