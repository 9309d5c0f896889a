package main

import (
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/modelship/modelship/bench"
	"github.com/modelship/modelship/internal/atomicfile"

	"github.com/modelship/modelship/bench/gate"
	"github.com/modelship/modelship/bench/metrics"
	"github.com/modelship/modelship/bench/report"
	"github.com/modelship/modelship/notify"
	"github.com/modelship/modelship/serving/stage"
)

// writeReports writes the four report files, each atomically, and returns
// the ones written.
func (r *benchRun) writeReports(rep *report.Report) (written []string, err error) {
	if r.results != nil {
		if r.resErr == nil {
			r.resErr = r.resW.Flush()
		}
		if r.resErr != nil {
			return nil, fmt.Errorf("writing results.jsonl: %w", r.resErr)
		}
		if err := r.results.Commit(); err != nil {
			return nil, err
		}
		written = append(written, filepath.Join(r.reportDir, "results.jsonl"))
	}
	for _, f := range []struct {
		name   string
		render func(io.Writer, *report.Report) error
	}{{"bench.json", report.JSON}, {"bench.md", report.Markdown}, {"bench.html", report.HTML}} {
		path := filepath.Join(r.reportDir, f.name)
		if err := atomicfile.Write(path, func(w io.Writer) error { return f.render(w, rep) }); err != nil {
			return written, err
		}
		written = append(written, path)
	}
	return written, nil
}

// finishEvents posts the benchmark's outcome with its figures (the main
// run's: the highest load meeting the limits in a sweep), and decides the
// stage result.
func (r *benchRun) finishEvents(rep *report.Report) {
	v := rep.Verdict
	if v == nil {
		r.ev.Finish(notify.StatusFailed, "no verdict")
		r.sr.decide(stage.Failed, "no verdict")
		return
	}
	passed := v.Status == gate.Pass
	sum := rep.Main()
	if sum != nil {
		r.ev.Event.Figures = &notify.Figures{Bench: notify.BenchFromSummary(*sum, passed)}
	}
	msg := benchMessage(v, sum)
	r.ev.Finish(gateStatus(passed), msg)
	r.figures(sum)
	r.sr.res.Endpoint = redactURL(r.target.Endpoint)
	r.sr.decide(benchVerdict(v.Status), msg)
}

// benchMessage says the verdict and why: the reasons of an inconclusive
// run, the checks that failed, or the main figures of a pass.
func benchMessage(v *gate.Verdict, sum *metrics.Summary) string {
	why := slices.Clone(v.Reasons)
	for _, c := range v.Failed() {
		why = append(why, c.Message)
	}
	if len(why) == 0 && sum != nil {
		why = append(why, fmt.Sprintf("%d of %d requests succeeded, %.1f output tokens/s, p99 TTFT %s, p99 E2EL %s", sum.Succeeded, sum.Requests,
			sum.OutputTokensPerSec, gate.Seconds(sum.TTFT.P99), gate.Seconds(sum.E2EL.P99)))
	}
	return strings.TrimSuffix(string(benchVerdict(v.Status))+": "+strings.Join(why, "; "), ": ")
}

// benchVerdict is the stage verdict of the gate's status.
func benchVerdict(s gate.Status) stage.Verdict {
	switch s {
	case gate.Pass:
		return stage.Passed
	case gate.Fail:
		return stage.Failed
	}
	return stage.Inconclusive
}

// figures puts the main run's figures and the gate's limits on the stage
// result (a limit not checked is left out).
func (r *benchRun) figures(sum *metrics.Summary) {
	if sum != nil {
		for name, v := range map[string]float64{"requests": float64(sum.Requests), "succeeded": float64(sum.Succeeded),
			"output_tokens_per_s": sum.OutputTokensPerSec, "e2el_p99_s": sum.E2EL.P99, "ttft_p50_s": sum.TTFT.Median,
			"ttft_p99_s": sum.TTFT.P99, "error_rate": sum.ErrorRate} {
			r.sr.figure(name, v)
		}
	}
	l := r.gate.Limits
	for name, v := range map[string]float64{"min_tokens_per_s": l.MinTokensPerSec, "max_e2el_p99_s": l.MaxLatencyP99.Seconds(),
		"max_ttft_p99_s": l.MaxTTFTP99.Seconds(), "max_tpot_p99_s": l.MaxTPOTP99.Seconds()} {
		if v > 0 {
			r.sr.figure(name, v)
		}
	}
	if l.MaxErrorRate >= 0 {
		r.sr.figure("max_error_rate", l.MaxErrorRate)
	}
	r.sr.figure("min_samples", float64(l.MinSamples))
	if r.baseline != nil {
		r.sr.figure("max_regression", r.gate.Tolerances.E2ELP99)
	}
}

// truncate shortens s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func loadLabel(m bench.Mode, level float64) string {
	switch m {
	case bench.Rate:
		return fmt.Sprintf("rate %g/s", level)
	case bench.Poisson:
		return fmt.Sprintf("poisson %g/s", level)
	}
	return fmt.Sprintf("concurrency %g", level)
}

// redactURL drops a password and the query (which may hold a key) from a
// URL recorded in reports.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	u.RawQuery = ""
	u.Fragment = ""
	return u.Redacted()
}
