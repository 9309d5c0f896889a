package serve

import (
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/modelship/modelship/internal/vllmmetrics"
)

// proxyMetrics are vLLM's metrics (vllmmetrics) measured by the proxy
// itself, for an engine that exports none (Ollama): every completion that
// passes through is timed from the request to its first and last byte,
// and its tokens counted from the usage the engine reports (else from the
// streamed chunks).
type proxyMetrics struct{ *vllmmetrics.Set }

func newProxyMetrics(model string) *proxyMetrics {
	return &proxyMetrics{vllmmetrics.New(model, " Measured by modelship serve.")}
}

func (m *proxyMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.Reg, promhttp.HandlerOpts{})
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
