package gha

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/modelship/modelship/bench/gate"
	benchreport "github.com/modelship/modelship/bench/report"
	"github.com/modelship/modelship/internal/smoke"
	"github.com/modelship/modelship/serving/stage"
	"github.com/modelship/modelship/suite"
	suitereport "github.com/modelship/modelship/suite/report"
)

// Step outputs set by modelship commands. A workflow reads them as
// steps.<id>.outputs.<name>.
const (
	OutValidationVerdict = "validation-verdict" // passed, failed or inconclusive
	OutValidationPassed  = "validation-passed"  // cases passed
	OutValidationTotal   = "validation-total"   // cases run
	OutValidationReport  = "validation-report"  // validation.json (with --report-dir)
	OutValidationJUnit   = "validation-junit"   // junit.xml
	OutValidationSummary = "validation-summary" // summary.md

	OutBenchVerdict        = "bench-verdict" // passed, failed or inconclusive
	OutBenchTokensPerSec   = "bench-output-tokens-per-sec"
	OutBenchTTFTP99        = "bench-ttft-p99-seconds"
	OutBenchE2ELP99        = "bench-e2el-p99-seconds"
	OutBenchErrorRate      = "bench-error-rate" // fraction, 0 to 1
	OutBenchRequests       = "bench-requests"
	OutBenchReport         = "bench-report" // bench.json (with --report-dir): a later --baseline
	OutBenchReportMarkdown = "bench-report-markdown"
	OutBenchReportHTML     = "bench-report-html"

	OutModelDigest    = "model-digest" // sha256:... of the checkpoint
	OutPreflightFit   = "preflight-verdict"
	OutSmokeVerdict   = "smoke-verdict"   // passed, failed or inconclusive
	OutImageRef       = "image-ref"       // registry/name:tag
	OutImageDigest    = "image-digest"    // sha256:... of the pushed manifest
	OutDeployVerdict  = "deploy-verdict"  // passed, failed or rolled_back (deploy and rollback)
	OutDeployEndpoint = "deploy-endpoint" // where the environment serves
	OutReleaseID      = "release-id"      // the release deploy or rollback started
	OutImageID        = "image-id"        // sha256:... content id of the deployed image on the host
)

// Validation reports a validation run: outputs (verdict, counts, report
// paths when reportDir is set), the step summary (suite/report.Markdown:
// the verdict and the table of cases), and one error annotation per case
// that did not pass, on the case's line in the suite file.
func (x *Actions) Validation(r *suite.Report, reportDir string) {
	if !x.Enabled() || r == nil {
		return
	}
	x.SetOutput(OutValidationVerdict, string(r.Verdict))
	x.SetOutput(OutValidationPassed, strconv.Itoa(r.Passed))
	x.SetOutput(OutValidationTotal, strconv.Itoa(r.Total))
	if reportDir != "" {
		x.SetOutput(OutValidationReport, filepath.Join(reportDir, "validation.json"))
		x.SetOutput(OutValidationJUnit, filepath.Join(reportDir, "junit.xml"))
		x.SetOutput(OutValidationSummary, filepath.Join(reportDir, "summary.md"))
	}
	var md strings.Builder
	if err := suitereport.Markdown(&md, r); err == nil {
		x.AddStepSummary(md.String())
	}
	for _, c := range r.Cases {
		if c.Status == suite.StatusPassed {
			continue
		}
		an := Annotation{File: c.File, Line: c.Line, Title: fmt.Sprintf("validation case %q %s", c.Name, c.Status), Message: c.Reason}
		if an.Message == "" {
			an.Message = string(c.Status)
		}
		if c.Status == suite.StatusError {
			x.Warning(an) // could not run: not the model's fault
		} else {
			x.Error(an)
		}
	}
}

// Bench reports a benchmark: outputs (verdict and key figures of the main
// run, report paths when reportDir is set), the step summary
// (bench/report.Markdown), and one error annotation per failed gate check.
func (x *Actions) Bench(rep *benchreport.Report, reportDir string) {
	if !x.Enabled() || rep == nil {
		return
	}
	if rep.Verdict != nil {
		x.SetOutput(OutBenchVerdict, string(rep.Verdict.Status))
	}
	if s := rep.Main(); s != nil {
		x.SetOutput(OutBenchTokensPerSec, figure(s.OutputTokensPerSec))
		x.SetOutput(OutBenchTTFTP99, figure(s.TTFT.P99))
		x.SetOutput(OutBenchE2ELP99, figure(s.E2EL.P99))
		x.SetOutput(OutBenchErrorRate, figure(s.ErrorRate))
		x.SetOutput(OutBenchRequests, strconv.Itoa(s.Requests))
	}
	if reportDir != "" {
		x.SetOutput(OutBenchReport, filepath.Join(reportDir, "bench.json"))
		x.SetOutput(OutBenchReportMarkdown, filepath.Join(reportDir, "bench.md"))
		x.SetOutput(OutBenchReportHTML, filepath.Join(reportDir, "bench.html"))
	}
	var md strings.Builder
	if err := benchreport.Markdown(&md, rep); err == nil {
		x.AddStepSummary(md.String())
	}
	if v := rep.Verdict; v != nil {
		for _, c := range v.Failed() {
			x.Error(Annotation{Title: "bench gate failed: " + c.Name, Message: c.Message})
		}
		if v.Status == gate.Inconclusive {
			x.Warning(Annotation{Title: "bench inconclusive", Message: strings.Join(v.Reasons, "; ")})
		}
	}
}

// ModelDigest sets the model-digest output.
func (x *Actions) ModelDigest(digest string) { x.SetOutput(OutModelDigest, digest) }

// Image sets the image-ref and image-digest outputs (for publish and
// deploy).
func (x *Actions) Image(ref, digest string) {
	x.SetOutput(OutImageRef, ref)
	x.SetOutput(OutImageDigest, digest)
}

// Smoke sets smoke-verdict (passed or failed) and annotates each failed
// check. A nil result (the endpoint did not answer) is inconclusive.
func (x *Actions) Smoke(res *smoke.Result) {
	if !x.Enabled() {
		return
	}
	if res == nil {
		x.SetOutput(OutSmokeVerdict, string(stage.Inconclusive))
		return
	}
	x.SetOutput(OutSmokeVerdict, string(stage.Of(res.Passed)))
	for _, c := range res.Failed() {
		x.Error(Annotation{Title: "smoke check failed: " + c.Name, Message: c.Detail})
	}
}

// figure writes a number for an output: plain decimal, no exponent, no
// trailing zeros.
func figure(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
