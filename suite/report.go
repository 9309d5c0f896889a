package suite

import (
	"fmt"
	"math"
	"time"

	"github.com/modelship/modelship/serving/stage"
)

// Verdict is the gate's decision, in the vocabulary every stage shares
// (serving/stage): Passed, Failed or Inconclusive. Verdict.ExitCode maps
// it to the process exit status: 0 passed, 1 failed, 3 inconclusive.
type Verdict = stage.Verdict

const (
	Passed       = stage.Passed       // enough cases passed
	Failed       = stage.Failed       // too many cases failed, whatever the ones that could not run would have done
	Inconclusive = stage.Inconclusive // too few cases ran to decide (endpoint unreachable, 5xx after retries)
)

// Status is how one case (or one run of it) ended.
type Status string

const (
	StatusPassed Status = "passed"
	StatusFailed Status = "failed" // an answer failed an assertion, or the server answered wrongly
	StatusError  Status = "error"  // no answer to judge: unreachable or 5xx after retries
)

// Report is the outcome of running a suite against an endpoint. Reporters
// (package suite/report) print it; they never run anything.
type Report struct {
	Suite         string    `json:"suite"` // file
	Name          string    `json:"name"`
	Format        Format    `json:"format"`
	Endpoint      string    `json:"endpoint"`
	Model         string    `json:"model"`
	Client        string    `json:"client"`
	Started       time.Time `json:"started"`
	Duration      Seconds   `json:"duration_s"`
	PassThreshold float64   `json:"pass_threshold"`

	Verdict Verdict `json:"verdict"`
	Reason  string  `json:"reason"`
	Total   int     `json:"total"`
	Passed  int     `json:"passed"`
	Failed  int     `json:"failed"`
	Errored int     `json:"errored"`
	// Needed is how many cases must pass for the suite to pass.
	Needed int `json:"needed"`

	Cases []CaseResult `json:"cases"`
}

// Seconds is a duration written in JSON as seconds.
type Seconds float64

// Dur converts to a time.Duration.
func (s Seconds) Dur() time.Duration { return time.Duration(float64(s) * float64(time.Second)) }

// CaseResult is one case's outcome.
type CaseResult struct {
	Name   string `json:"name"`
	File   string `json:"file"`
	Line   int    `json:"line"`
	Kind   string `json:"kind"` // chat or completion
	Status Status `json:"status"`
	// Reason is one line saying why the case failed or errored, e.g.
	// "missing 'Paris'"; empty when it passed.
	Reason   string      `json:"reason,omitempty"`
	Repeat   int         `json:"repeat"`
	PassRate float64     `json:"pass_rate"`
	Passes   int         `json:"passes"`
	Runs     []RunResult `json:"runs"`
}

// FirstProblem is the first run that did not pass, or nil.
func (c *CaseResult) FirstProblem() *RunResult {
	for i := range c.Runs {
		if c.Runs[i].Status != StatusPassed {
			return &c.Runs[i]
		}
	}
	return nil
}

// RunResult is one request of a case (a case with repeat: N has N).
type RunResult struct {
	Status           Status    `json:"status"`
	Output           string    `json:"output"`
	FinishReason     string    `json:"finish_reason,omitempty"`
	CompletionTokens int       `json:"completion_tokens"`
	TokensEstimated  bool      `json:"tokens_estimated,omitempty"`
	Latency          Seconds   `json:"latency_s"`
	Attempts         int       `json:"attempts"`        // requests sent, retries included
	Error            string    `json:"error,omitempty"` // a transport, HTTP or response-shape problem
	Body             string    `json:"body,omitempty"`  // preview of a bad response body
	Failures         []Failure `json:"failures,omitempty"`
}

// Failure is one assertion an answer did not satisfy.
type Failure struct {
	Assertion string `json:"assertion"` // as written, e.g. `icontains: "Paris"`
	Line      int    `json:"line"`
	Message   string `json:"message"` // e.g. "missing 'Paris'"
}

// needed is how many of n must pass at rate r.
func needed(n int, r float64) int {
	return int(math.Ceil(float64(n)*r - 1e-9))
}

// decide sets the verdict from the case counts: passed when enough cases
// passed, failed when too many failed even if every case that could not run
// had passed, inconclusive otherwise.
func (r *Report) decide(why string) {
	r.Total = len(r.Cases)
	r.Passed, r.Failed, r.Errored = 0, 0, 0
	for _, c := range r.Cases {
		switch c.Status {
		case StatusPassed:
			r.Passed++
		case StatusFailed:
			r.Failed++
		default:
			r.Errored++
		}
	}
	r.Needed = needed(r.Total, r.PassThreshold)
	pct := fmt.Sprintf("%g%%", math.Round(r.PassThreshold*1000)/10)
	switch {
	case r.Total > 0 && r.Passed >= r.Needed && r.Passed > 0:
		r.Verdict = Passed
		r.Reason = fmt.Sprintf("%d of %d cases passed (threshold %s)", r.Passed, r.Total, pct)
	case r.Passed+r.Errored < r.Needed:
		r.Verdict = Failed
		r.Reason = fmt.Sprintf("%d of %d cases passed, %d needed (threshold %s)", r.Passed, r.Total, r.Needed, pct)
	default:
		r.Verdict = Inconclusive
		r.Reason = fmt.Sprintf("too few cases ran to decide: %d of %d could not run", r.Errored, r.Total)
		if why != "" {
			r.Reason += " (" + why + ")"
		}
		r.Reason += fmt.Sprintf("; %d passed, %d needed", r.Passed, r.Needed)
	}
}
