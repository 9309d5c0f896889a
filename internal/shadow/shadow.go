// Package shadow mirrors a sample of live requests to a candidate release
// and compares its answers with the ones the clients got from the stable
// release: errors, latency, and the answers themselves (at temperature 0
// the agreement rate). Clients only ever see stable's answers; mirroring
// runs after the client's answer, from a bounded queue that drops rather
// than waits.
package shadow

import (
	"log/slog"
	"net/http"
	"time"
)

// Exchange is one request a client sent and the answer it got from the
// stable release, as the gateway saw them.
type Exchange struct {
	Method string
	Path   string // with the query
	Header http.Header
	Body   []byte // the request body
	// Status and Response are stable's answer (Response is at most
	// MaxCapture; Truncated when it was longer).
	Status    int
	Response  []byte
	Truncated bool
	// TTFB and Total are stable's times, from the client's side of the
	// gateway.
	TTFB, Total time.Duration
}

// Options configure New.
type Options struct {
	// Upstream is the candidate's base URL (http://NAME:8000).
	Upstream string
	// Percent (0..100] of requests are mirrored.
	Percent float64
	// Queue bounds the exchanges waiting to be mirrored (default 64);
	// Workers send them (default 2).
	Queue, Workers int
	// Transport sends the mirrored requests; Timeout bounds each (default 60s).
	Transport http.RoundTripper
	Timeout   time.Duration
	// Logger receives what the mirror saw (never a header's value); nil
	// means slog.Default().
	Logger *slog.Logger
	// Check, when set, is given each answer the mirror could read whole,
	// the candidate's and stable's to the same request (the request's last
	// user message or prompt, and the answer's text): checked is false when
	// it has nothing to say of that prompt (the validation suite has no
	// case with it); an error is a failed assertion (Report.Assertions).
	// The workers call it at once: it must be safe for concurrent use.
	Check func(prompt, answer string) (checked bool, err error)
}

// Report is what the mirror saw so far.
type Report struct {
	Upstream string  `json:"upstream"`
	Percent  float64 `json:"percent"`
	Offered  uint64  `json:"offered"`  // exchanges handed to the mirror
	Dropped  uint64  `json:"dropped"`  // queue full: not mirrored
	Skipped  uint64  `json:"skipped"`  // too large to mirror, or not a generation
	Compared uint64  `json:"compared"` // sent to the candidate and answered
	// Cancelled were queued or in flight when the mirror closed.
	Cancelled uint64 `json:"cancelled"`
	// CandidateErrors: the candidate failed (no answer or 5xx) where
	// stable answered.
	CandidateErrors uint64 `json:"candidate_errors"`
	// Comparable are the exchanges both answered with 200 and a text
	// (stable's read whole), and those the two answered with different
	// statuses (a disagreement); Agreed those whose texts are the same
	// once white space is trimmed at either end.
	Comparable    uint64  `json:"comparable"`
	Agreed        uint64  `json:"agreed"`
	AgreementRate float64 `json:"agreement_rate"` // Agreed / Comparable; 0 when none
	// Assertions are what Options.Check said of both releases' answers.
	Assertions Assertions     `json:"assertions"`
	Stable     Latency        `json:"stable"`
	Candidate  Latency        `json:"candidate"`
	Worst      []Disagreement `json:"worst"` // least similar first, at most 5
}

// Assertions count the exchanges whose prompt the validation suite has a
// case for (Checked), and the answers of each release that failed its
// assertions. A failure the candidate alone has is a regression; one both
// have is the suite's (or the model's) old problem.
type Assertions struct {
	Checked         uint64 `json:"checked"`
	StableFailed    uint64 `json:"stable_failed"`
	CandidateFailed uint64 `json:"candidate_failed"`
	// Examples are the first failures of the candidate's (case, assertion
	// and why), at most MaxWorst.
	Examples []string `json:"examples"`
}

// Latency summarises one version's times over the compared exchanges.
type Latency struct {
	N          int     `json:"n"`
	TTFBP50Ms  float64 `json:"ttfb_p50_ms"`
	TTFBP99Ms  float64 `json:"ttfb_p99_ms"`
	TotalP50Ms float64 `json:"total_p50_ms"`
	TotalP99Ms float64 `json:"total_p99_ms"`
}

// Disagreement is one exchange whose answers differ.
type Disagreement struct {
	Path       string  `json:"path"`
	Prompt     string  `json:"prompt"` // shortened
	Stable     string  `json:"stable"`
	Candidate  string  `json:"candidate"`
	Similarity float64 `json:"similarity"` // 0..1
	// Count is how many exchanges disagreed exactly so (same path,
	// prompt and both answers): a repeated prompt is listed once.
	Count int `json:"count"`
}
