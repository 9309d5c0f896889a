package metrics

import "math"

// Histogram resolution: each power of two of seconds is split into
// histSub equal buckets, so a value is known to within HistogramRelError.
const (
	histSub = 256
	// histMinExp..histMaxExp cover 2^-31 s (0.5 ns) to 2^20 s (12 days).
	histMinExp = -31
	histMaxExp = 20
	// HistogramRelError bounds the relative error of a percentile once a
	// distribution has more than ExactSamples values (bucket midpoints).
	HistogramRelError = 1.0 / (2 * histSub)
)

// histogram is a log-linear histogram of non-negative seconds: fixed
// memory (about 100 KiB) whatever the count.
type histogram struct {
	zero   int64 // values <= 0
	counts []int64
	n      int64
}

func newHistogram() *histogram {
	return &histogram{counts: make([]int64, (histMaxExp-histMinExp)*histSub)}
}

func (h *histogram) add(v float64) {
	h.n++
	if !(v > 0) {
		h.zero++
		return
	}
	h.counts[bucket(v)]++
}

// bucket is v's index: frexp gives v = frac·2^exp with frac in [0.5, 1).
func bucket(v float64) int {
	frac, exp := math.Frexp(v)
	if exp <= histMinExp {
		return 0
	}
	if exp > histMaxExp {
		return (histMaxExp-histMinExp)*histSub - 1
	}
	sub := int((frac - 0.5) * 2 * histSub)
	return (exp-histMinExp-1)*histSub + sub
}

// mid is the midpoint of bucket i.
func mid(i int) float64 {
	exp := i/histSub + histMinExp + 1
	sub := i % histSub
	frac := 0.5 + (float64(sub)+0.5)/(2*histSub)
	return math.Ldexp(frac, exp)
}

// valueAt is the value of rank k (0-based) in sorted order, estimated.
func (h *histogram) valueAt(k int64) float64 {
	if k < h.zero {
		return 0
	}
	c := h.zero
	for i, n := range h.counts {
		c += n
		if k < c {
			return mid(i)
		}
	}
	return mid(len(h.counts) - 1)
}

// quantile interpolates linearly between the ranks around (n-1)·q, as
// Percentile does on exact values.
func (h *histogram) quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	r := float64(h.n-1) * min(max(q, 0), 1)
	lo := int64(math.Floor(r))
	a := h.valueAt(lo)
	if lo+1 >= h.n {
		return a
	}
	b := h.valueAt(lo + 1)
	return a + (r-float64(lo))*(b-a)
}
