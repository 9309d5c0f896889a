package serve

import (
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/modelship/modelship/serving"
)

// proxyMetrics are vLLM's metrics (serving.Metric*) measured by the proxy
// itself, for an engine that exports none (Ollama): every completion that
// passes through is timed from the request to its first and last byte,
// and its tokens counted from the usage the engine reports (else from the
// streamed chunks).
type proxyMetrics struct {
	reg                  *prometheus.Registry
	ttft, tpot, itl, e2e prometheus.Observer
	running              prometheus.Gauge
	success              *prometheus.CounterVec
	prompt, generation   prometheus.Counter
}

func newProxyMetrics(model string) *proxyMetrics {
	reg := prometheus.NewRegistry()
	label := prometheus.Labels{"model_name": model}
	hist := func(name, help string, b []float64) prometheus.Observer {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: b, ConstLabels: label})
		reg.MustRegister(h)
		return h
	}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: label})
		reg.MustRegister(c)
		return c
	}
	m := &proxyMetrics{reg: reg}
	m.ttft = hist(serving.MetricTTFT, "Histogram of time to first token in seconds (measured by modelship serve).", serving.TTFTBuckets)
	m.itl = hist(serving.MetricITL, "Histogram of inter-token latency in seconds (measured by modelship serve: the mean per request).", serving.ITLBuckets)
	m.tpot = hist(serving.MetricTPOT, "Histogram of time per output token in seconds (measured by modelship serve).", serving.ITLBuckets)
	m.e2e = hist(serving.MetricE2E, "Histogram of e2e request latency in seconds (measured by modelship serve).", serving.E2EBuckets)
	m.running = prometheus.NewGauge(prometheus.GaugeOpts{Name: serving.MetricRunning, Help: "Number of requests in flight through modelship serve.", ConstLabels: label})
	reg.MustRegister(m.running)
	m.success = prometheus.NewCounterVec(prometheus.CounterOpts{Name: serving.MetricSuccess, Help: "Count of successfully processed requests.", ConstLabels: label}, []string{"finished_reason"})
	reg.MustRegister(m.success)
	for _, r := range []string{"stop", "length", "abort"} {
		m.success.WithLabelValues(r)
	}
	m.prompt = counter(serving.MetricPromptTokens, "Number of prefill tokens processed (as the engine reported them).")
	m.generation = counter(serving.MetricGenerationTokens, "Number of generation tokens processed.")
	return m
}

func (m *proxyMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
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
		m.prompt.Add(float64(n))
	}
	reason := "stop"
	if all := finishReason.FindAllSubmatch(w.tail, -1); len(all) > 0 {
		reason = string(all[len(all)-1][1])
	}
	m.success.WithLabelValues(reason).Inc()
	m.generation.Add(float64(tokens))
	m.ttft.Observe(w.first.Sub(w.start).Seconds())
	m.e2e.Observe(end.Sub(w.start).Seconds())
	if tokens > 1 {
		per := end.Sub(w.first).Seconds() / float64(tokens-1)
		m.tpot.Observe(per)
		m.itl.Observe(per)
	}
}
