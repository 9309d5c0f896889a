// Package bench drives load at an OpenAI-compatible endpoint and measures
// each streamed request: time to first token, inter-token latencies, end-to-end
// latency and token counts. Attacking (this package), aggregating
// (bench/metrics) and reporting (bench/report) are separate, as in vegeta:
// results stream as JSON lines so commands compose.
package bench

import "time"

// Result is one request's measurement. Durations are nanoseconds in JSON.
type Result struct {
	// Seq is the request's number in issue order, from 0.
	Seq int `json:"seq"`
	// Start is when the request was sent.
	Start time.Time `json:"start"`
	// Warmup marks requests excluded from the figures.
	Warmup bool `json:"warmup,omitempty"`
	// Load is the load level (concurrency or rate) the request ran under;
	// a sweep has several.
	Load float64 `json:"load,omitempty"`

	// TTFT is the time from sending to the first content token.
	TTFT time.Duration `json:"ttft_ns"`
	// ITL holds the gaps between successive content chunks.
	ITL []time.Duration `json:"itl_ns,omitempty"`
	// E2EL is the time from sending to the end of the response.
	E2EL time.Duration `json:"e2el_ns"`

	InputTokens  int `json:"input_tokens"`
	OutputTokens int `json:"output_tokens"`
	// UsageReported is true when the counts came from the server's usage
	// object rather than counted by the client.
	UsageReported bool `json:"usage_reported,omitempty"`
	// NotStreamed is true when the server ignored "stream" and answered with
	// one JSON body: TTFT then equals E2EL and there is no ITL.
	NotStreamed bool `json:"not_streamed,omitempty"`

	// Status is the HTTP status (0 when no response came).
	Status int `json:"status,omitempty"`
	// ErrorKind classifies a failure: one of the ErrorKind constants.
	ErrorKind string `json:"error_kind,omitempty"`
	// Error is the failure in words; empty on success.
	Error string `json:"error,omitempty"`
}

// Failure kinds, for Result.ErrorKind and the failures-by-kind table.
const (
	ErrTransport   = "transport"    // connection refused/reset, DNS
	ErrTimeout     = "timeout"      // per-request timeout
	ErrHTTP4xx     = "http_4xx"     // the server refused the request
	ErrHTTP5xx     = "http_5xx"     // the server failed
	ErrBadResponse = "bad_response" // not JSON/SSE, wrong shape, no choices
	ErrEmpty       = "empty"        // no output tokens
)

// OK reports whether the request succeeded.
func (r *Result) OK() bool { return r.ErrorKind == "" }

// TPOT is the mean time per output token after the first:
// (E2EL - TTFT) / (OutputTokens - 1); zero with fewer than two tokens.
func (r *Result) TPOT() time.Duration {
	if r.OutputTokens < 2 {
		return 0
	}
	return (r.E2EL - r.TTFT) / time.Duration(r.OutputTokens-1)
}
