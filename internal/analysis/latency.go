package analysis

import (
	"fmt"

	"github.com/modelship/modelship/serving/stage"
)

// metric is one latency the checks compare.
type metric struct {
	key, label string // check name prefix, and as a sentence says it
	noun       string // what is counted: only these have the latency
	values     func(version) []float64
}

var (
	ttftMetric = metric{"ttft", "TTFT", "answered requests", func(v version) []float64 { return v.ttft }}
	itlMetric  = metric{"itl", "ITL", "streamed answers", func(v version) []float64 { return v.itl }}
)

// enough says why m cannot be judged yet ("" when it can): the canary or
// stable has fewer than need values of it.
func (m metric) enough(need int, vs ...version) string {
	for _, v := range vs {
		got := len(m.values(v))
		switch {
		case got >= need:
			continue
		case got == v.n:
			return fmt.Sprintf("%s has %d requests, fewer than the %d needed", v.name, got, need)
		default:
			return fmt.Sprintf("%s has %d %s (of %d requests), fewer than the %d needed", v.name, got, m.noun, v.n, need)
		}
	}
	return ""
}

// sloCheck holds the canary's p95 of m to limit (ms).
func sloCheck(m metric, st, ca version, need int, limit float64) Check {
	c := Check{Name: m.key + "-p95", Stable: percentile(m.values(st), 95), Canary: percentile(m.values(ca), 95), Limit: limit, Unit: "ms"}
	if c.Why = m.enough(need, ca, st); c.Why != "" {
		c.Verdict = stage.Inconclusive
		return c
	}
	c.Verdict = stage.Of(c.Canary <= limit)
	c.Why = fmt.Sprintf("canary %s p95 %s is %s the %s limit (stable's is %s)",
		m.label, fmtMS(c.Canary), aboveOrWithin(c.Verdict), fmtMS(limit), fmtMS(c.Stable))
	return c
}

// ratioCheck holds the canary's p95 of m to ratio times the stable one's;
// Limit is that product (ms). A p95 over the limit fails only when the
// canary's m is also larger overall (the rank test's one-sided p below
// alpha): a p95 of a few dozen requests moves with one or two slow ones
// (a pause of the host), and a canary must not be aborted for that. A
// slow tail alone is the absolute p95 limit's to catch.
func ratioCheck(m metric, st, ca version, need int, ratio, alpha float64) Check {
	c := Check{Name: m.key + "-ratio", Stable: percentile(m.values(st), 95), Canary: percentile(m.values(ca), 95), Unit: "ms", MaxRatio: ratio}
	c.Limit = ratio * c.Stable
	if c.Why = m.enough(need, ca, st); c.Why != "" {
		c.Verdict = stage.Inconclusive
		return c
	}
	over := c.Canary > c.Limit
	c.Why = fmt.Sprintf("canary %s p95 %s is %s stable's %s, %s the %s limit",
		m.label, fmtMS(c.Canary), fmtTimes(c.Canary, c.Stable), fmtMS(c.Stable), aboveOrWithin(stage.Of(!over)), fmtLimit(ratio))
	c.Verdict = stage.Of(!over)
	if over {
		if _, _, c.P = mannWhitneySorted(m.values(st), m.values(ca)); c.P >= alpha {
			c.Verdict = stage.Passed
			c.Why += fmt.Sprintf(", but the canary is not slower overall (%s, %g needed): a few slow requests, not a regression", fmtP(c.P), alpha)
		}
	}
	return c
}

// rankCheck is the Mann-Whitney test that the canary's m is larger than
// stable's. Significance alone does not fail it: the canary's median
// must also be above t.MaxTTFTRatio times the stable one's (Limit, ms),
// so a real but small slowdown passes.
func rankCheck(m metric, st, ca version, t Thresholds) Check {
	c := Check{Name: m.key + "-rank", Stable: percentile(m.values(st), 50), Canary: percentile(m.values(ca), 50), Unit: "ms", MaxRatio: t.MaxTTFTRatio}
	c.Limit = t.MaxTTFTRatio * c.Stable
	if c.Why = m.enough(t.MinSamples, ca, st); c.Why != "" {
		c.Verdict = stage.Inconclusive
		return c
	}
	_, _, c.P = mannWhitneySorted(m.values(st), m.values(ca))
	significant, large := c.P < t.Alpha, c.Canary > c.Limit
	c.Verdict = stage.Of(!(significant && large))
	medians := fmt.Sprintf("its median %s is %s stable's %s, %s the %s limit",
		fmtMS(c.Canary), fmtTimes(c.Canary, c.Stable), fmtMS(c.Stable), aboveOrWithin(stage.Of(!large)), fmtLimit(t.MaxTTFTRatio))
	switch {
	case significant && large:
		c.Why = fmt.Sprintf("canary %s is significantly slower (%s, below %g) and %s", m.label, fmtP(c.P), t.Alpha, medians)
	case significant:
		c.Why = fmt.Sprintf("canary %s is significantly slower (%s, below %g), but only slightly: %s", m.label, fmtP(c.P), t.Alpha, medians)
	default:
		c.Why = fmt.Sprintf("canary %s is not significantly slower (%s, %g needed); %s", m.label, fmtP(c.P), t.Alpha, medians)
	}
	return c
}
