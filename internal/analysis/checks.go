package analysis

import (
	"fmt"

	"github.com/modelship/modelship/serving/stage"
)

// rate is v's error ratio (0 without requests).
func rate(v version) float64 {
	if v.n == 0 {
		return 0
	}
	return float64(v.errs) / float64(v.n)
}

// shortOf says which of the versions has fewer than need requests ("" when
// neither has): the canary's count first.
func shortOf(need int, vs ...version) string {
	for _, v := range vs {
		if v.n < need {
			return fmt.Sprintf("%s has %d requests, fewer than the %d needed", v.name, v.n, need)
		}
	}
	return ""
}

// errorRate holds the canary's error ratio to t.MaxErrorRate. With fewer
// than t.MinSamples requests it fails as soon as the errors so far exceed
// the limit even were every missing request to succeed, else it waits.
func errorRate(st, ca version, t Thresholds) Check {
	c := Check{Name: "error-rate", Stable: rate(st), Canary: rate(ca), Limit: t.MaxErrorRate, Unit: "ratio"}
	lowest := float64(ca.errs) / float64(max(ca.n, t.MinSamples, 1))
	short := shortOf(t.MinSamples, ca)
	switch {
	case short != "" && lowest > t.MaxErrorRate:
		c.Verdict = stage.Failed
		c.Why = fmt.Sprintf("canary failed %d of its first %d requests: even if the %d more needed all succeed, its error rate would be %s, above the %s limit",
			ca.errs, ca.n, t.MinSamples-ca.n, fmtRate(lowest), fmtRate(t.MaxErrorRate))
	case short != "":
		c.Verdict = stage.Inconclusive
		c.Why = short
		if ca.errs > 0 {
			c.Why += fmt.Sprintf(" (%d failed so far)", ca.errs)
		}
	default:
		c.Verdict = stage.Of(c.Canary <= t.MaxErrorRate)
		c.Why = fmt.Sprintf("canary error rate %s (%d of %d requests) is %s the %s limit",
			fmtRate(c.Canary), ca.errs, ca.n, aboveOrWithin(c.Verdict), fmtRate(t.MaxErrorRate))
	}
	return c
}

// errorRateDelta holds how far the canary's error ratio exceeds the
// stable one's to t.MaxErrorRateDelta. Short of t.MinSamples requests on
// either side, it fails only when the canary's lowest possible ratio (the
// missing requests all succeed) already exceeds the stable one's highest
// (they all fail) by more than the limit, else it waits.
func errorRateDelta(st, ca version, t Thresholds) Check {
	c := Check{Name: "error-rate-delta", Stable: rate(st), Canary: rate(ca), Limit: t.MaxErrorRateDelta, Unit: "ratio"}
	lowest := float64(ca.errs) / float64(max(ca.n, t.MinSamples, 1))
	highest := float64(st.errs+max(t.MinSamples-st.n, 0)) / float64(max(st.n, t.MinSamples, 1))
	short := shortOf(t.MinSamples, ca, st)
	switch {
	case short != "" && lowest-highest > t.MaxErrorRateDelta:
		c.Verdict = stage.Failed
		c.Why = fmt.Sprintf("canary error rate is at least %s (%d failed of its first %d requests), more than %s above the highest stable's can reach, %s",
			fmtRate(lowest), ca.errs, ca.n, fmtRate(t.MaxErrorRateDelta), fmtRate(highest))
	case short != "":
		c.Verdict = stage.Inconclusive
		c.Why = short
	case c.Canary <= c.Stable:
		c.Verdict = stage.Passed
		c.Why = fmt.Sprintf("canary error rate %s is no higher than stable's %s", fmtRate(c.Canary), fmtRate(c.Stable))
	default:
		c.Verdict = stage.Of(c.Canary-c.Stable <= t.MaxErrorRateDelta)
		c.Why = fmt.Sprintf("canary error rate %s is %s above stable's %s, %s the %s allowed",
			fmtRate(c.Canary), fmtRate(c.Canary-c.Stable), fmtRate(c.Stable), aboveOrWithin(c.Verdict), fmtRate(t.MaxErrorRateDelta))
	}
	return c
}

// aboveOrWithin is how a figure stands to its limit, by the check's verdict.
func aboveOrWithin(v stage.Verdict) string {
	if v == stage.Failed {
		return "above"
	}
	return "within"
}

// engineGauge is one engine metric a check bounds.
type engineGauge struct {
	name, label, unit string
	get               func(*Engine) float64
	format            func(float64) string
}

var (
	kvCacheGauge = engineGauge{"kv-cache-usage", "KV-cache usage", "ratio",
		func(e *Engine) float64 { return e.KVCacheUsage }, fmtRate}
	waitingGauge = engineGauge{"requests-waiting", "requests waiting", "requests",
		func(e *Engine) float64 { return e.RequestsWaiting }, fmtCount}
)

// engineCheck holds the canary's engine metric g to limit; skipped when
// the limit is off or the canary's metrics were not read. Stable's figure
// (0 where not read) is for comparison only.
func engineCheck(g engineGauge, st, ca *Engine, limit float64) Check {
	c := Check{Name: g.name, Limit: limit, Unit: g.unit, Verdict: stage.Skipped}
	if limit <= 0 {
		c.Why = fmt.Sprintf("no %s limit is set", g.name)
		return c
	}
	if ca == nil {
		c.Why = "the canary's engine metrics could not be read"
		return c
	}
	c.Canary = g.get(ca)
	stable := "stable's not read"
	if st != nil {
		c.Stable = g.get(st)
		stable = "stable's is " + g.format(c.Stable)
	}
	c.Verdict = stage.Of(c.Canary <= limit)
	c.Why = fmt.Sprintf("canary %s %s is %s the %s limit (%s)",
		g.label, g.format(c.Canary), aboveOrWithin(c.Verdict), g.format(limit), stable)
	return c
}
