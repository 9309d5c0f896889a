package shadow

import (
	"slices"
	"sync"
	"time"

	"github.com/modelship/modelship/bench/metrics"
	"github.com/modelship/modelship/internal/clip"
)

// KeepLatencies is how many of the latest compared exchanges the latency
// summaries are taken over.
const KeepLatencies = 10_000

// tally adds up the outcomes of the mirrored exchanges.
type tally struct {
	mu                                    sync.Mutex
	compared, candidateErrors, comparable uint64
	agreed                                uint64
	assertions                            Assertions
	added                                 uint64 // outcomes counted
	stable, cand                          window
	worst                                 []Disagreement // least similar first
}

// add counts one outcome.
func (t *tally) add(o outcome) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.added++
	t.candidateErrors += b2u(o.candidateError)
	t.comparable += b2u(o.comparable)
	t.agreed += b2u(o.agreed)
	t.countChecks(o)
	if !o.answered {
		return
	}
	t.compared++
	t.stable.add(o.stable)
	t.cand.add(o.cand)
	if o.worst != nil {
		t.keepWorst(*o.worst)
	}
}

// countChecks adds o's assertion outcomes.
func (t *tally) countChecks(o outcome) {
	if !o.checked {
		return
	}
	a := &t.assertions
	a.Checked++
	a.StableFailed += b2u(o.stableCheck != nil)
	if o.candCheck != nil {
		a.CandidateFailed++
		if len(a.Examples) < MaxWorst {
			a.Examples = append(a.Examples, clip.Line(o.candCheck.Error(), ClipText))
		}
	}
}

// keepWorst lists d when it is among the MaxWorst least similar so far
// (an earlier one first among equals); one already listed is counted.
func (t *tally) keepWorst(d Disagreement) {
	for j := range t.worst {
		if w := &t.worst[j]; w.Path == d.Path && w.Prompt == d.Prompt && w.Stable == d.Stable && w.Candidate == d.Candidate {
			w.Count++
			return
		}
	}
	d.Count = 1
	i, _ := slices.BinarySearchFunc(t.worst, d.Similarity, func(w Disagreement, s float64) int {
		if w.Similarity <= s {
			return -1
		}
		return 1
	})
	if i >= MaxWorst {
		return
	}
	t.worst = slices.Insert(t.worst, i, d)
	t.worst = t.worst[:min(len(t.worst), MaxWorst)]
}

// report is the counts so far (the mirror adds its own).
func (t *tally) report() Report {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := Report{
		Compared: t.compared, CandidateErrors: t.candidateErrors,
		Comparable: t.comparable, Agreed: t.agreed, Assertions: t.assertions,
		Stable: t.stable.summary(), Candidate: t.cand.summary(),
		Worst: slices.Clone(t.worst),
	}
	if r.Comparable > 0 {
		r.AgreementRate = float64(r.Agreed) / float64(r.Comparable)
	}
	r.Assertions.Examples = slices.Clone(t.assertions.Examples)
	if r.Assertions.Examples == nil {
		r.Assertions.Examples = []string{}
	}
	if r.Worst == nil {
		r.Worst = []Disagreement{}
	}
	return r
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// window keeps the latest KeepLatencies (ttfb, total) pairs, in ns.
type window struct {
	times [][2]int64
	next  int
}

func (w *window) add(t [2]int64) {
	if len(w.times) < KeepLatencies {
		w.times = append(w.times, t)
		return
	}
	w.times[w.next] = t
	w.next = (w.next + 1) % KeepLatencies
}

// summary is the window's p50 and p99 (numpy's linear percentiles).
func (w *window) summary() Latency {
	ttfb, total := make([]float64, len(w.times)), make([]float64, len(w.times))
	for i, t := range w.times {
		ttfb[i] = float64(t[0]) / float64(time.Millisecond)
		total[i] = float64(t[1]) / float64(time.Millisecond)
	}
	slices.Sort(ttfb)
	slices.Sort(total)
	return Latency{
		N:         len(w.times),
		TTFBP50Ms: metrics.Percentile(ttfb, 50), TTFBP99Ms: metrics.Percentile(ttfb, 99),
		TotalP50Ms: metrics.Percentile(total, 50), TotalP99Ms: metrics.Percentile(total, 99),
	}
}
