package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/modelship/modelship/bench/gate"
	"github.com/modelship/modelship/bench/metrics"
)

//go:embed report.html.tmpl
var htmlSource string

var htmlTemplate = template.Must(template.New("report").Parse(htmlSource))

const (
	colP50   = "#2a9d8f"
	colP90   = "#e09f3e"
	colP99   = "#d1495b"
	colLimit = "#333333"
	colLine  = "#3d6fb6"
	colLine2 = "#d1495b"
)

type htmlView struct {
	Title      string
	Status     string
	Endpoint   string
	Model      string
	Conditions [][2]string
	Cards      []card
	Summary    summaryView
	Detail     string // "Details at concurrency 8" for a sweep
	Sweep      []sweepRow
	MaxLoad    string
	SweepNote  string
	Charts     []chartView
	SweepChart []chartView
	Verdict    *gate.Verdict
}

type card struct{ Label, Value, Sub string }

type summaryView struct {
	Requests string
	Failures string
	Examples [][2]string
	Latency  [][]string
	Through  string
	Goodput  string
}

type sweepRow struct {
	Cells   []string
	Status  string
	IsMax   bool
	Verdict string
}

type chartView struct {
	SVG     template.HTML
	Caption string
	Empty   string
}

// HTML writes one self-contained page (inline CSS and SVG, no scripts, no
// network) with the summary, the verdict and charts: TTFT and end-to-end
// latency distributions with p50/p90/p99 markers, output tokens/s over time,
// and for a sweep TTFT and throughput against load. All user input is
// escaped by html/template.
func HTML(w io.Writer, r *Report) error {
	s := r.Main()
	if s == nil {
		return fmt.Errorf("report has no runs")
	}
	v := htmlView{
		Title:    "modelship bench",
		Endpoint: oneLine(s.Conditions.Endpoint),
		Model:    oneLine(orDash(s.Conditions.Model)),
		Verdict:  r.Verdict,
	}
	if r.Verdict != nil {
		v.Status = string(r.Verdict.Status)
	}
	v.Conditions = conditionRows(r, s)
	v.Cards = cards(s)
	v.Summary = summaryFor(s)
	limits := limitsOf(r.Verdict)
	v.Charts = []chartView{
		latencyChart("Time to first token (TTFT)", s.TTFTSamples, s.TTFT, limits["p99 TTFT"]),
		latencyChart("End-to-end latency (E2EL)", s.E2ELSamples, s.E2EL, limits["p99 end-to-end latency"]),
		timelineChart(s, limits["output tokens/s"]),
	}
	if r.Sweep != nil {
		v.Detail = "Details at " + loadName(s.Conditions)
		sw := r.Sweep
		for i := range sw.Runs {
			run := &sw.Runs[i]
			row := sweepRow{Cells: []string{loadName(run.Conditions), strconv.Itoa(run.Requests), gate.Percent(round4(run.ErrorRate)),
				fmt.Sprintf("%.1f", run.OutputTokensPerSec), fmt.Sprintf("%.2f", run.RequestsPerSec), gate.Seconds(run.TTFT.Median),
				gate.Seconds(run.TTFT.P99), gate.Seconds(run.TPOT.P99), gate.Seconds(run.E2EL.P99), goodputCell(run)},
				IsMax: sw.MaxLoad > 0 && run.Conditions.Load == sw.MaxLoad}
			if i < len(r.SweepVerdicts) {
				row.Status = string(r.SweepVerdicts[i].Status)
				row.Verdict = verdictLine(&r.SweepVerdicts[i])
			}
			v.Sweep = append(v.Sweep, row)
		}
		if sw.MaxLoad > 0 {
			v.MaxLoad = loadName(metrics.Conditions{LoadMode: sweepMode(sw), Load: sw.MaxLoad})
		}
		v.SweepChart = sweepCharts(sw, limits)
	}
	return htmlTemplate.Execute(w, v)
}

func cards(s *metrics.Summary) []card {
	return []card{
		{"Output tokens/s", fmt.Sprintf("%.1f", s.OutputTokensPerSec), fmt.Sprintf("%.1f total tokens/s", s.TotalTokensPerSec)},
		{"Requests/s", fmt.Sprintf("%.2f", s.RequestsPerSec), fmt.Sprintf("%d requests in %s", s.Requests, elapsed(s.Elapsed))},
		{"p99 TTFT", gate.Seconds(s.TTFT.P99), "median " + gate.Seconds(s.TTFT.Median)},
		{"p99 TPOT", gate.Seconds(s.TPOT.P99), "median " + gate.Seconds(s.TPOT.Median)},
		{"p99 end-to-end", gate.Seconds(s.E2EL.P99), "median " + gate.Seconds(s.E2EL.Median)},
		{"Error rate", gate.Percent(round4(s.ErrorRate)), fmt.Sprintf("%d of %d failed", s.Failed, s.Requests)},
	}
}

func summaryFor(s *metrics.Summary) summaryView {
	sv := summaryView{
		Requests: fmt.Sprintf("%d measured, %d succeeded, %d failed in %s", s.Requests, s.Succeeded, s.Failed, elapsed(s.Elapsed)),
		Through: fmt.Sprintf("%s output, %s total, %.2f requests/s (%d input, %d output tokens)",
			gate.Rate(s.OutputTokensPerSec), gate.Rate(s.TotalTokensPerSec), s.RequestsPerSec, s.InputTokens, s.OutputTokens),
		Goodput: goodputLine(s),
	}
	if len(s.Failures) > 0 {
		sv.Failures = failures(s.Failures)
	}
	for _, k := range sortedKinds(s.ErrorExamples) {
		sv.Examples = append(sv.Examples, [2]string{k, oneLine(s.ErrorExamples[k])})
	}
	if s.Succeeded == 0 {
		return sv
	}
	for _, d := range distributions(s) {
		sv.Latency = append(sv.Latency, []string{d.name, ms(d.d.Mean), ms(d.d.Median), ms(d.d.P90), ms(d.d.P99), ms(d.d.Min), ms(d.d.Max), ms(d.d.Std), strconv.Itoa(d.d.Count)})
	}
	return sv
}

func verdictLine(v *gate.Verdict) string {
	var parts []string
	parts = append(parts, v.Reasons...)
	for _, c := range v.Failed() {
		parts = append(parts, c.Message)
	}
	return strings.Join(parts, "; ")
}

// limitsOf maps check names to their limits, for reference lines.
func limitsOf(v *gate.Verdict) map[string]float64 {
	m := map[string]float64{}
	if v == nil {
		return m
	}
	for _, c := range v.Checks {
		m[c.Name] = c.Limit
	}
	return m
}

func msFmt(v float64) string { return trimFloat(v) + " ms" }

func trimFloat(v float64) string {
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// latencyChart is a histogram of samples (seconds) in milliseconds with
// percentile markers and the gate's limit.
func latencyChart(title string, samples []float64, d metrics.Distribution, limit float64) chartView {
	if len(samples) == 0 {
		return chartView{Caption: title, Empty: "No successful requests: nothing to chart."}
	}
	msamples := make([]float64, len(samples))
	for i, x := range samples {
		msamples[i] = x * 1e3
	}
	bars, lo, hi := histogram(msamples, 40)
	if limit > 0 && limit*1e3 > hi && limit*1e3 < hi*3 {
		hi = niceMax(limit * 1e3 * 1.02)
		bars, lo, hi = rebin(msamples, lo, hi, 40)
	}
	ymax := 0.0
	for _, b := range bars {
		ymax = math.Max(ymax, b.y)
	}
	c := &chart{
		title: title + " distribution", xLabel: "milliseconds", yLabel: "% of requests",
		xFmt: func(v float64) string { return trimFloat(v) }, yFmt: func(v float64) string { return trimFloat(v) + "%" },
		xMin: lo, xMax: hi, yMin: 0, yMax: niceMax(ymax * 1.25),
		bars: bars,
		vlines: []refLine{
			{d.Median * 1e3, "p50 " + gate.Seconds(d.Median), colP50},
			{d.P90 * 1e3, "p90 " + gate.Seconds(d.P90), colP90},
			{d.P99 * 1e3, "p99 " + gate.Seconds(d.P99), colP99},
		},
	}
	if limit > 0 && limit*1e3 <= hi {
		c.vlines = append(c.vlines, refLine{limit * 1e3, "limit " + gate.Seconds(limit), colLimit})
	}
	return chartView{SVG: c.svg(), Caption: fmt.Sprintf("%s of %d successful requests: p50 %s, p90 %s, p99 %s, max %s.",
		title, d.Count, gate.Seconds(d.Median), gate.Seconds(d.P90), gate.Seconds(d.P99), gate.Seconds(d.Max))}
}

// rebin bins samples over a given range.
func rebin(samples []float64, lo, hi float64, n int) ([]bar, float64, float64) {
	width := (hi - lo) / float64(n)
	counts := make([]int, n)
	for _, v := range samples {
		i := min(max(int((v-lo)/width), 0), n-1)
		counts[i]++
	}
	var bars []bar
	for i, c := range counts {
		if c > 0 {
			bars = append(bars, bar{lo + float64(i)*width, lo + float64(i+1)*width, 100 * float64(c) / float64(len(samples))})
		}
	}
	return bars, lo, hi
}

// timelineChart plots output tokens per second of the run, second by second.
func timelineChart(s *metrics.Summary, minRate float64) chartView {
	const title = "Output tokens/s over time"
	if len(s.Timeline) == 0 {
		return chartView{Caption: title, Empty: "No timeline recorded."}
	}
	var pts [][2]float64
	ymax := math.Max(s.OutputTokensPerSec, minRate)
	note := ""
	for i, p := range s.Timeline {
		y := float64(p.OutputTokens)
		if i == len(s.Timeline)-1 && i > 0 {
			// The last second is cut short by the end of the run: scale
			// it to a full second, or leave out a sliver.
			frac := s.Elapsed - float64(p.Second)
			if frac < 0.25 || frac > 1 {
				note = " The last, partial second is left out."
				break
			}
			if frac < 1 {
				y /= frac
				note = fmt.Sprintf(" The last second, %.0f%% of a second long, is scaled to a full one.", frac*100)
			}
		}
		pts = append(pts, [2]float64{float64(p.Second), y})
		ymax = math.Max(ymax, y)
	}
	xmax := pts[len(pts)-1][0]
	if xmax < 1 {
		xmax = 1
	}
	c := &chart{
		title: title, xLabel: "seconds since the first measured request", yLabel: "output tokens/s",
		xFmt: trimFloat, yFmt: func(v float64) string { return trimFloat(v) },
		xMin: 0, xMax: xmax, yMin: 0, yMax: niceMax(ymax * 1.15),
		xTicks: wholeTicks(0, xmax),
		lines:  []series{{name: "", color: colLine, pts: pts}},
		hlines: []refLine{{s.OutputTokensPerSec, "mean " + gate.Rate(s.OutputTokensPerSec), colP50}},
	}
	if minRate > 0 {
		c.hlines = append(c.hlines, refLine{minRate, "minimum " + gate.Rate(minRate), colLimit})
	}
	return chartView{SVG: c.svg(), Caption: fmt.Sprintf("Output tokens of the requests that ended in each second of the run; the mean over the run is %s.%s", gate.Rate(s.OutputTokensPerSec), note)}
}

// sweepCharts plot TTFT p50/p99 and output tokens/s against load.
func sweepCharts(sw *metrics.Sweep, limits map[string]float64) []chartView {
	if len(sw.Runs) == 0 {
		return nil
	}
	var p50, p99, tput, good [][2]float64
	var loads []float64
	ymaxT, ymaxR := 0.0, 0.0
	hasGoodput := false
	for _, r := range sw.Runs {
		l := r.Conditions.Load
		loads = append(loads, l)
		p50 = append(p50, [2]float64{l, r.TTFT.Median * 1e3})
		p99 = append(p99, [2]float64{l, r.TTFT.P99 * 1e3})
		tput = append(tput, [2]float64{l, r.OutputTokensPerSec})
		ymaxT = math.Max(ymaxT, r.TTFT.P99*1e3)
		ymaxR = math.Max(ymaxR, r.OutputTokensPerSec)
		if sloText(r.SLO) != "" {
			hasGoodput = true
		}
		good = append(good, [2]float64{l, r.Goodput})
	}
	lo, hi := loads[0], loads[len(loads)-1]
	for _, l := range loads {
		lo, hi = math.Min(lo, l), math.Max(hi, l)
	}
	useLog := lo > 0 && hi/lo >= 4
	xticks := loads
	if !useLog {
		xticks = nil
		lo = 0
	}
	mode := modeName(sweepMode(sw))
	ttft := &chart{
		title: "TTFT vs load", xLabel: mode, yLabel: "TTFT (ms)", xFmt: trimFloat, yFmt: trimFloat,
		xMin: lo, xMax: hi, xLog: useLog, xTicks: xticks, yMin: 0,
		lines: []series{{name: "p50", color: colLine, pts: p50}, {name: "p99", color: colLine2, pts: p99}},
	}
	if l := limits["p99 TTFT"]; l > 0 {
		ymaxT = math.Max(ymaxT, l*1e3)
		ttft.hlines = append(ttft.hlines, refLine{l * 1e3, "p99 limit " + gate.Seconds(l), colLimit})
	}
	ttft.yMax = niceMax(ymaxT * 1.15)
	tp := &chart{
		title: "Throughput vs load", xLabel: mode, yLabel: "output tokens/s", xFmt: trimFloat, yFmt: trimFloat,
		xMin: lo, xMax: hi, xLog: useLog, xTicks: xticks, yMin: 0, yMax: niceMax(ymaxR * 1.15),
		lines: []series{{name: "output tokens/s", color: colLine, pts: tput}},
	}
	if sw.MaxLoad > 0 {
		ref := refLine{sw.MaxLoad, "max load meeting SLOs: " + trimFloat(sw.MaxLoad), colP50}
		ttft.vlines = append(ttft.vlines, ref)
		tp.vlines = append(tp.vlines, ref)
	}
	out := []chartView{
		{SVG: ttft.svg(), Caption: "Median and p99 time to first token at each load."},
		{SVG: tp.svg(), Caption: "Output tokens per second at each load."},
	}
	if hasGoodput {
		ymax := 0.0
		for _, p := range good {
			ymax = math.Max(ymax, p[1])
		}
		g := &chart{
			title: "Goodput vs load", xLabel: mode, yLabel: "requests/s meeting every SLO", xFmt: trimFloat, yFmt: trimFloat,
			xMin: lo, xMax: hi, xLog: useLog, xTicks: xticks, yMin: 0, yMax: niceMax(ymax * 1.15),
			lines: []series{{name: "goodput", color: colP50, pts: good}},
		}
		out = append(out, chartView{SVG: g.svg(), Caption: "Requests per second that met every SLO at each load."})
	}
	return out
}

// wholeTicks are round ticks over [lo, hi] that are whole numbers (seconds).
func wholeTicks(lo, hi float64) []float64 {
	var out []float64
	for _, t := range niceTicks(lo, hi, 6) {
		if t == math.Trunc(t) {
			out = append(out, t)
		}
	}
	return out
}
