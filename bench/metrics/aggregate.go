package metrics

import (
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/modelship/modelship/bench"
)

// Memory bounds of an Aggregator.
const (
	// ExactSamples is how many values of one latency are kept exactly (as
	// float32 seconds, 4 bytes each). Beyond it a distribution switches to
	// a log-linear histogram (HistogramRelError), so memory stays bounded
	// (about 4 MiB per latency) however long the run.
	ExactSamples = 1 << 20
	// MaxChartSamples bounds Summary.E2ELSamples and TTFTSamples.
	MaxChartSamples = 2000
)

// Aggregator folds results into a Summary. Add every result (warm-up ones
// are skipped), then Close once. It is not safe for concurrent use.
type Aggregator struct {
	slo  SLO
	ttft dist
	itl  dist
	tpot dist
	e2el dist

	requests, succeeded int
	failures            map[string]int
	inTok, outTok       int64
	firstStart, lastEnd time.Time
	met                 [3]int // requests meeting the ttft, tpot, e2el SLOs
	metAll              int
	notStreamed         int

	ref      time.Time // first added start: timeline seconds are from here
	timeline map[int64]*pointAcc
}

type pointAcc struct {
	requests, failed, outTok int
	ttftSum                  float64
}

// NewAggregator starts an aggregate; slo's zero fields are not checked.
func NewAggregator(slo SLO) *Aggregator {
	return &Aggregator{slo: slo, failures: map[string]int{}, timeline: map[int64]*pointAcc{}}
}

// Add counts one result. Warm-up results are ignored.
func (a *Aggregator) Add(r *bench.Result) {
	if r.Warmup {
		return
	}
	a.requests++
	end := r.Start.Add(r.E2EL)
	if a.ref.IsZero() {
		a.ref = r.Start
	}
	if a.firstStart.IsZero() || r.Start.Before(a.firstStart) {
		a.firstStart = r.Start
	}
	if end.After(a.lastEnd) {
		a.lastEnd = end
	}
	sec := int64(math.Floor(end.Sub(a.ref).Seconds()))
	p := a.timeline[sec]
	if p == nil {
		p = &pointAcc{}
		a.timeline[sec] = p
	}
	if !r.OK() {
		a.failures[r.ErrorKind]++
		p.failed++
		return
	}
	a.succeeded++
	if r.NotStreamed {
		a.notStreamed++
	}
	a.inTok += int64(r.InputTokens)
	a.outTok += int64(r.OutputTokens)
	p.requests++
	p.outTok += r.OutputTokens
	p.ttftSum += r.TTFT.Seconds()

	a.ttft.add(r.TTFT.Seconds())
	a.e2el.add(r.E2EL.Seconds())
	for _, d := range r.ITL {
		a.itl.add(d.Seconds())
	}
	tpot := r.TPOT()
	if r.OutputTokens >= 2 {
		a.tpot.add(tpot.Seconds())
	}
	ok := [3]bool{
		a.slo.TTFT <= 0 || r.TTFT <= a.slo.TTFT,
		a.slo.TPOT <= 0 || tpot <= a.slo.TPOT,
		a.slo.E2EL <= 0 || r.E2EL <= a.slo.E2EL,
	}
	for i, v := range ok {
		if v {
			a.met[i]++
		}
	}
	if ok[0] && ok[1] && ok[2] {
		a.metAll++
	}
}

// Close computes the summary. Conditions are left for the caller to fill.
func (a *Aggregator) Close() *Summary {
	s := &Summary{
		Requests:    a.requests,
		Succeeded:   a.succeeded,
		Failed:      a.requests - a.succeeded,
		SLO:         a.slo,
		NotStreamed: a.notStreamed,
	}
	if len(a.failures) > 0 {
		s.Failures = a.failures
	}
	if a.requests > 0 {
		s.ErrorRate = float64(s.Failed) / float64(a.requests)
		s.Elapsed = a.lastEnd.Sub(a.firstStart).Seconds()
	}
	s.TTFT = a.ttft.summary()
	s.ITL = a.itl.summary()
	s.TPOT = a.tpot.summary()
	s.E2EL = a.e2el.summary()
	s.InputTokens, s.OutputTokens = a.inTok, a.outTok
	if s.Elapsed > 0 {
		s.OutputTokensPerSec = float64(a.outTok) / s.Elapsed
		s.TotalTokensPerSec = float64(a.inTok+a.outTok) / s.Elapsed
		s.RequestsPerSec = float64(a.succeeded) / s.Elapsed
	}
	if a.slo != (SLO{}) {
		s.Attainment = map[string]float64{}
		names := [3]string{"ttft", "tpot", "e2el"}
		limits := [3]time.Duration{a.slo.TTFT, a.slo.TPOT, a.slo.E2EL}
		for i, n := range names {
			if limits[i] > 0 {
				s.Attainment[n] = frac(a.met[i], a.succeeded)
			}
		}
		s.Attainment["all"] = frac(a.metAll, a.succeeded)
		if s.Elapsed > 0 {
			s.Goodput = float64(a.metAll) / s.Elapsed
		}
	}
	s.Timeline = a.points()
	s.E2ELSamples = a.e2el.chartSamples(MaxChartSamples)
	s.TTFTSamples = a.ttft.chartSamples(MaxChartSamples)
	return s
}

func frac(n, d int) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

// points turns the per-second accumulators into a gap-free timeline whose
// seconds count from the first measured request's start.
func (a *Aggregator) points() []Point {
	if len(a.timeline) == 0 {
		return nil
	}
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for k := range a.timeline {
		lo, hi = min(lo, k), max(hi, k)
	}
	shift := int64(math.Floor(a.ref.Sub(a.firstStart).Seconds()))
	out := make([]Point, 0, hi-lo+1)
	for k := lo; k <= hi; k++ {
		pt := Point{Second: int(k + shift)}
		if p := a.timeline[k]; p != nil {
			pt.Requests, pt.Failed, pt.OutputTokens = p.requests, p.failed, p.outTok
			if p.requests > 0 {
				pt.MeanTTFT = p.ttftSum / float64(p.requests)
			}
		}
		out = append(out, pt)
	}
	return out
}

// Summarize aggregates a slice of results.
func Summarize(results []bench.Result, slo SLO) *Summary {
	a := NewAggregator(slo)
	for i := range results {
		a.Add(&results[i])
	}
	return a.Close()
}

// dist accumulates one latency: exact moments, exact samples up to
// ExactSamples, then a histogram.
type dist struct {
	n        int64
	mean, m2 float64 // Welford
	min, max float64
	samples  []float32
	hist     *histogram
}

func (d *dist) add(v float64) {
	d.n++
	if d.n == 1 {
		d.min, d.max = v, v
	} else {
		d.min, d.max = min(d.min, v), max(d.max, v)
	}
	delta := v - d.mean
	d.mean += delta / float64(d.n)
	d.m2 += delta * (v - d.mean)
	if d.hist != nil {
		d.hist.add(v)
		return
	}
	if len(d.samples) < ExactSamples {
		d.samples = append(d.samples, float32(v))
		return
	}
	d.hist = newHistogram()
	for _, s := range d.samples {
		d.hist.add(float64(s))
	}
	d.samples = nil
	d.hist.add(v)
}

func (d *dist) sorted() {
	if d.hist == nil && !slices.IsSorted(d.samples) {
		slices.Sort(d.samples)
	}
}

// quantile is the q-th quantile (0..1) by linear interpolation.
func (d *dist) quantile(q float64) float64 {
	if d.n == 0 {
		return 0
	}
	var v float64
	if d.hist != nil {
		v = d.hist.quantile(q)
	} else {
		v = Percentile32(d.samples, q*100)
	}
	return min(max(v, d.min), d.max)
}

func (d *dist) summary() Distribution {
	if d.n == 0 {
		return Distribution{}
	}
	d.sorted()
	return Distribution{
		Count:  int(d.n),
		Mean:   d.mean,
		Median: d.quantile(0.5),
		P90:    d.quantile(0.9),
		P99:    d.quantile(0.99),
		Min:    d.min,
		Max:    d.max,
		Std:    math.Sqrt(d.m2 / float64(d.n)),
	}
}

// chartSamples is at most k sorted values spread evenly over the
// distribution, first and last included.
func (d *dist) chartSamples(k int) []float64 {
	if d.n == 0 {
		return nil
	}
	d.sorted()
	m := int(min(d.n, int64(k)))
	out := make([]float64, m)
	for i := range out {
		if d.hist == nil {
			j := 0
			if m > 1 {
				j = int(math.Round(float64(i) * float64(len(d.samples)-1) / float64(m-1)))
			}
			out[i] = widen(d.samples[j])
		} else {
			q := 0.0
			if m > 1 {
				q = float64(i) / float64(m-1)
			}
			out[i] = d.quantile(q)
		}
	}
	return out
}

// Percentile is the p-th percentile (0..100) of sorted values by linear
// interpolation between closest ranks — numpy.percentile's default method
// ("linear"), which vLLM's benchmark_serving uses: with n values the
// percentile sits at rank h = (n-1)·p/100 and is
// sorted[⌊h⌋] + (h-⌊h⌋)·(sorted[⌊h⌋+1]-sorted[⌊h⌋]). Empty input gives 0.
func Percentile(sorted []float64, p float64) float64 {
	return percentile(sorted, p)
}

// Percentile32 is Percentile over float32 values.
func Percentile32(sorted []float32, p float64) float64 {
	return percentile(sorted, p)
}

func percentile[T float32 | float64](sorted []T, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	p = min(max(p, 0), 100)
	h := float64(n-1) * p / 100
	lo := int(math.Floor(h))
	if lo >= n-1 {
		return widen(sorted[n-1])
	}
	f := h - float64(lo)
	a, b := widen(sorted[lo]), widen(sorted[lo+1])
	return a + f*(b-a)
}

// widen converts to float64 by the shortest decimal that reads back as the
// same value, so float32(0.1) comes back as 0.1, not 0.100000001.
func widen[T float32 | float64](v T) float64 {
	if f, ok := any(v).(float32); ok {
		w, _ := strconv.ParseFloat(strconv.FormatFloat(float64(f), 'g', -1, 32), 64)
		return w
	}
	return float64(v)
}
