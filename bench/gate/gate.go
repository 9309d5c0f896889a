// Package gate judges a benchmark Summary against limits (minimum output
// tokens/s, maximum p99 latencies, maximum error rate) and, optionally,
// against a baseline Summary such as the model now in production. The
// Verdict is passed, failed or inconclusive: too few successful requests
// to judge is inconclusive, never a pass.
package gate

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/modelship/modelship/bench/metrics"
	"github.com/modelship/modelship/serving/stage"
)

// Status is the outcome of a gate, in the vocabulary every stage shares
// (serving/stage): Passed, Failed or Inconclusive.
type Status = stage.Verdict

const (
	Passed       = stage.Passed
	Failed       = stage.Failed
	Inconclusive = stage.Inconclusive
)

// DefaultMinSamples is the fewest successful requests a verdict needs.
const DefaultMinSamples = 10

// Limits are the absolute thresholds; a zero field is not checked, except
// MaxErrorRate, which is not checked when negative (0 means "no failures").
type Limits struct {
	// MinTokensPerSec is the lowest output tokens/s (the article's
	// --min-tokens-per-sec).
	MinTokensPerSec float64
	// MaxLatencyP99 bounds the p99 end-to-end latency (the article's
	// --max-latency-p99).
	MaxLatencyP99 time.Duration
	// MaxTTFTP99 bounds the p99 time to first token.
	MaxTTFTP99 time.Duration
	// MaxTPOTP99 bounds the p99 time per output token.
	MaxTPOTP99 time.Duration
	// MaxErrorRate is the highest fraction of failed requests; negative
	// means not checked.
	MaxErrorRate float64
	// MinSamples is the fewest successful requests needed for a verdict;
	// 0 means DefaultMinSamples.
	MinSamples int
}

// NoErrorRateLimit disables the error-rate check in Limits.MaxErrorRate.
const NoErrorRateLimit = -1.0

// Any reports whether at least one absolute limit is set.
func (l Limits) Any() bool {
	return l.MinTokensPerSec > 0 || l.MaxLatencyP99 > 0 || l.MaxTTFTP99 > 0 || l.MaxTPOTP99 > 0 || l.MaxErrorRate >= 0
}

// Tolerances are how much worse than the baseline a figure may be, as
// fractions (0.1 = 10%).
type Tolerances struct {
	TTFTP99         float64 `json:"ttft_p99"`
	E2ELP99         float64 `json:"e2el_p99"`
	OutputTokensSec float64 `json:"output_tokens_per_s"`
}

// DefaultTolerances: p99 TTFT +10%, p99 end-to-end latency +10%, output
// tokens/s -10%.
var DefaultTolerances = Tolerances{TTFTP99: 0.1, E2ELP99: 0.1, OutputTokensSec: 0.1}

// AllTolerances returns the same tolerance f for every compared figure.
func AllTolerances(f float64) Tolerances {
	return Tolerances{TTFTP99: f, E2ELP99: f, OutputTokensSec: f}
}

// Gate is everything a Summary is judged against.
type Gate struct {
	Limits Limits
	// Baseline, when set, is compared with the Summary within Tolerances.
	Baseline   *metrics.Summary
	Tolerances Tolerances
}

// Check is one judged figure.
type Check struct {
	// Name is short and stable, e.g. "p99 TTFT" or "p99 TTFT vs baseline".
	Name string `json:"name"`
	// Figure is the measured value; Limit the threshold it was held to, in
	// Unit ("s", "tokens/s" or "fraction").
	Figure float64 `json:"figure"`
	Limit  float64 `json:"limit"`
	Unit   string  `json:"unit"`
	// Baseline is the baseline's figure, for comparisons.
	Baseline *float64 `json:"baseline,omitempty"`
	Pass     bool     `json:"pass"`
	// Message says it in a sentence.
	Message string `json:"message"`
}

// Verdict is a gate's outcome with every check.
type Verdict struct {
	Status Status  `json:"status"`
	Checks []Check `json:"checks"`
	// Reasons explain an inconclusive verdict.
	Reasons []string `json:"reasons,omitempty"`
	// Warnings do not change the status, e.g. a baseline measured under
	// different conditions.
	Warnings []string `json:"warnings,omitempty"`
}

// Failed returns the checks that did not pass.
func (v Verdict) Failed() []Check {
	var out []Check
	for _, c := range v.Checks {
		if !c.Pass {
			out = append(out, c)
		}
	}
	return out
}

// Evaluate judges s. It is inconclusive when fewer than MinSamples requests
// succeeded (whatever the checks say: a p99 of a handful of requests proves
// nothing), failed when any check fails, and passed otherwise.
func (g Gate) Evaluate(s *metrics.Summary) Verdict {
	v := Verdict{Status: Passed, Checks: []Check{}}
	l := g.Limits
	min := l.MinSamples
	if min <= 0 {
		min = DefaultMinSamples
	}
	switch {
	case s.Requests == 0:
		v.Reasons = append(v.Reasons, "no requests were measured")
	case s.Succeeded == 0:
		v.Reasons = append(v.Reasons, fmt.Sprintf("all %d requests failed%s%s", s.Requests, failureList(s.Failures), firstExample(s)))
	case s.Succeeded < min:
		v.Reasons = append(v.Reasons, fmt.Sprintf("only %d successful requests, fewer than the %d needed to judge", s.Succeeded, min))
	}

	// With no successful request, latencies and throughput are not
	// measured (zero), so checking them would only mislead.
	measured := s.Succeeded > 0
	if l.MinTokensPerSec > 0 && measured {
		ok := s.OutputTokensPerSec >= l.MinTokensPerSec
		v.add(Check{Name: "output tokens/s", Figure: s.OutputTokensPerSec, Limit: l.MinTokensPerSec, Unit: "tokens/s", Pass: ok,
			Message: fmt.Sprintf("output throughput %s %s the minimum %s", Rate(s.OutputTokensPerSec), pick(ok, "meets", "is below"), Rate(l.MinTokensPerSec))})
	}
	maxCheck := func(name string, d metrics.Distribution, limit time.Duration) {
		if limit <= 0 || !measured {
			return
		}
		lim := limit.Seconds()
		ok := d.P99 <= lim
		v.add(Check{Name: name, Figure: d.P99, Limit: lim, Unit: "s", Pass: ok,
			Message: fmt.Sprintf("%s %s %s the limit %s", name, Seconds(d.P99), pick(ok, "is within", "exceeds"), Seconds(lim))})
	}
	maxCheck("p99 end-to-end latency", s.E2EL, l.MaxLatencyP99)
	maxCheck("p99 TTFT", s.TTFT, l.MaxTTFTP99)
	maxCheck("p99 TPOT", s.TPOT, l.MaxTPOTP99)
	if l.MaxErrorRate >= 0 {
		ok := s.ErrorRate <= l.MaxErrorRate
		v.add(Check{Name: "error rate", Figure: s.ErrorRate, Limit: l.MaxErrorRate, Unit: "fraction", Pass: ok,
			Message: fmt.Sprintf("error rate %s (%d of %d requests failed%s) %s the limit %s", Percent(s.ErrorRate), s.Failed, s.Requests, failureList(s.Failures), pick(ok, "is within", "exceeds"), Percent(l.MaxErrorRate))})
	}
	if g.Baseline != nil && measured {
		g.compare(&v, s, min)
	}

	if len(v.Reasons) > 0 {
		v.Status = Inconclusive
	} else if len(v.Failed()) > 0 {
		v.Status = Failed
	}
	return v
}

func (v *Verdict) add(c Check) { v.Checks = append(v.Checks, c) }

// compare adds the baseline regression checks and condition warnings.
func (g Gate) compare(v *Verdict, s *metrics.Summary, min int) {
	b := g.Baseline
	if b.Succeeded < min {
		v.Reasons = append(v.Reasons, fmt.Sprintf("the baseline has only %d successful requests, fewer than the %d needed to compare", b.Succeeded, min))
		return
	}
	v.Warnings = append(v.Warnings, ConditionDiffs(b.Conditions, s.Conditions)...)
	t := g.Tolerances
	worseIfHigher := func(name string, cur, base, tol float64, unit string, format func(float64) string) {
		limit := base * (1 + tol)
		ok := cur <= limit
		c := Check{Name: name + " vs baseline", Figure: cur, Limit: limit, Unit: unit, Baseline: &base, Pass: ok}
		c.Message = fmt.Sprintf("%s %s is %s the baseline's %s (limit +%s)", name, format(cur), relative(cur, base, true), format(base), Percent(tol))
		v.add(c)
	}
	worseIfHigher("p99 TTFT", s.TTFT.P99, b.TTFT.P99, t.TTFTP99, "s", Seconds)
	worseIfHigher("p99 end-to-end latency", s.E2EL.P99, b.E2EL.P99, t.E2ELP99, "s", Seconds)

	base := b.OutputTokensPerSec
	limit := base * (1 - t.OutputTokensSec)
	ok := s.OutputTokensPerSec >= limit
	v.add(Check{Name: "output tokens/s vs baseline", Figure: s.OutputTokensPerSec, Limit: limit, Unit: "tokens/s", Baseline: &base, Pass: ok,
		Message: fmt.Sprintf("output throughput %s is %s the baseline's %s (limit −%s)", Rate(s.OutputTokensPerSec), relative(s.OutputTokensPerSec, base, false), Rate(base), Percent(t.OutputTokensSec))})
}

// relative says "23% worse than", "5% better than" or "the same as";
// higherIsWorse tells which way is worse.
func relative(cur, base float64, higherIsWorse bool) string {
	if base == 0 {
		if cur == 0 {
			return "the same as"
		}
		return pick((cur > 0) == higherIsWorse, "worse than", "better than")
	}
	d := (cur - base) / base
	pct := math.Round(math.Abs(d) * 100)
	if pct == 0 {
		return "the same as"
	}
	worse := (d > 0) == higherIsWorse
	return fmt.Sprintf("%.0f%% %s than", pct, pick(worse, "worse", "better"))
}

// ConditionDiffs lists what differs between a baseline's conditions and a
// run's in ways that make figures incomparable: prompts, load, max_tokens.
// The endpoint and model are expected to differ.
func ConditionDiffs(base, cur metrics.Conditions) []string {
	var out []string
	diff := func(what, b, c string) {
		if b != c {
			out = append(out, fmt.Sprintf("the baseline was measured with %s %s, this run with %s; the comparison may not be fair", what, b, c))
		}
	}
	diff("prompts", quote(base.Prompts), quote(cur.Prompts))
	diff("load", loadText(base), loadText(cur))
	diff("max_tokens", fmt.Sprint(base.MaxTokens), fmt.Sprint(cur.MaxTokens))
	return out
}

func quote(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return fmt.Sprintf("%q", s)
}

// loadText describes the load a run was measured under.
func loadText(c metrics.Conditions) string {
	switch c.LoadMode {
	case "concurrency":
		return fmt.Sprintf("concurrency %g", c.Load)
	case "rate":
		return fmt.Sprintf("constant rate %g req/s", c.Load)
	case "poisson":
		return fmt.Sprintf("Poisson rate %g req/s", c.Load)
	case "":
		return fmt.Sprintf("load %g", c.Load)
	}
	return fmt.Sprintf("%s %g", c.LoadMode, c.Load)
}

func failureList(f map[string]int) string {
	if len(f) == 0 {
		return ""
	}
	keys := sortedKeys(f)
	s := ": "
	for i, k := range keys {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%d %s", f[k], k)
	}
	return s
}

// firstExample quotes the message of the most common failure kind.
func firstExample(s *metrics.Summary) string {
	best := ""
	for _, k := range sortedKeys(s.Failures) {
		if best == "" || s.Failures[k] > s.Failures[best] {
			best = k
		}
	}
	if msg := s.ErrorExamples[best]; msg != "" {
		return fmt.Sprintf(" (e.g. %s)", msg)
	}
	return ""
}

func pick(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}

// Seconds formats a latency given in seconds: "2.31 s", "0.41 s", "45.2 ms".
func Seconds(v float64) string {
	switch a := math.Abs(v); {
	case a >= 10:
		return fmt.Sprintf("%.1f s", v)
	case a >= 0.1:
		return fmt.Sprintf("%.2f s", v)
	case a >= 0.001 || a == 0:
		return fmt.Sprintf("%.1f ms", v*1e3)
	default:
		return fmt.Sprintf("%.0f µs", v*1e6)
	}
}

// Rate formats tokens per second.
func Rate(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f tokens/s", v)
	}
	return fmt.Sprintf("%.1f tokens/s", v)
}

// Percent formats a fraction as a percentage: 0.1 -> "10%", 0.025 -> "2.5%".
func Percent(f float64) string {
	p := f * 100
	if p == math.Round(p) {
		return fmt.Sprintf("%.0f%%", p)
	}
	return fmt.Sprintf("%.1f%%", p)
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Format renders a figure in a check's unit.
func Format(v float64, unit string) string {
	switch unit {
	case "s":
		return Seconds(v)
	case "tokens/s":
		return Rate(v)
	case "fraction":
		return Percent(v)
	}
	return fmt.Sprintf("%g %s", v, unit)
}

// FigureText is the check's measured figure in its unit.
func (c Check) FigureText() string { return Format(c.Figure, c.Unit) }

// LimitText is the threshold with its direction: "≤ 2.00 s", "≥ 500 tokens/s".
func (c Check) LimitText() string {
	op := "≤"
	if c.Unit == "tokens/s" {
		op = "≥"
	}
	return op + " " + Format(c.Limit, c.Unit)
}
