package serve

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/modelship/modelship/internal/releasemetrics"
	"github.com/modelship/modelship/internal/vllmmetrics"
)

// maxEngineMetrics bounds the engine's exposition read at one scrape, as
// the canary analysis bounds what it reads (vLLM's is tens of KiB).
const maxEngineMetrics = 8 << 20

// newOwnMetrics is the registry of the release's own metrics.
func (p *Proxy) newOwnMetrics() *prometheus.Registry {
	p.own = releasemetrics.NewSingle(func() releasemetrics.Info {
		v := p.Version()
		return releasemetrics.Info{Release: v.ReleaseID, Model: v.ServedModelName, ModelDigest: v.Digest, Image: v.Image, ImageDigest: v.ImageDigest}
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.own)
	return reg
}

// serveMetrics answers GET /metrics: the engine's own metrics (vLLM's
// vllm:* series, read from the engine at each scrape, or those the proxy
// measures for an engine without metrics) and modelship's for this
// release (serving.MetricRequests and the others, package releasemetrics:
// every /v1/ request, code the status the client got, 401s included), in
// one exposition in the format the scraper asks for. The release label is
// the deploy's release id (Config.ReleaseID), "" outside a deploy; the
// info metric's model_digest is "" until the digest is known. While the
// engine's metrics cannot be read (it is still starting), the scrape fails
// as the engine's own would: 503 (not listening) or 502. The answer is
// Prometheus text, never OpenMetrics: the engine's series are read as text,
// where a counter's _created is a gauge of its own, which OpenMetrics
// would read as part of the counter.
func (p *Proxy) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) {
		return
	}
	var engine prometheus.Gatherer
	if p.metrics != nil {
		engine = p.metrics.Reg
	} else {
		fams, code, err := p.engineMetrics(r)
		if err != nil {
			if code == 0 {
				p.proxyError(w, r, err)
				return
			}
			p.logger().Warn("engine metrics", "status", code, "err", err)
			writeJSON(w, code, apiError(err.Error(), "engine_unavailable", code))
			return
		}
		engine = prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return fams, nil })
	}
	promhttp.HandlerFor(prometheus.Gatherers{engine, p.ownReg}, promhttp.HandlerOpts{
		ErrorLog: slogPrinter{p.logger()}, ErrorHandling: promhttp.HTTPErrorOnError,
	}).ServeHTTP(w, r)
}

// engineMetrics reads and parses the engine's GET /metrics (as Prometheus
// text: the format every client library writes). A failed request is
// returned with code 0 (proxyError answers it), a bad answer with the 502
// the scrape gets.
func (p *Proxy) engineMetrics(r *http.Request) ([]*dto.MetricFamily, int, error) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, p.engine.JoinPath("/metrics").String(), nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, http.StatusBadGateway, fmt.Errorf("engine GET /metrics answered %d%s", resp.StatusCode, snippet(b))
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	byName, err := parser.TextToMetricFamilies(io.LimitReader(resp.Body, maxEngineMetrics))
	if err != nil {
		return nil, http.StatusBadGateway, fmt.Errorf("engine GET /metrics is not Prometheus text: %v", err)
	}
	fams := make([]*dto.MetricFamily, 0, len(byName))
	for _, f := range byName {
		fams = append(fams, f)
	}
	return fams, 0, nil
}

// slogPrinter is promhttp's error log.
type slogPrinter struct{ log *slog.Logger }

func (l slogPrinter) Println(v ...any) { l.log.Warn("GET /metrics", "err", fmt.Sprint(v...)) }

// proxyMetrics are vLLM's metrics (vllmmetrics) measured by the proxy
// itself, for an engine that exports none (Ollama): every completion that
// passes through is timed from the request to its first and last byte,
// and its tokens counted from the usage the engine reports (else from the
// streamed chunks).
type proxyMetrics struct{ *vllmmetrics.Set }

func newProxyMetrics(model string) *proxyMetrics {
	return &proxyMetrics{vllmmetrics.New(model, " Measured by modelship serve.")}
}

// measured reports whether a request is one the metrics time.
func measured(r *http.Request) bool {
	return r.Method == http.MethodPost && (r.URL.Path == "/v1/chat/completions" || r.URL.Path == "/v1/completions")
}

// meter is the response writer of a measured request.
type meter struct {
	http.ResponseWriter
	start  time.Time
	first  time.Time
	code   int
	chunks int    // streamed chunks that carried text
	tail   []byte // the last bytes written: the usage and finish reason
}

func (w *meter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

var contentChunk = regexp.MustCompile(`"(content|text)":"[^"]`)

func (w *meter) Write(b []byte) (int, error) {
	if w.first.IsZero() {
		w.first = time.Now()
	}
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.chunks += len(contentChunk.FindAllIndex(b, -1))
	w.tail = append(w.tail, b...)
	if len(w.tail) > 4096 {
		w.tail = w.tail[len(w.tail)-4096:]
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flushes, full
// duplex).
func (w *meter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var (
	completionTokens = regexp.MustCompile(`"completion_tokens":\s*(\d+)`)
	promptTokens     = regexp.MustCompile(`"prompt_tokens":\s*(\d+)`)
	finishReason     = regexp.MustCompile(`"finish_reason":\s*"(\w+)"`)
)

func lastInt(re *regexp.Regexp, b []byte) (int, bool) {
	all := re.FindAllSubmatch(b, -1)
	if len(all) == 0 {
		return 0, false
	}
	n, err := strconv.Atoi(string(all[len(all)-1][1]))
	return n, err == nil
}

// done records a finished request.
func (m *proxyMetrics) done(w *meter) {
	end := time.Now()
	if w.code < 200 || w.code > 299 || w.first.IsZero() {
		return
	}
	tokens, ok := lastInt(completionTokens, w.tail)
	if !ok {
		tokens = w.chunks
	}
	if n, ok := lastInt(promptTokens, w.tail); ok {
		m.PromptTokens.Add(float64(n))
	}
	reason := "stop"
	if all := finishReason.FindAllSubmatch(w.tail, -1); len(all) > 0 {
		reason = string(all[len(all)-1][1])
	}
	m.Success.WithLabelValues(reason).Inc()
	m.GenerationTokens.Add(float64(tokens))
	m.TTFT.Observe(w.first.Sub(w.start).Seconds())
	m.E2E.Observe(end.Sub(w.start).Seconds())
	if tokens > 1 {
		per := end.Sub(w.first).Seconds() / float64(tokens-1)
		m.TPOT.Observe(per)
		m.ITL.Observe(per)
	}
}
