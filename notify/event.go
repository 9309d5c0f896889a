package notify

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/modelship/modelship/bench/metrics"
	"github.com/modelship/modelship/suite"
)

// Stage is the pipeline stage an Event is about.
type Stage string

// The stages, in pipeline order.
const (
	StagePreflight Stage = "preflight"
	StageValidate  Stage = "validate"
	StageBenchmark Stage = "benchmark"
	StageBuild     Stage = "build"
	StagePublish   Stage = "publish"
	StageDeploy    Stage = "deploy"
	StageVerify    Stage = "verify"
	StageRollback  Stage = "rollback"
	StageRelease   Stage = "release" // the whole release, from first stage to last
)

// Stages lists every Stage in pipeline order.
var Stages = []Stage{StagePreflight, StageValidate, StageBenchmark, StageBuild, StagePublish, StageDeploy, StageVerify, StageRollback, StageRelease}

// Status is what happened to a stage.
type Status string

// The statuses.
const (
	StatusStarted    Status = "started"
	StatusPassed     Status = "passed"
	StatusFailed     Status = "failed"
	StatusSkipped    Status = "skipped"
	StatusRolledBack Status = "rolled_back"
	// StatusProgress is a step within a stage that has not ended (a canary
	// step's analysis, a shadow step): Event.Message says which step and
	// what it found.
	StatusProgress Status = "progress"
)

// Statuses lists every Status.
var Statuses = []Status{StatusStarted, StatusPassed, StatusFailed, StatusSkipped, StatusRolledBack, StatusProgress}

// ParseStage checks s against Stages.
func ParseStage(s string) (Stage, error) {
	for _, v := range Stages {
		if string(v) == s {
			return v, nil
		}
	}
	return "", fmt.Errorf("unknown stage %q: expected one of %s", s, joinQuoted(Stages))
}

// ParseStatus checks s against Statuses.
func ParseStatus(s string) (Status, error) {
	for _, v := range Statuses {
		if string(v) == s {
			return v, nil
		}
	}
	return "", fmt.Errorf("unknown status %q: expected one of %s", s, joinQuoted(Statuses))
}

func joinQuoted[T ~string](vs []T) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}

// Terminal reports whether the status ends a stage (anything but started
// and progress).
func (s Status) Terminal() bool { return s != StatusStarted && s != StatusProgress && s != "" }

// Outcome is the ECS event.outcome for the status: success, failure or
// unknown (started, progress, skipped).
func (s Status) Outcome() string {
	switch s {
	case StatusPassed:
		return "success"
	case StatusFailed, StatusRolledBack:
		return "failure"
	}
	return "unknown"
}

// Event is one thing that happened to a release. It is what every Sink
// receives and what the generic webhook sends as JSON (see the package doc).
// It never holds a secret: sinks add their credentials themselves.
type Event struct {
	Stage  Stage  `json:"stage"`
	Status Status `json:"status"`
	// Release identifies the release across stages (e.g. "r-20250101-abc1234");
	// Slack uses it to tell the first message of a release from follow-ups.
	Release string `json:"release,omitempty"`
	// Model is the served model name; ModelDigest the checkpoint digest
	// ("sha256:...").
	Model       string `json:"model,omitempty"`
	ModelDigest string `json:"model_digest,omitempty"`
	// Image is the serving image reference; ImageDigest its manifest digest.
	Image       string `json:"image,omitempty"`
	ImageDigest string `json:"image_digest,omitempty"`
	GitSHA      string `json:"git_sha,omitempty"`
	// Environment is the deploy target ("staging", "production"), empty
	// before deploy stages.
	Environment string   `json:"environment,omitempty"`
	Figures     *Figures `json:"figures,omitempty"`
	// RunURL links to the pipeline run (see RunURL).
	RunURL string `json:"run_url,omitempty"`
	// Started is when the stage started, when known; Time when this event
	// happened. Grafana draws a region from Started to Time.
	Started time.Time `json:"started,omitzero"`
	Time    time.Time `json:"time"`
	Message string    `json:"message,omitempty"`
}

// Figures are the numbers the gates decided on.
type Figures struct {
	Validation *ValidationFigures `json:"validation,omitempty"`
	Bench      *BenchFigures      `json:"bench,omitempty"`
}

// ValidationFigures summarise a validation suite run.
type ValidationFigures struct {
	Passed bool `json:"passed"` // the gate's verdict
	// Verdict is the suite's verdict: passed, failed or inconclusive.
	Verdict  string  `json:"verdict,omitempty"`
	Total    int     `json:"total"`
	Ok       int     `json:"ok"`
	Failed   int     `json:"failed"`
	Errored  int     `json:"errored"`
	PassRate float64 `json:"pass_rate"` // Ok / Total, 0..1
}

// BenchFigures summarise a benchmark run. Latencies are in seconds.
type BenchFigures struct {
	Passed             bool      `json:"passed"` // the gate's verdict
	Requests           int       `json:"requests"`
	Errors             int       `json:"errors"`
	ErrorRate          float64   `json:"error_rate"`
	TTFT               Quantiles `json:"ttft_s"`
	E2EL               Quantiles `json:"e2el_s"`
	OutputTokensPerSec float64   `json:"output_tokens_per_s"`
	RequestsPerSec     float64   `json:"requests_per_s"`
}

// Quantiles of a latency in seconds, with the sample count and mean (for
// Prometheus' _count and _sum).
type Quantiles struct {
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Mean  float64 `json:"mean"`
	Count int     `json:"count"`
}

// ValidationFromReport takes the figures of a suite report; passed is the
// gate's verdict.
func ValidationFromReport(r suite.Report, passed bool) *ValidationFigures {
	f := &ValidationFigures{Passed: passed, Verdict: string(r.Verdict), Total: r.Total, Ok: r.Passed, Failed: r.Failed, Errored: r.Errored}
	if r.Total > 0 {
		f.PassRate = float64(r.Passed) / float64(r.Total)
	}
	return f
}

// BenchFromSummary takes the figures of a benchmark summary; passed is the
// gate's verdict.
func BenchFromSummary(s metrics.Summary, passed bool) *BenchFigures {
	q := func(d metrics.Distribution) Quantiles {
		return Quantiles{P50: d.Median, P90: d.P90, P99: d.P99, Mean: d.Mean, Count: d.Count}
	}
	return &BenchFigures{
		Passed: passed, Requests: s.Requests, Errors: s.Failed, ErrorRate: s.ErrorRate,
		TTFT: q(s.TTFT), E2EL: q(s.E2EL),
		OutputTokensPerSec: s.OutputTokensPerSec, RequestsPerSec: s.RequestsPerSec,
	}
}

// RunURL is the link to the GitHub Actions run from GITHUB_SERVER_URL,
// GITHUB_REPOSITORY, GITHUB_RUN_ID (and GITHUB_RUN_ATTEMPT when above 1), or
// "" outside GitHub Actions. getenv is os.Getenv when nil.
func RunURL(getenv func(string) string) string {
	if getenv == nil {
		getenv = os.Getenv
	}
	server, repo, id := getenv("GITHUB_SERVER_URL"), getenv("GITHUB_REPOSITORY"), getenv("GITHUB_RUN_ID")
	if server == "" || repo == "" || id == "" {
		return ""
	}
	u := strings.TrimRight(server, "/") + "/" + repo + "/actions/runs/" + id
	if a := getenv("GITHUB_RUN_ATTEMPT"); a != "" && a != "1" {
		u += "/attempts/" + a
	}
	return u
}

// FillFromEnv sets what the environment knows and the event does not: the
// run link (RunURL), the git SHA (GITHUB_SHA) and the time (now).
func (e *Event) FillFromEnv(getenv func(string) string) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if e.RunURL == "" {
		e.RunURL = RunURL(getenv)
	}
	if e.GitSHA == "" {
		e.GitSHA = getenv("GITHUB_SHA")
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
}

// Check reports an event no sink can send: an unknown stage or status.
func (e Event) Check() error {
	if _, err := ParseStage(string(e.Stage)); err != nil {
		return err
	}
	if _, err := ParseStatus(string(e.Status)); err != nil {
		return err
	}
	return nil
}

// Title is a one-line description: "deploy passed in production".
func (e Event) Title() string {
	s := string(e.Stage) + " " + strings.ReplaceAll(string(e.Status), "_", " ")
	if e.Environment != "" {
		s += " in " + e.Environment
	}
	return s
}

// releaseKey tells releases apart: the release id, else the model digest
// and image digest.
func (e Event) releaseKey() string {
	if e.Release != "" {
		return e.Release
	}
	return e.ModelDigest + "|" + e.ImageDigest + "|" + e.GitSHA
}

// short shortens a digest or SHA for people: "sha256:0123456789ab".
func short(d string) string {
	algo, hex, ok := strings.Cut(d, ":")
	if !ok {
		if len(d) > 12 {
			return d[:12]
		}
		return d
	}
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return algo + ":" + hex
}

// shortSHA is a git SHA's first 7 characters.
func shortSHA(s string) string {
	if len(s) > 7 {
		return s[:7]
	}
	return s
}
