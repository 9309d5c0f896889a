package report

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/modelship/modelship/bench/gate"
	"github.com/modelship/modelship/bench/metrics"
)

// Text writes the report as aligned tables for a terminal.
func Text(w io.Writer, r *Report) error {
	ew := &errWriter{w: w}
	s := r.Main()
	if s == nil {
		return fmt.Errorf("report has no runs")
	}
	c := s.Conditions
	fmt.Fprintf(ew, "modelship bench: %s, model %s\n", oneLine(c.Endpoint), oneLine(orDash(c.Model)))
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	for _, kv := range conditionRows(r, s) {
		fmt.Fprintf(tw, "  %s:\t%s\n", kv[0], oneLine(kv[1]))
	}
	tw.Flush()

	if r.Sweep != nil {
		fmt.Fprintln(ew)
		textSweep(ew, r)
		fmt.Fprintf(ew, "\nDetails at %s:\n", loadName(s.Conditions))
	}
	fmt.Fprintln(ew)
	textSummary(ew, s)

	if r.Verdict != nil {
		fmt.Fprintln(ew)
		textVerdict(ew, r.Verdict)
	}
	return ew.err
}

func textSummary(w io.Writer, s *metrics.Summary) {
	fmt.Fprintf(w, "Requests: %d measured, %d succeeded, %d failed (%s error rate) in %s\n",
		s.Requests, s.Succeeded, s.Failed, gate.Percent(round4(s.ErrorRate)), elapsed(s.Elapsed))
	if len(s.Failures) > 0 {
		fmt.Fprintf(w, "Failures: %s\n", failures(s.Failures))
		for _, k := range sortedKinds(s.ErrorExamples) {
			fmt.Fprintf(w, "  e.g. %s: %s\n", k, oneLine(s.ErrorExamples[k]))
		}
	}
	fmt.Fprintln(w)
	if s.Succeeded == 0 {
		fmt.Fprintln(w, "No successful requests: no latencies or throughput to show.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-12s\tmean\tmedian\tp90\tp99\tmin\tmax\tstd\tcount\t\n", "Latency (ms)")
	for _, d := range distributions(s) {
		fmt.Fprintf(tw, "%-12s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", d.name, ms(d.d.Mean), ms(d.d.Median), ms(d.d.P90), ms(d.d.P99), ms(d.d.Min), ms(d.d.Max), ms(d.d.Std), d.d.Count)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Throughput: %s output, %s total, %.2f requests/s\n", gate.Rate(s.OutputTokensPerSec), gate.Rate(s.TotalTokensPerSec), s.RequestsPerSec)
	fmt.Fprintf(w, "Tokens:     %d input, %d output\n", s.InputTokens, s.OutputTokens)
	if g := goodputLine(s); g != "" {
		fmt.Fprintf(w, "Goodput:    %s\n", g)
	}
}

func textSweep(w io.Writer, r *Report) {
	sw := r.Sweep
	width := len("Sweep")
	for i := range sw.Runs {
		width = max(width, len(loadName(sw.Runs[i].Conditions)))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\trequests\terrors\toutput tok/s\treq/s\tTTFT p50\tTTFT p99\tTPOT p99\tE2EL p99\tgoodput\tverdict\t\n", width, "Sweep")
	for i := range sw.Runs {
		s := &sw.Runs[i]
		verdict := "-"
		if i < len(r.SweepVerdicts) {
			verdict = string(r.SweepVerdicts[i].Status)
		}
		fmt.Fprintf(tw, "%-*s\t%d\t%s\t%.1f\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\t\n", width, loadName(s.Conditions), s.Requests, gate.Percent(round4(s.ErrorRate)),
			s.OutputTokensPerSec, s.RequestsPerSec, gate.Seconds(s.TTFT.Median), gate.Seconds(s.TTFT.P99), gate.Seconds(s.TPOT.P99), gate.Seconds(s.E2EL.P99), goodputCell(s), verdict)
	}
	tw.Flush()
	if sw.MaxLoad > 0 {
		fmt.Fprintf(w, "Highest load meeting the SLOs: %s\n", loadName(metrics.Conditions{LoadMode: sweepMode(sw), Load: sw.MaxLoad}))
	} else {
		fmt.Fprintf(w, "No load met the SLOs.\n")
	}
}

func textVerdict(w io.Writer, v *gate.Verdict) {
	fmt.Fprintf(w, "Verdict: %s\n", strings.ToUpper(string(v.Status)))
	for _, reason := range v.Reasons {
		fmt.Fprintf(w, "  ? %s\n", oneLine(reason))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range v.Checks {
		mark := "ok"
		if !c.Pass {
			mark = "FAIL"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", mark, c.Name, c.FigureText(), c.LimitText(), c.Message)
	}
	tw.Flush()
	if len(v.Checks) == 0 && len(v.Reasons) == 0 {
		fmt.Fprintln(w, "  (no limits set)")
	}
	for _, warn := range v.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", oneLine(warn))
	}
}

// conditionRows are the recorded conditions, as label/value pairs.
func conditionRows(r *Report, s *metrics.Summary) [][2]string {
	c := s.Conditions
	load := loadName(c)
	if r.Sweep != nil {
		var loads []string
		for _, run := range r.Sweep.Runs {
			loads = append(loads, fmt.Sprint(run.Conditions.Load))
		}
		load = "sweep of " + modeName(sweepMode(r.Sweep)) + " " + strings.Join(loads, ", ")
	}
	var amount string
	switch {
	case c.Requests > 0:
		amount = fmt.Sprintf("%d requests", c.Requests)
	case c.Duration > 0:
		amount = fmt.Sprintf("%s", time.Duration(c.Duration*float64(time.Second)).Round(time.Millisecond))
	default:
		amount = "-"
	}
	if r.Sweep != nil {
		amount += " per load"
	}
	if c.Warmup > 0 {
		amount += fmt.Sprintf(" (+%d warm-up, excluded)", c.Warmup)
	}
	maxTok := "-"
	if c.MaxTokens > 0 {
		maxTok = fmt.Sprint(c.MaxTokens)
	}
	rows := [][2]string{
		{"Prompts", orDash(c.Prompts)},
		{"Load", load},
		{"Amount", amount},
		{"Max tokens", maxTok},
		{"Seed", fmt.Sprint(c.Seed)},
		{"Started", startTime(c.Start)},
		{"Client", "modelship " + orDash(c.ClientVersion)},
	}
	if r.Baseline != "" {
		rows = append(rows, [2]string{"Baseline", r.Baseline})
	}
	return rows
}

type namedDist struct {
	name string
	d    metrics.Distribution
}

func distributions(s *metrics.Summary) []namedDist {
	return []namedDist{{"TTFT", s.TTFT}, {"ITL", s.ITL}, {"TPOT", s.TPOT}, {"E2EL", s.E2EL}}
}

func goodputLine(s *metrics.Summary) string {
	slo := sloText(s.SLO)
	if slo == "" {
		return ""
	}
	line := fmt.Sprintf("%.2f requests/s met every SLO (%s)", s.Goodput, slo)
	if len(s.Attainment) > 0 {
		var parts []string
		for _, k := range []string{"ttft", "tpot", "e2el", "all"} {
			if v, ok := s.Attainment[k]; ok {
				parts = append(parts, fmt.Sprintf("%s %s", k, gate.Percent(round4(v))))
			}
		}
		line += "; attainment " + strings.Join(parts, ", ")
	}
	return line
}

func goodputCell(s *metrics.Summary) string {
	if sloText(s.SLO) == "" {
		return "-"
	}
	return fmt.Sprintf("%.2f", s.Goodput)
}

func sloText(slo metrics.SLO) string {
	var parts []string
	if slo.TTFT > 0 {
		parts = append(parts, "TTFT ≤ "+gate.Seconds(slo.TTFT.Seconds()))
	}
	if slo.TPOT > 0 {
		parts = append(parts, "TPOT ≤ "+gate.Seconds(slo.TPOT.Seconds()))
	}
	if slo.E2EL > 0 {
		parts = append(parts, "E2EL ≤ "+gate.Seconds(slo.E2EL.Seconds()))
	}
	return strings.Join(parts, ", ")
}

func sortedKinds(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func failures(f map[string]int) string {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return f[keys[i]] > f[keys[j]] || f[keys[i]] == f[keys[j]] && keys[i] < keys[j] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, f[k])
	}
	return strings.Join(parts, ", ")
}

// loadName is "concurrency 8", "rate 20 req/s" or "Poisson rate 20 req/s".
func loadName(c metrics.Conditions) string {
	switch c.LoadMode {
	case "rate":
		return fmt.Sprintf("rate %g req/s", c.Load)
	case "poisson":
		return fmt.Sprintf("Poisson rate %g req/s", c.Load)
	case "", "concurrency", "sweep":
		return fmt.Sprintf("concurrency %g", c.Load)
	}
	return fmt.Sprintf("%s %g", c.LoadMode, c.Load)
}

func modeName(mode string) string {
	switch mode {
	case "rate":
		return "rate (req/s)"
	case "poisson":
		return "Poisson rate (req/s)"
	}
	return "concurrency"
}

// sweepMode is the load mode of a sweep's runs.
func sweepMode(sw *metrics.Sweep) string {
	if len(sw.Runs) == 0 {
		return "concurrency"
	}
	return sw.Runs[0].Conditions.LoadMode
}

// ms formats seconds as milliseconds for the latency table.
func ms(sec float64) string {
	v := sec * 1e3
	switch {
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 1000:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

func elapsed(sec float64) string {
	return time.Duration(sec * float64(time.Second)).Round(time.Millisecond).String()
}

func startTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func round4(f float64) float64 { return float64(int64(f*1e4+0.5)) / 1e4 }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps user input on one line so it cannot forge report lines.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// errWriter keeps the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return len(p), nil
	}
	if _, err := e.w.Write(p); err != nil {
		e.err = err
	}
	return len(p), nil
}
