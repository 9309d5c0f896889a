package analysis

import (
	"math"
	"slices"
)

// MannWhitney is the Mann-Whitney U test of whether the values in b tend
// to be larger than those in a (the rank test Kayenta judges canaries
// with). u is b's U statistic: the number of pairs (a[i], b[j]) with b[j]
// the larger, a tie counting one half (tied values get their average rank).
// z is the normal approximation of u, with the variance corrected for ties
// and a continuity correction of one half; p is one-sided: the probability
// of seeing b this much larger than a were both drawn from one
// distribution. Small p says b is larger. With either sample empty, or
// every value tied, there is no evidence: z is 0 and p is 1. NaN values
// are left out.
func MannWhitney(a, b []float64) (u, z, p float64) {
	sa := slices.DeleteFunc(slices.Clone(a), math.IsNaN)
	sb := slices.DeleteFunc(slices.Clone(b), math.IsNaN)
	slices.Sort(sa)
	slices.Sort(sb)
	return mannWhitneySorted(sa, sb)
}

// mannWhitneySorted is MannWhitney on sorted samples: one merge walks
// both, ranking each run of equal values at its average rank.
func mannWhitneySorted(a, b []float64) (u, z, p float64) {
	na, nb := float64(len(a)), float64(len(b))
	if na == 0 || nb == 0 {
		return 0, 0, 1
	}
	var rankSumB, ties float64
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		v := b[min(j, len(b)-1)]
		if j == len(b) || (i < len(a) && a[i] < v) {
			v = a[i]
		}
		ta, tb := 0, 0
		for ; i < len(a) && a[i] == v; i++ {
			ta++
		}
		for ; j < len(b) && b[j] == v; j++ {
			tb++
		}
		t := float64(ta + tb)
		// Ranks i+j-t+1 ... i+j (1-based); their mean is the run's rank.
		rankSumB += float64(tb) * (float64(i+j) - (t-1)/2)
		ties += t*t*t - t
	}
	u = rankSumB - nb*(nb+1)/2
	n := na + nb
	variance := na * nb / 12 * (n + 1 - ties/(n*(n-1)))
	if variance <= 0 {
		return u, 0, 1
	}
	z = (u - na*nb/2 - 0.5) / math.Sqrt(variance)
	return u, z, math.Erfc(z/math.Sqrt2) / 2
}
