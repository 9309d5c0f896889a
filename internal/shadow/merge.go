package shadow

import "slices"

// Merge sums reports of one shadow taken in several places into one: on
// Kubernetes every stable pod mirrors what it answers itself, and the
// deployer reads one report per pod. Counts are summed and AgreementRate
// is recomputed from them; Assertions are summed, their Examples kept in
// order up to MaxWorst; Worst is merged least similar first (an earlier
// report first among equals), a disagreement listed by several reports
// once with their Counts summed, at most MaxWorst. Latency's N are summed
// and its percentiles are approximate, since no report keeps its times:
// p50 is the N-weighted mean of the reports' p50s, p99 the largest p99.
// Upstream and Percent are the first report's.
func Merge(reps ...Report) Report {
	var m Report
	if len(reps) > 0 {
		m.Upstream, m.Percent = reps[0].Upstream, reps[0].Percent
	}
	m.Assertions.Examples = []string{}
	worst := []Disagreement{}
	stable, cand := make([]Latency, 0, len(reps)), make([]Latency, 0, len(reps))
	for _, r := range reps {
		m.Offered += r.Offered
		m.Dropped += r.Dropped
		m.Skipped += r.Skipped
		m.Compared += r.Compared
		m.Cancelled += r.Cancelled
		m.CandidateErrors += r.CandidateErrors
		m.Comparable += r.Comparable
		m.Agreed += r.Agreed
		a := r.Assertions
		m.Assertions.Checked += a.Checked
		m.Assertions.StableFailed += a.StableFailed
		m.Assertions.CandidateFailed += a.CandidateFailed
		for _, e := range a.Examples {
			if len(m.Assertions.Examples) < MaxWorst {
				m.Assertions.Examples = append(m.Assertions.Examples, e)
			}
		}
		stable, cand = append(stable, r.Stable), append(cand, r.Candidate)
		worst = addWorst(worst, r.Worst)
	}
	if m.Comparable > 0 {
		m.AgreementRate = float64(m.Agreed) / float64(m.Comparable)
	}
	m.Stable, m.Candidate = mergeLatency(stable), mergeLatency(cand)
	slices.SortStableFunc(worst, func(a, b Disagreement) int {
		switch {
		case a.Similarity < b.Similarity:
			return -1
		case a.Similarity > b.Similarity:
			return 1
		}
		return 0
	})
	m.Worst = worst[:min(len(worst), MaxWorst)]
	return m
}

// addWorst adds ds to worst, summing the Count of one already there.
func addWorst(worst, ds []Disagreement) []Disagreement {
next:
	for _, d := range ds {
		for i := range worst {
			if w := &worst[i]; w.Path == d.Path && w.Prompt == d.Prompt && w.Stable == d.Stable && w.Candidate == d.Candidate {
				w.Count += d.Count
				continue next
			}
		}
		worst = append(worst, d)
	}
	return worst
}

// mergeLatency sums ls' N; p50 is their N-weighted mean, p99 their
// largest (an approximation: see Merge).
func mergeLatency(ls []Latency) Latency {
	var m Latency
	for _, l := range ls {
		if l.N <= 0 {
			continue
		}
		w := float64(l.N)
		m.N += l.N
		m.TTFBP50Ms += w * l.TTFBP50Ms
		m.TotalP50Ms += w * l.TotalP50Ms
		m.TTFBP99Ms = max(m.TTFBP99Ms, l.TTFBP99Ms)
		m.TotalP99Ms = max(m.TotalP99Ms, l.TotalP99Ms)
	}
	if m.N > 0 {
		m.TTFBP50Ms /= float64(m.N)
		m.TotalP50Ms /= float64(m.N)
	}
	return m
}
