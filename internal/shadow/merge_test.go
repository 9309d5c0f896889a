package shadow

import (
	"math"
	"reflect"
	"testing"
)

// Two pods' reports of one shadow: the counts add up, the agreement rate
// is the whole's, the examples and the worst disagreements are merged
// (the same one's counts summed, least similar first, at most MaxWorst),
// and the latency is approximated from the summaries.
func TestMerge(t *testing.T) {
	dis := func(prompt string, sim float64, n int) Disagreement {
		return Disagreement{Path: ChatPath, Prompt: prompt, Stable: "a", Candidate: "b", Similarity: sim, Count: n}
	}
	a := Report{
		Upstream: "http://candidate:8000", Percent: 10,
		Offered: 10, Dropped: 1, Skipped: 2, Compared: 7, Cancelled: 0, CandidateErrors: 1, Comparable: 6, Agreed: 3, AgreementRate: 0.5,
		Assertions: Assertions{Checked: 4, StableFailed: 1, CandidateFailed: 3, Examples: []string{"a1", "a2", "a3"}},
		Stable:     Latency{N: 7, TTFBP50Ms: 10, TTFBP99Ms: 50, TotalP50Ms: 100, TotalP99Ms: 500},
		Candidate:  Latency{N: 7, TTFBP50Ms: 20, TTFBP99Ms: 60, TotalP50Ms: 200, TotalP99Ms: 600},
		Worst:      []Disagreement{dis("p1", 0.1, 2), dis("p2", 0.3, 1), dis("p3", 0.5, 1)},
	}
	b := Report{
		Upstream: "http://other:8000", Percent: 20,
		Offered: 5, Dropped: 0, Skipped: 1, Compared: 3, Cancelled: 1, CandidateErrors: 0, Comparable: 4, Agreed: 4, AgreementRate: 1,
		Assertions: Assertions{Checked: 2, StableFailed: 0, CandidateFailed: 3, Examples: []string{"b1", "b2", "b3"}},
		Stable:     Latency{N: 3, TTFBP50Ms: 20, TTFBP99Ms: 40, TotalP50Ms: 200, TotalP99Ms: 900},
		Candidate:  Latency{N: 3, TTFBP50Ms: 40, TTFBP99Ms: 80, TotalP50Ms: 100, TotalP99Ms: 300},
		Worst:      []Disagreement{dis("p1", 0.1, 3), dis("p4", 0.05, 1), dis("p5", 0.3, 1), dis("p6", 0.9, 1)},
	}
	m := Merge(a, b, Report{Worst: []Disagreement{}, Assertions: Assertions{Examples: []string{}}})
	if m.Upstream != a.Upstream || m.Percent != a.Percent {
		t.Errorf("upstream %q percent %v, want the first report's", m.Upstream, m.Percent)
	}
	counts := [...]uint64{m.Offered, m.Dropped, m.Skipped, m.Compared, m.Cancelled, m.CandidateErrors, m.Comparable, m.Agreed}
	if counts != [...]uint64{15, 1, 3, 10, 1, 1, 10, 7} || m.AgreementRate != 0.7 {
		t.Errorf("counts %v agreement %v", counts, m.AgreementRate)
	}
	wantA := Assertions{Checked: 6, StableFailed: 1, CandidateFailed: 6, Examples: []string{"a1", "a2", "a3", "b1", "b2"}}
	if !reflect.DeepEqual(m.Assertions, wantA) {
		t.Errorf("assertions %+v, want %+v", m.Assertions, wantA)
	}
	wantW := []Disagreement{dis("p4", 0.05, 1), dis("p1", 0.1, 5), dis("p2", 0.3, 1), dis("p5", 0.3, 1), dis("p3", 0.5, 1)}
	if !reflect.DeepEqual(m.Worst, wantW) {
		t.Errorf("worst %+v, want %+v", m.Worst, wantW)
	}
	near := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	if s := m.Stable; s.N != 10 || !near(s.TTFBP50Ms, 13) || s.TTFBP99Ms != 50 || !near(s.TotalP50Ms, 130) || s.TotalP99Ms != 900 {
		t.Errorf("stable latency %+v", s)
	}
	if c := m.Candidate; c.N != 10 || !near(c.TTFBP50Ms, 26) || c.TTFBP99Ms != 80 || !near(c.TotalP50Ms, 170) || c.TotalP99Ms != 600 {
		t.Errorf("candidate latency %+v", c)
	}
	if z := Merge(); z.Worst == nil || z.Assertions.Examples == nil || z.AgreementRate != 0 || z.Stable.N != 0 {
		t.Errorf("merge of none: %+v", z)
	}
}
