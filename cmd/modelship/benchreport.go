package main

import (
	"context"
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

// finish prints the report, writes the report files, sets the Actions
// outputs and decides the stage. A run whose report could not be written
// fails, whatever its gate said (the event: the stage ended before a
// verdict).
func (r *benchRun) finish(rep *report.Report, s stdio) int {
	r.figures(rep.Main())
	r.sr.res.Endpoint = redactURL(r.target.Endpoint)
	failed := func(err error) int {
		why := err.Error()
		if v := rep.Verdict; v != nil {
			why = strings.TrimPrefix(benchMessage(v, rep.Main()), string(v.Status)+": ") + "; " + why
		}
		r.sr.record(stage.Failed, why)
		return exitFailed
	}
	if err := report.Text(s.out, rep); err != nil {
		fmt.Fprintf(s.err, "modelship bench: writing the report: %v\n", err)
		return failed(fmt.Errorf("writing the report: %w", err))
	}
	if r.reportDir != "" {
		written, err := r.writeReports(rep)
		r.sr.report(written...)
		if err != nil {
			fmt.Fprintf(s.err, "modelship bench: %v\n", err)
			return failed(err)
		}
		fmt.Fprintf(s.err, "reports written to %s (bench.json, bench.md, bench.html, results.jsonl)\n", r.reportDir)
	}
	r.sr.ga.Bench(rep, r.reportDir)
	r.finishEvents(rep)
	return r.sr.res.ExitCode
}

// judge evaluates one run with the gate and the baseline run at its load.
func (r *benchRun) judge(s *metrics.Summary) gate.Verdict {
	g := r.gate
	if r.baseline != nil {
		if r.sweep {
			// Each load is compared with the same load of the baseline
			// only: other loads are not comparable.
			g.Baseline = r.baseline.RunAt(s.Conditions.LoadMode, s.Conditions.Load)
		} else {
			g.Baseline = r.baseline.BaselineFor(s.Conditions.Load)
		}
	}
	v := g.Evaluate(s)
	if r.baseline != nil && g.Baseline == nil {
		v.Warnings = append(v.Warnings, fmt.Sprintf("the baseline has no run at %s; this load was not compared with it", loadLabel(bench.Mode(s.Conditions.LoadMode), s.Conditions.Load)))
	}
	if r.stoppedEarly != "" {
		v.Status = gate.Inconclusive
		v.Reasons = append([]string{"stopped early: " + r.stoppedEarly}, v.Reasons...)
	}
	return v
}

// addNotes marks an interrupted run inconclusive.
func (r *benchRun) addNotes(ctx context.Context, v *gate.Verdict) {
	if ctx.Err() != nil {
		v.Status = gate.Inconclusive
		v.Reasons = append(v.Reasons, "interrupted before the end of the run")
	}
}

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

// finishEvents decides the stage: the event with the figures (the main
// run's: the highest load meeting the limits in a sweep) and the result.
func (r *benchRun) finishEvents(rep *report.Report) {
	v := rep.Verdict
	if v == nil {
		r.sr.decide(stage.Failed, "no verdict")
		return
	}
	sum := rep.Main()
	if sum != nil {
		r.sr.ev.Event.Figures = &notify.Figures{Bench: notify.BenchFromSummary(*sum, v.Status == gate.Passed)}
	}
	r.sr.decide(v.Status, benchMessage(v, sum))
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
	return strings.TrimSuffix(string(v.Status)+": "+strings.Join(why, "; "), ": ")
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
