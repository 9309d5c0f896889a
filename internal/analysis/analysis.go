// Package analysis judges a canary against the stable release from
// measurements taken where the traffic splits (every request's status,
// time to first token, inter-token latency and total time) and from each
// release's engine metrics (vLLM's requests waiting and KV-cache usage):
// absolute limits (SLOs), canary-versus-stable ratios over the same window,
// and a rank test (Mann-Whitney U, as Kayenta does). Too few requests is
// inconclusive, never failed — except on errors: a canary whose errors
// already exceed the limit however the missing requests end fails at once.
package analysis

import (
	"time"

	"github.com/modelship/modelship/serving/stage"
)

// Sample is one request, measured at the switch point.
type Sample struct {
	At time.Time
	// Status is the HTTP status the client got; 0 when it got none (the
	// connection failed).
	Status int
	// Err: the request failed (no answer, or a status of 500 or more).
	Err bool
	// TTFT is the time to the first response byte (the first token of a
	// streamed generation).
	TTFT time.Duration
	// ITL is the mean gap between streamed chunks; 0 for an answer that
	// was not streamed.
	ITL   time.Duration
	Total time.Duration
	// Probe: not a generation (GET /version, /v1/models, a health check).
	// It counts for the error rate, never in the latency figures: a few
	// millisecond answers mixed into the generations would move a
	// version's median and percentiles with the traffic mix, not with
	// the model.
	Probe bool
}

// Engine is one release's engine metrics at the end of a window (vLLM's
// /metrics); nil where they could not be read.
type Engine struct {
	RequestsWaiting float64 // vllm:num_requests_waiting
	KVCacheUsage    float64 // vllm:gpu_cache_usage_perc (or kv_cache_usage_perc), 0..1
}

// Thresholds are the limits a canary is held to. A zero limit is off,
// except where WithDefaults gives one.
type Thresholds struct {
	// MinSamples is the fewest requests per version a window needs before
	// it can pass or fail on latency (default 20).
	MinSamples int
	// MaxErrorRate is the canary's highest error ratio (default 0.01).
	MaxErrorRate float64
	// MaxErrorRateDelta is how far the canary's error ratio may exceed
	// the stable one's (default 0.01).
	MaxErrorRateDelta float64
	// MaxTTFTP95 and MaxITLP95 are absolute SLOs on the canary's 95th
	// percentiles (0: none).
	MaxTTFTP95 time.Duration
	MaxITLP95  time.Duration
	// MaxTTFTRatio and MaxITLRatio bound canary p95 / stable p95 (TTFT
	// default 1.5; ITL 0: off). MaxTTFTRatio also bounds the medians in
	// the rank test.
	MaxTTFTRatio float64
	MaxITLRatio  float64
	// MaxKVCacheUsage (0..1) and MaxRequestsWaiting bound the canary's
	// engine metrics (0: off).
	MaxKVCacheUsage    float64
	MaxRequestsWaiting float64
	// Alpha is the significance of the rank test that the canary is
	// slower (default 0.05). The test fails only where the canary's
	// median TTFT is also above MaxTTFTRatio times the stable one's.
	Alpha float64
}

// Window is what one analysis looks at: both versions over the same time.
type Window struct {
	Stable, Canary             []Sample
	StableEngine, CanaryEngine *Engine
}

// Check is one comparison of a window.
type Check struct {
	Name string `json:"name"` // "error-rate", "ttft-p95", "ttft-ratio", "ttft-rank", ...
	// Stable and Canary are the figure for each version (milliseconds for
	// latencies, a ratio 0..1 for rates); Limit is the threshold, in the
	// same unit (for a ratio or rank check, the allowed ratio times
	// stable's figure).
	Stable  float64       `json:"stable"`
	Canary  float64       `json:"canary"`
	Limit   float64       `json:"limit"`
	Unit    string        `json:"unit"` // "ms", "ratio", "requests"
	Verdict stage.Verdict `json:"verdict"`
	Why     string        `json:"why"` // one sentence, in numbers
	// P is the rank test's one-sided p-value (a rank check's, and a ratio
	// check's whose p95 was over its limit; omitted where no test ran, or
	// the value underflowed to 0).
	P float64 `json:"p,omitempty"`
	// MaxRatio is the canary/stable ratio a ratio or rank check allows
	// (Limit is it times stable's figure); 0 for the other checks.
	MaxRatio float64 `json:"max_ratio,omitempty"`
}

// Decision is the outcome of one analysis.
type Decision struct {
	Verdict stage.Verdict `json:"verdict"` // passed, failed or inconclusive
	Checks  []Check       `json:"checks"`
	// Decider names the check that failed the window or left it
	// inconclusive ("" when it passed).
	Decider string `json:"decider,omitempty"`
	Why     string `json:"why"` // one sentence, in numbers
	StableN int    `json:"stable_n"`
	CanaryN int    `json:"canary_n"`
}

// Step is one canary step as the report shows it.
type Step struct {
	Name     string    `json:"name"` // "5%", "shadow", ...
	Percent  float64   `json:"percent"`
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended"`
	Decision Decision  `json:"decision"`
}
