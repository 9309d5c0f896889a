package analysis

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/modelship/modelship/serving/stage"
)

// version is what one release's samples come to.
type version struct {
	name string // "canary" or "stable"
	n    int    // requests
	errs int    // requests with Err
	ttft []float64
	itl  []float64 // streamed answers only
}

// summarise counts the requests and errors of s and collects, sorted and
// in milliseconds, the latencies of its answered generations (status 200,
// no error, not a probe); inter-token latency only of streamed answers
// (ITL above 0).
func summarise(name string, s []Sample) version {
	v := version{name: name, n: len(s)}
	ttft, itl := make([]time.Duration, 0, len(s)), make([]time.Duration, 0, len(s))
	for _, x := range s {
		switch {
		case x.Err:
			v.errs++
		case x.Status == 200 && !x.Probe:
			ttft = append(ttft, x.TTFT)
			if x.ITL > 0 {
				itl = append(itl, x.ITL)
			}
		}
	}
	v.ttft, v.itl = sortedMS(ttft), sortedMS(itl)
	return v
}

// sortedMS is ds sorted, in milliseconds (sorted as integers: faster than
// as floats).
func sortedMS(ds []time.Duration) []float64 {
	slices.Sort(ds)
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = ms(d)
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentile is the p-th percentile (0 < p <= 100) of sorted by nearest
// rank: the smallest value at least p% of the values are no larger than.
// An empty slice gives 0.
func percentile(sorted []float64, p int) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := (len(sorted)*p + 99) / 100 // ⌈n·p/100⌉
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// Analyse judges a window against t (after t.WithDefaults()): the error
// rate, the latency SLOs and ratios, the rank test and the canary's
// engine metrics, each a Check in that fixed order. The window fails on
// the first check that failed, else is inconclusive on the first that
// was (too few requests), else passes.
func Analyse(w Window, t Thresholds) Decision {
	t = t.WithDefaults()
	st, ca := summarise("stable", w.Stable), summarise("canary", w.Canary)
	checks := []Check{errorRate(st, ca, t), errorRateDelta(st, ca, t)}
	if t.MaxTTFTP95 > 0 {
		checks = append(checks, sloCheck(ttftMetric, st, ca, t.MinSamples, ms(t.MaxTTFTP95)))
	}
	if t.MaxITLP95 > 0 {
		checks = append(checks, sloCheck(itlMetric, st, ca, t.MinSamples, ms(t.MaxITLP95)))
	}
	checks = append(checks, ratioCheck(ttftMetric, st, ca, t.MinSamples, t.MaxTTFTRatio, t.Alpha))
	if t.MaxITLRatio > 0 {
		checks = append(checks, ratioCheck(itlMetric, st, ca, t.MinSamples, t.MaxITLRatio, t.Alpha))
	}
	checks = append(checks, rankCheck(ttftMetric, st, ca, t),
		engineCheck(kvCacheGauge, w.StableEngine, w.CanaryEngine, t.MaxKVCacheUsage),
		engineCheck(waitingGauge, w.StableEngine, w.CanaryEngine, t.MaxRequestsWaiting))
	return decide(checks, st.n, ca.n)
}

// decide is the decision over checks, in their order: failed on the first
// that failed, else inconclusive on the first that was, else passed.
func decide(checks []Check, stableN, canaryN int) Decision {
	d := Decision{Verdict: stage.Passed, Checks: checks, StableN: stableN, CanaryN: canaryN}
	for _, v := range []stage.Verdict{stage.Failed, stage.Inconclusive} {
		i := slices.IndexFunc(checks, func(c Check) bool { return c.Verdict == v })
		if i < 0 {
			continue
		}
		d.Verdict, d.Decider = v, checks[i].Name
		d.Why = fmt.Sprintf("%s on %s: %s", v, checks[i].Name, checks[i].Why)
		var also []string
		for _, c := range checks[i+1:] {
			if c.Verdict == v {
				also = append(also, c.Name)
			}
		}
		if len(also) > 0 {
			d.Why += fmt.Sprintf(" (also %s: %s)", v, strings.Join(also, ", "))
		}
		return d
	}
	skipped := 0
	for _, c := range checks {
		if c.Verdict == stage.Skipped {
			skipped++
		}
	}
	d.Why = fmt.Sprintf("canary passed all %d checks over %d canary and %d stable requests", len(checks)-skipped, canaryN, stableN)
	if skipped > 0 {
		d.Why += fmt.Sprintf(" (%d skipped)", skipped)
	}
	return d
}
