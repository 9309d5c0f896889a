// Package stage is the contract of a pipeline stage's outcome between the
// modelship binary and whatever runs it (the Dagger module in ci/, a
// workflow, a script): one verdict vocabulary, its exit code, and the
// result every stage prints with --json.
//
// The verdict is decided once, by the stage (a validation suite, a
// benchmark gate, a smoke test, a deploy); the exit code, the notification
// status and the GitHub Actions output are all read from it.
package stage

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Verdict is how a stage, a gate or one of its checks ended.
type Verdict string

const (
	Passed       Verdict = "passed"       // the stage did what it set out to do; the gate is met
	Failed       Verdict = "failed"       // the gate is not met, or the operation failed
	Inconclusive Verdict = "inconclusive" // too little evidence to decide (an endpoint that did not answer, too few requests)
	RolledBack   Verdict = "rolled_back"  // a deploy failed and put the previous release back
	Skipped      Verdict = "skipped"      // a check that did not apply (nothing to compare with); counts as passed
	Invalid      Verdict = "invalid"      // bad flags or input: nothing ran
)

// Exit codes of every modelship command, one per kind of verdict.
const (
	ExitPassed       = 0
	ExitFailed       = 1
	ExitUsage        = 2
	ExitInconclusive = 3
)

// ExitCode is the process exit status for v: 0 passed or skipped, 1 failed
// or rolled back, 2 invalid input, 3 inconclusive (and anything unknown:
// a verdict nobody decided never passes).
func (v Verdict) ExitCode() int {
	switch v {
	case Passed, Skipped:
		return ExitPassed
	case Failed, RolledBack:
		return ExitFailed
	case Invalid:
		return ExitUsage
	}
	return ExitInconclusive
}

// OK reports whether v lets the pipeline go on.
func (v Verdict) OK() bool { return v == Passed || v == Skipped }

// Of is the verdict of a gate that passed or did not.
func Of(passed bool) Verdict {
	if passed {
		return Passed
	}
	return Failed
}

// Schema names the version of Result; a reader refuses any other.
const Schema = "modelship.stage/v1"

// Result is what `modelship STAGE --json` prints on stdout, as the only
// thing there (progress and the human summary go to stderr): for preflight,
// validate, bench, smoke, deploy and rollback. The process exits with
// Verdict.ExitCode(), so a caller may read either.
type Result struct {
	Schema   string  `json:"schema"`    // always Schema
	Stage    string  `json:"stage"`     // preflight, validate, bench, smoke, deploy, rollback
	Verdict  Verdict `json:"verdict"`   // how it ended
	ExitCode int     `json:"exit_code"` // Verdict.ExitCode()
	// Message is one line a person reads: what was decided and why, in
	// numbers ("failed: 3 of 5 cases passed, 5 needed").
	Message string `json:"message"`
	// Reports are the files the stage wrote (paths as the command was
	// given them), also when it failed.
	Reports  []string `json:"reports,omitempty"`
	Endpoint string   `json:"endpoint,omitempty"` // what was tested or deployed to
	Release  *Release `json:"release,omitempty"`  // deploy and rollback
	// Figures are the numbers the verdict was decided on, by name
	// (cases_passed, cases_total, cases_needed, output_tokens_per_s,
	// e2el_p99_s, ttft_p50_s, ttft_p99_s, requests, succeeded, ...).
	Figures  map[string]float64 `json:"figures,omitempty"`
	Started  time.Time          `json:"started"`
	Finished time.Time          `json:"finished"`
}

// Release is the release a deploy or rollback made or put back.
type Release struct {
	ID          string `json:"id"`
	Env         string `json:"env"`
	Image       string `json:"image"`
	ModelDigest string `json:"model_digest,omitempty"`
	Strategy    string `json:"strategy,omitempty"`
	Previous    string `json:"previous,omitempty"` // the release it replaced, or the one that was rolled back
}

// New starts the result of stage.
func New(stage string) *Result {
	return &Result{Schema: Schema, Stage: stage, Started: time.Now().UTC()}
}

// Finish records the verdict and message and the time it was decided.
func (r *Result) Finish(v Verdict, message string) {
	r.Verdict, r.ExitCode, r.Message = v, v.ExitCode(), message
	r.Finished = time.Now().UTC()
}

// Write prints r as one line of JSON.
func (r *Result) Write(w io.Writer) error {
	return json.NewEncoder(w).Encode(r)
}

// Read decodes a Result a stage printed, refusing another schema and a
// result without a verdict.
func Read(rd io.Reader) (*Result, error) {
	var r Result
	if err := json.NewDecoder(rd).Decode(&r); err != nil {
		return nil, fmt.Errorf("stage result: %w", err)
	}
	if r.Schema != Schema {
		return nil, fmt.Errorf("stage result: schema %q, expected %q", r.Schema, Schema)
	}
	if r.Verdict == "" {
		return nil, fmt.Errorf("stage result of %s: no verdict", r.Stage)
	}
	return &r, nil
}
