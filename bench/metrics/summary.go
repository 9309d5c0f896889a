// Package metrics aggregates bench.Results into a Summary: distributions of
// TTFT, ITL, TPOT and end-to-end latency, throughput, failures by kind, and
// goodput against SLOs. Add each result, then Close once.
package metrics

import "time"

// Distribution summarises one latency in seconds. Percentiles interpolate
// linearly between closest ranks (numpy.percentile's default, as vLLM's
// benchmark_serving reports; see Percentile), exact up to ExactSamples
// values and within HistogramRelError beyond; Std is the population
// standard deviation (numpy.std's default).
type Distribution struct {
	Count  int     `json:"count"`
	Mean   float64 `json:"mean"`
	Median float64 `json:"median"`
	P90    float64 `json:"p90"`
	P99    float64 `json:"p99"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	Std    float64 `json:"std"`
}

// SLO is the per-request limits used for goodput; zero means not set.
type SLO struct {
	TTFT time.Duration `json:"ttft_ns,omitempty"`
	TPOT time.Duration `json:"tpot_ns,omitempty"`
	E2EL time.Duration `json:"e2el_ns,omitempty"`
}

// Conditions record what was measured, so results can be compared.
type Conditions struct {
	Endpoint      string    `json:"endpoint"`
	Model         string    `json:"model"`
	Prompts       string    `json:"prompts"`    // file, or a synthetic description
	LoadMode      string    `json:"load_mode"`  // "concurrency", "rate", "poisson", "sweep"
	Load          float64   `json:"load"`       // concurrency or requests/s
	Requests      int       `json:"requests"`   // asked for (0 when by duration)
	Duration      float64   `json:"duration_s"` // asked for, seconds (0 when by count)
	Warmup        int       `json:"warmup"`     // requests excluded
	Seed          int64     `json:"seed"`
	MaxTokens     int       `json:"max_tokens"`
	ClientVersion string    `json:"client_version"` // modelship version
	Start         time.Time `json:"start"`
}

// Point is one second of a run, for throughput-over-time charts: the
// requests that ended in that second, counted from the first measured
// request's start.
type Point struct {
	Second       int     `json:"t"`
	Requests     int     `json:"requests"` // succeeded, ended in this second
	Failed       int     `json:"failed,omitempty"`
	OutputTokens int     `json:"output_tokens"`
	MeanTTFT     float64 `json:"mean_ttft"`
}

// Summary is the aggregate of one run at one load.
type Summary struct {
	Conditions Conditions `json:"conditions"`

	Requests  int            `json:"requests"` // measured (warm-up excluded)
	Succeeded int            `json:"succeeded"`
	Failed    int            `json:"failed"`
	Failures  map[string]int `json:"failures_by_kind,omitempty"`
	// ErrorExamples holds one error message per failure kind (the first
	// seen), so a report can say why requests failed. Filled by the caller
	// (modelship bench), not by the Aggregator.
	ErrorExamples map[string]string `json:"error_examples,omitempty"`
	ErrorRate     float64           `json:"error_rate"`
	// Elapsed is from the first measured request's start to the last end, seconds.
	Elapsed float64 `json:"elapsed_s"`

	TTFT Distribution `json:"ttft"`
	ITL  Distribution `json:"itl"`
	TPOT Distribution `json:"tpot"`
	E2EL Distribution `json:"e2el"`

	InputTokens        int64   `json:"input_tokens"`
	OutputTokens       int64   `json:"output_tokens"`
	OutputTokensPerSec float64 `json:"output_tokens_per_s"`
	TotalTokensPerSec  float64 `json:"total_tokens_per_s"`
	RequestsPerSec     float64 `json:"requests_per_s"`

	// NotStreamed counts successful requests the server answered with one
	// JSON body instead of a stream (their TTFT is their E2EL).
	NotStreamed int `json:"not_streamed,omitempty"`

	SLO SLO `json:"slo"`
	// Goodput is successful requests per second that met every SLO set.
	Goodput float64 `json:"goodput_req_per_s"`
	// Attainment is the fraction of successful requests meeting each SLO
	// ("ttft", "tpot", "e2el", "all").
	Attainment map[string]float64 `json:"slo_attainment,omitempty"`

	// Timeline has one point per second, for charts.
	Timeline []Point `json:"timeline,omitempty"`
	// E2ELSamples and TTFTSamples are the sorted latencies in seconds, kept
	// (down-sampled to at most a few thousand) for distribution charts.
	E2ELSamples []float64 `json:"e2el_samples,omitempty"`
	TTFTSamples []float64 `json:"ttft_samples,omitempty"`
}

// Sweep is a series of runs at rising load, and the highest load that met
// the SLOs (0 when none did).
type Sweep struct {
	Runs    []Summary `json:"runs"`
	MaxLoad float64   `json:"max_load_meeting_slo"`
}
