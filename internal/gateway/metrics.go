package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/modelship/modelship/internal/logging"
	"github.com/modelship/modelship/internal/measure"
	"github.com/modelship/modelship/internal/releasemetrics"
)

// MetricsPath is the gateway's own Prometheus metrics, answered on the
// public listener with no API key (as vLLM's /metrics) and never
// forwarded: modelship's request metrics (serving.MetricRequests,
// MetricRequestTTFT, MetricRequestDuration, MetricInFlight) of the /v1/
// requests it routes, measured where it measures each request for its
// samples, labelled release by the release that answered — the canary's
// share under the canary's id — and MetricReleaseInfo for the active
// release and the canary. GET /metrics, by contrast, is proxied: the
// active release's own (its engine's vllm:* series and its serve's).
//
// The gateway knows a release by its URL; it learns its id, model, model
// digest and image from the release's GET /version when scraped (asked
// again, at most every versionRetry, until the digest is known). A
// release whose id is not known (its /version did not answer, or named
// none) is labelled with its URL, and the info metric's other labels are
// then "". A request answered 503 because no release is active is counted
// with release "".
const MetricsPath = "/-/modelship/metrics"

// versionRetry is how long the gateway waits before asking a release's
// GET /version again when it did not answer, or the digest was still
// being computed.
var versionRetry = 10 * time.Second

// versionTimeout bounds one GET /version made while a scrape waits.
const versionTimeout = 2 * time.Second

// counted reports whether r is one of the requests the metrics count: the
// API's (/v1/), as the serving proxy counts them.
func counted(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/v1/") }

// record adds a measured request to the samples ring and, when the
// metrics count it, to those of the release that answered; begun is the
// one it was counted in flight against (nil: none), which a retry may
// have moved it from.
func (g *Gateway) record(r *http.Request, s measure.Sample, begun, answered *releasemetrics.Recorder) {
	g.ring.Add(s)
	if counted(r) {
		answered.Record(s)
		if begun != nil {
			begun.End() // after Record: out of flight means recorded
		}
	}
}

// about is what the gateway knows of the release behind an upstream.
type about struct {
	mu    sync.Mutex
	info  releasemetrics.Info
	final bool      // nothing more to learn
	next  time.Time // when to ask again, if not final
}

// releaseAttrs are what the gateway has learnt of u's release (learn),
// as the ECS log fields of the lines about a request it answered: the
// release id, model digest, image and its digest; none before the first
// scrape of the gateway's metrics learnt them.
func (u *upstream) releaseAttrs() []any {
	a := &u.about
	a.mu.Lock()
	info := a.info
	a.mu.Unlock()
	var attrs []any
	for _, a := range logging.ReleaseAttrs(info.Release, info.ModelDigest, info.Image, info.ImageDigest) {
		attrs = append(attrs, a)
	}
	return attrs
}

// learn asks u's GET /version when it is due; the lock is held meanwhile,
// so concurrent scrapes ask once.
func (g *Gateway) learn(ctx context.Context, u *upstream) {
	a := &u.about
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.final || time.Now().Before(a.next) {
		return
	}
	info, final, err := g.askVersion(ctx, u.key)
	if err != nil {
		a.next = time.Now().Add(versionRetry)
		g.logger().Debug("release version unknown", "upstream", u.key, "err", err)
		return
	}
	a.info, a.final = info, final
	if !final {
		a.next = time.Now().Add(versionRetry)
	}
}

// askVersion reads modelship serve's GET /version at base. final is false
// while the model digest is being computed. An upstream that answers 404
// is not a modelship serve: final, with nothing known.
func (g *Gateway) askVersion(ctx context.Context, base string) (info releasemetrics.Info, final bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, versionTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/version", nil)
	if err != nil {
		return info, false, err
	}
	resp, err := g.transport.RoundTrip(req)
	if err != nil {
		return info, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return info, true, nil
	}
	if resp.StatusCode != http.StatusOK {
		return info, false, fmt.Errorf("GET /version answered %d", resp.StatusCode)
	}
	var v struct {
		ReleaseID    string `json:"release_id"`
		Model        string `json:"served_model_name"`
		Digest       string `json:"digest"`
		DigestStatus string `json:"digest_status"`
		Image        string `json:"image"`
		ImageDigest  string `json:"image_digest"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&v); err != nil {
		return info, false, fmt.Errorf("GET /version: %v", err)
	}
	info = releasemetrics.Info{Release: v.ReleaseID, Model: v.Model, ModelDigest: v.Digest, Image: v.Image, ImageDigest: v.ImageDigest}
	return info, v.DigestStatus != "computing", nil
}

// collector is the gateway's prometheus.Collector.
type collector struct{ g *Gateway }

func (c collector) Describe(ch chan<- *prometheus.Desc) { releasemetrics.Describe(ch) }

// Collect sends the series of every release the gateway still knows
// (active, previous, canary, or with requests in flight), first learning
// what it can of each in parallel.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	g := c.g
	g.mu.Lock()
	ups := make([]*upstream, 0, len(g.upstreams))
	for _, u := range g.upstreams {
		ups = append(ups, u)
	}
	g.mu.Unlock()
	slices.SortFunc(ups, func(a, b *upstream) int { return strings.Compare(a.key, b.key) })
	var wg sync.WaitGroup
	for _, u := range ups {
		wg.Go(func() { g.learn(context.Background(), u) })
	}
	wg.Wait()
	active, canary := g.active.Load(), g.canary.Load()
	used := map[string]bool{}
	for _, u := range ups {
		u.about.mu.Lock()
		info := u.about.info
		u.about.mu.Unlock()
		if info.Release == "" || used[info.Release] {
			info.Release = u.key // one series per upstream, whatever they say
		}
		used[info.Release] = true
		u.stats.Collect(ch, info.Release)
		if u == active || (canary != nil && canary.up == u) {
			ch <- releasemetrics.InfoMetric(info)
		}
	}
	if g.unrouted.Used() {
		g.unrouted.Collect(ch, "")
	}
}

// newMetricsHandler answers GET MetricsPath from g's collector.
func newMetricsHandler(g *Gateway) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{g})
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{g.logger}})
	mux := http.NewServeMux()
	mux.Handle("GET "+MetricsPath, h) // and HEAD; other methods: 405
	return mux
}

// slogPrinter is promhttp's error log.
type slogPrinter struct{ log func() *slog.Logger }

func (l slogPrinter) Println(v ...any) { l.log().Warn(MetricsPath, "err", fmt.Sprint(v...)) }
