// Package sweep runs a benchmark at rising loads (concurrency 1, 2, 4, 8, ...
// or a given list) until a load no longer meets the SLOs, and reports the
// highest load that did. Running one load and judging it are the caller's
// (bench and bench/gate); this package only orchestrates.
package sweep

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/modelship/modelship/bench/gate"
	"github.com/modelship/modelship/bench/metrics"
)

// RunFunc measures one load level (a concurrency or a rate) and returns its
// summary. An error ends the sweep.
type RunFunc func(ctx context.Context, load float64) (*metrics.Summary, error)

// JudgeFunc judges one load's summary; the load meets the SLOs when the
// verdict passes.
type JudgeFunc func(s *metrics.Summary) gate.Verdict

// Defaults for an automatic sweep.
const (
	DefaultStart = 1
	DefaultMax   = 1024
	// DefaultStopErrorRate ends a sweep once more than this fraction of a
	// load's requests failed, even with no error-rate gate.
	DefaultStopErrorRate = 0.1
)

// Options say which loads to try.
type Options struct {
	// Loads, when set, are tried in rising order. Otherwise the sweep is
	// automatic: Start, Start*2, Start*4, ... up to Max.
	Loads []float64
	Start float64 // default DefaultStart
	Max   float64 // default DefaultMax
	// StopErrorRate ends the sweep after a load whose error rate is above
	// it (that load does not meet the SLOs); 0 means DefaultStopErrorRate,
	// negative never.
	StopErrorRate float64
	// Each, when set, is called after each load is measured and judged.
	Each func(i int, load float64, s *metrics.Summary, v gate.Verdict)
}

// Result is a sweep's runs, their verdicts, and why it stopped.
type Result struct {
	Sweep    metrics.Sweep
	Verdicts []gate.Verdict
	// Stopped says why the sweep ended before its last load, or is empty.
	Stopped string
}

// Loads returns the loads a sweep with opt tries, at most, in order.
func (opt Options) loads() ([]float64, error) {
	if len(opt.Loads) > 0 {
		l := append([]float64(nil), opt.Loads...)
		sort.Float64s(l)
		for i, x := range l {
			if !(x > 0) {
				return nil, fmt.Errorf("sweep: loads must be above 0, got %g", x)
			}
			if i > 0 && x == l[i-1] {
				return nil, fmt.Errorf("sweep: load %g is listed twice", x)
			}
		}
		return l, nil
	}
	start, stop := opt.Start, opt.Max
	if start == 0 {
		start = DefaultStart
	}
	if stop == 0 {
		stop = DefaultMax
	}
	if !(start > 0) || stop < start {
		return nil, fmt.Errorf("sweep: expected 0 < start <= max, got start %g, max %g", start, stop)
	}
	var l []float64
	for x := start; x <= stop; x *= 2 {
		l = append(l, x)
	}
	return l, nil
}

// Run measures each load in turn and stops after the first that does not
// meet the SLOs (its verdict is not a pass, or its error rate is above
// StopErrorRate): higher loads only get worse. Sweep.MaxLoad is the highest
// load below that one (0 when the first load already failed). An error
// from run, or ctx ending, returns the loads measured so far with the error.
func Run(ctx context.Context, opt Options, run RunFunc, judge JudgeFunc) (*Result, error) {
	loads, err := opt.loads()
	if err != nil {
		return nil, err
	}
	stopRate := opt.StopErrorRate
	if stopRate == 0 {
		stopRate = DefaultStopErrorRate
	}
	res := &Result{Sweep: metrics.Sweep{Runs: []metrics.Summary{}}}
	for i, load := range loads {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		s, err := run(ctx, load)
		if err != nil {
			return res, fmt.Errorf("sweep at load %g: %w", load, err)
		}
		if s == nil {
			return res, errors.New("sweep: run returned no summary")
		}
		v := judge(s)
		res.Sweep.Runs = append(res.Sweep.Runs, *s)
		res.Verdicts = append(res.Verdicts, v)
		if opt.Each != nil {
			opt.Each(i, load, s, v)
		}
		switch {
		case v.Status != gate.Passed:
			res.Stopped = fmt.Sprintf("load %g did not meet the SLOs (%s)", load, why(v))
		case stopRate > 0 && s.ErrorRate > stopRate:
			res.Stopped = fmt.Sprintf("load %g failed %s of its requests, above the sweep's stop rate %s", load, gate.Percent(s.ErrorRate), gate.Percent(stopRate))
		default:
			res.Sweep.MaxLoad = load
			continue
		}
		break
	}
	return res, nil
}

// why summarises a verdict that did not pass.
func why(v gate.Verdict) string {
	if len(v.Reasons) > 0 {
		return string(v.Status) + ": " + v.Reasons[0]
	}
	for _, c := range v.Failed() {
		return c.Message
	}
	return string(v.Status)
}

// Overall turns a sweep into one verdict: a pass when at least one load met
// the SLOs, with the checks of the highest such load; otherwise the first
// load's verdict (fail or inconclusive).
func Overall(r *Result) gate.Verdict {
	if len(r.Verdicts) == 0 {
		return gate.Verdict{Status: gate.Inconclusive, Checks: []gate.Check{}, Reasons: []string{"no load was measured"}}
	}
	idx := 0
	for i, s := range r.Sweep.Runs {
		if r.Sweep.MaxLoad > 0 && s.Conditions.Load == r.Sweep.MaxLoad {
			idx = i
		}
	}
	v := r.Verdicts[idx]
	out := gate.Verdict{Status: v.Status, Checks: append([]gate.Check(nil), v.Checks...), Reasons: v.Reasons, Warnings: v.Warnings}
	if out.Checks == nil {
		out.Checks = []gate.Check{}
	}
	return out
}
