package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/modelship/modelship/bench/gate"
	"github.com/modelship/modelship/bench/metrics"
)

// Markdown writes the report for a CI step summary ($GITHUB_STEP_SUMMARY):
// the verdict, the conditions, the latency table and each gate with ✅ or ❌.
// User-supplied text (endpoint, model, prompt file) is escaped.
func Markdown(w io.Writer, r *Report) error {
	ew := &errWriter{w: w}
	s := r.Main()
	if s == nil {
		return fmt.Errorf("report has no runs")
	}
	title := "modelship bench"
	if r.Verdict != nil {
		title += ": " + statusEmoji(r.Verdict.Status) + " " + strings.ToUpper(string(r.Verdict.Status))
	}
	fmt.Fprintf(ew, "## %s\n\n", title)

	fmt.Fprintf(ew, "| Condition | Value |\n|---|---|\n")
	fmt.Fprintf(ew, "| Endpoint | %s |\n", mdCode(s.Conditions.Endpoint))
	fmt.Fprintf(ew, "| Model | %s |\n", mdCode(s.Conditions.Model))
	for _, kv := range conditionRows(r, s) {
		v := mdEscape(kv[1])
		if kv[0] == "Prompts" || kv[0] == "Baseline" {
			v = mdCode(kv[1])
		}
		fmt.Fprintf(ew, "| %s | %s |\n", kv[0], v)
	}
	fmt.Fprintln(ew)

	if r.Sweep != nil {
		mdSweep(ew, r)
		fmt.Fprintf(ew, "### Details at %s\n\n", loadName(s.Conditions))
	}
	mdSummary(ew, s)

	if v := r.Verdict; v != nil {
		fmt.Fprintf(ew, "### Verdict: %s %s\n\n", statusEmoji(v.Status), strings.ToUpper(string(v.Status)))
		for _, reason := range v.Reasons {
			fmt.Fprintf(ew, "- ⚠️ %s\n", mdEscape(reason))
		}
		if len(v.Reasons) > 0 {
			fmt.Fprintln(ew)
		}
		if len(v.Checks) > 0 {
			fmt.Fprintf(ew, "| | Gate | Measured | Limit | |\n|---|---|--:|--:|---|\n")
			for _, c := range v.Checks {
				mark := "✅"
				if !c.Pass {
					mark = "❌"
				}
				fmt.Fprintf(ew, "| %s | %s | %s | %s | %s |\n", mark, mdEscape(c.Name), mdEscape(c.FigureText()), mdEscape(c.LimitText()), mdEscape(c.Message))
			}
			fmt.Fprintln(ew)
		} else if len(v.Reasons) == 0 {
			fmt.Fprintf(ew, "No limits were set.\n\n")
		}
		for _, warn := range v.Warnings {
			fmt.Fprintf(ew, "> ⚠️ %s\n\n", mdEscape(warn))
		}
	}
	return ew.err
}

func mdSummary(w io.Writer, s *metrics.Summary) {
	fmt.Fprintf(w, "**Requests:** %d measured, %d succeeded, %d failed (%s error rate) in %s",
		s.Requests, s.Succeeded, s.Failed, gate.Percent(round4(s.ErrorRate)), elapsed(s.Elapsed))
	if len(s.Failures) > 0 {
		fmt.Fprintf(w, "; failures: %s", mdEscape(failures(s.Failures)))
	}
	fmt.Fprintf(w, "\n\n")
	for _, k := range sortedKinds(s.ErrorExamples) {
		fmt.Fprintf(w, "- %s, e.g.: %s\n", k, mdCode(s.ErrorExamples[k]))
	}
	if len(s.ErrorExamples) > 0 {
		fmt.Fprintln(w)
	}
	if s.Succeeded == 0 {
		fmt.Fprintf(w, "No successful requests: no latencies or throughput to show.\n\n")
		return
	}
	fmt.Fprintf(w, "| Latency (ms) | mean | median | p90 | p99 | min | max | std | count |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, d := range distributions(s) {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %d |\n", d.name, ms(d.d.Mean), ms(d.d.Median), ms(d.d.P90), ms(d.d.P99), ms(d.d.Min), ms(d.d.Max), ms(d.d.Std), d.d.Count)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "**Throughput:** %s output, %s total, %.2f requests/s (%d input, %d output tokens)\n\n",
		gate.Rate(s.OutputTokensPerSec), gate.Rate(s.TotalTokensPerSec), s.RequestsPerSec, s.InputTokens, s.OutputTokens)
	if g := goodputLine(s); g != "" {
		fmt.Fprintf(w, "**Goodput:** %s\n\n", mdEscape(g))
	}
}

func mdSweep(w io.Writer, r *Report) {
	sw := r.Sweep
	fmt.Fprintf(w, "### Sweep\n\n| Load | Requests | Errors | Output tok/s | Req/s | TTFT p50 | TTFT p99 | TPOT p99 | E2EL p99 | Goodput | Verdict |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
	for i := range sw.Runs {
		s := &sw.Runs[i]
		verdict := "-"
		if i < len(r.SweepVerdicts) {
			verdict = statusEmoji(r.SweepVerdicts[i].Status) + " " + string(r.SweepVerdicts[i].Status)
		}
		fmt.Fprintf(w, "| %s | %d | %s | %.1f | %.2f | %s | %s | %s | %s | %s | %s |\n", loadName(s.Conditions), s.Requests, mdEscape(gate.Percent(round4(s.ErrorRate))),
			s.OutputTokensPerSec, s.RequestsPerSec, gate.Seconds(s.TTFT.Median), gate.Seconds(s.TTFT.P99), gate.Seconds(s.TPOT.P99), gate.Seconds(s.E2EL.P99), goodputCell(s), verdict)
	}
	fmt.Fprintln(w)
	if sw.MaxLoad > 0 {
		fmt.Fprintf(w, "**Highest load meeting the SLOs:** %s\n\n", loadName(metrics.Conditions{LoadMode: sweepMode(sw), Load: sw.MaxLoad}))
	} else {
		fmt.Fprintf(w, "**No load met the SLOs.**\n\n")
	}
}

func statusEmoji(s gate.Status) string {
	switch s {
	case gate.Passed:
		return "✅"
	case gate.Failed:
		return "❌"
	}
	return "⚠️"
}

// mdEscape makes text safe in a Markdown table cell: one line, every
// Markdown punctuation character backslash-escaped, so user input can
// neither break the table nor inject links or HTML.
func mdEscape(s string) string {
	var b strings.Builder
	for _, r := range oneLine(s) {
		if strings.ContainsRune("\\`*_[]<>|~&", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// mdCode renders user text as inline code, safe in a table cell.
func mdCode(s string) string {
	if s == "" {
		return "-"
	}
	s = oneLine(s)
	if strings.ContainsAny(s, "`|") {
		return mdEscape(s)
	}
	return "`" + s + "`"
}
