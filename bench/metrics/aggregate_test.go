package metrics

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/modelship/modelship/bench"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// Values from numpy 1.26: np.percentile(x, p) (method="linear").
func TestPercentileNumpy(t *testing.T) {
	ten := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	five := []float64{15, 20, 35, 40, 50}
	tests := []struct {
		x    []float64
		p    float64
		want float64
	}{
		{ten, 50, 5.5}, {ten, 90, 9.1}, {ten, 99, 9.91}, {ten, 0, 1}, {ten, 100, 10},
		{five, 40, 29}, {five, 50, 35}, {five, 90, 46}, {five, 99, 49.6},
		{[]float64{7}, 99, 7}, {nil, 50, 0},
	}
	for _, tt := range tests {
		if got := Percentile(tt.x, tt.p); !near(got, tt.want, 1e-12) {
			t.Errorf("Percentile(%v, %g) = %g, want %g", tt.x, tt.p, got, tt.want)
		}
	}
}

func ok(start time.Time, ttft, e2el time.Duration, out int, itl ...time.Duration) *bench.Result {
	return &bench.Result{Start: start, TTFT: ttft, E2EL: e2el, OutputTokens: out, InputTokens: 10, ITL: itl, Status: 200}
}

func TestAggregateKnownData(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := time.Millisecond
	a := NewAggregator(SLO{TTFT: 250 * ms, TPOT: 30 * ms})
	// Ten requests with TTFT 100..1000 ms, 11 tokens, E2EL = TTFT + 10·20ms
	// (TPOT 20 ms), starting 0.1 s apart; the last ends at 0.9 + 1.2 = 2.1 s.
	for i := 1; i <= 10; i++ {
		ttft := time.Duration(i) * 100 * ms
		itl := slices.Repeat([]time.Duration{20 * ms}, 10)
		a.Add(ok(t0.Add(time.Duration(i-1)*100*ms), ttft, ttft+200*ms, 11, itl...))
	}
	// Not counted: a warm-up request.
	a.Add(&bench.Result{Start: t0.Add(-time.Hour), Warmup: true, TTFT: time.Hour, E2EL: time.Hour, OutputTokens: 1000})
	// Failures count in requests and error rate only.
	a.Add(&bench.Result{Start: t0.Add(500 * ms), E2EL: 10 * ms, Status: 500, ErrorKind: bench.ErrHTTP5xx, Error: "HTTP 500"})
	a.Add(&bench.Result{Start: t0.Add(600 * ms), E2EL: 10 * ms, ErrorKind: bench.ErrTimeout})
	s := a.Close()

	if s.Requests != 12 || s.Succeeded != 10 || s.Failed != 2 || !near(s.ErrorRate, 2.0/12, 1e-12) {
		t.Errorf("counts %d/%d/%d, error rate %g", s.Requests, s.Succeeded, s.Failed, s.ErrorRate)
	}
	if s.Failures[bench.ErrHTTP5xx] != 1 || s.Failures[bench.ErrTimeout] != 1 {
		t.Errorf("failures %v", s.Failures)
	}
	if !near(s.Elapsed, 2.1, 1e-9) {
		t.Errorf("elapsed %g, want 2.1", s.Elapsed)
	}
	// TTFT: 0.1..1.0 s, numpy: mean 0.55, median 0.55, p90 0.91, p99 0.991,
	// std 0.28722813232690143.
	want := Distribution{Count: 10, Mean: 0.55, Median: 0.55, P90: 0.91, P99: 0.991, Min: 0.1, Max: 1, Std: 0.28722813232690143}
	if got := s.TTFT; !distNear(got, want, 1e-6) {
		t.Errorf("TTFT %+v\nwant %+v", got, want)
	}
	if s.ITL.Count != 100 || !near(s.ITL.Median, 0.02, 1e-9) || !near(s.ITL.Std, 0, 1e-9) {
		t.Errorf("ITL %+v", s.ITL)
	}
	if s.TPOT.Count != 10 || !near(s.TPOT.Mean, 0.02, 1e-9) {
		t.Errorf("TPOT %+v", s.TPOT)
	}
	if !near(s.E2EL.Median, 0.75, 1e-6) {
		t.Errorf("E2EL %+v", s.E2EL)
	}
	if s.OutputTokens != 110 || s.InputTokens != 100 || !near(s.OutputTokensPerSec, 110/2.1, 1e-9) ||
		!near(s.TotalTokensPerSec, 210/2.1, 1e-9) || !near(s.RequestsPerSec, 10/2.1, 1e-9) {
		t.Errorf("throughput %+v", s)
	}
	// SLO: TTFT <= 250 ms for 2 of 10; TPOT 20 ms <= 30 ms for all.
	if s.Attainment["ttft"] != 0.2 || s.Attainment["tpot"] != 1 || s.Attainment["all"] != 0.2 {
		t.Errorf("attainment %v", s.Attainment)
	}
	if _, set := s.Attainment["e2el"]; set {
		t.Error("attainment for an SLO not set")
	}
	if !near(s.Goodput, 2/2.1, 1e-9) {
		t.Errorf("goodput %g, want %g", s.Goodput, 2/2.1)
	}
	// Ends at 0.3,0.5,...,2.1 s (+ failures at 0.51, 0.61): seconds 0,1,2.
	var reqs, failed, toks int
	for i, p := range s.Timeline {
		if p.Second != i {
			t.Errorf("timeline point %d has second %d", i, p.Second)
		}
		reqs += p.Requests
		failed += p.Failed
		toks += p.OutputTokens
	}
	if len(s.Timeline) != 3 || reqs != 10 || failed != 2 || toks != 110 || s.Timeline[0].Requests != 4 {
		t.Errorf("timeline %+v", s.Timeline)
	}
	if len(s.TTFTSamples) != 10 || s.TTFTSamples[0] != 0.1 || s.TTFTSamples[9] != 1 || !slices.IsSorted(s.E2ELSamples) {
		t.Errorf("samples %v %v", s.TTFTSamples, s.E2ELSamples)
	}
}

func distNear(a, b Distribution, tol float64) bool {
	return a.Count == b.Count && near(a.Mean, b.Mean, tol) && near(a.Median, b.Median, tol) && near(a.P90, b.P90, tol) &&
		near(a.P99, b.P99, tol) && near(a.Min, b.Min, tol) && near(a.Max, b.Max, tol) && near(a.Std, b.Std, tol)
}

func TestEmptyAndNoSLO(t *testing.T) {
	s := NewAggregator(SLO{}).Close()
	if s.Requests != 0 || s.ErrorRate != 0 || s.Attainment != nil || s.Timeline != nil || s.TTFT != (Distribution{}) {
		t.Errorf("%+v", s)
	}
}

// TestHistogramBeyondExact feeds more values than are kept exactly: the
// percentiles must stay within the histogram's stated error of the exact
// ones, and memory must not hold the values.
func TestHistogramBeyondExact(t *testing.T) {
	var d dist
	rng := rand.New(rand.NewPCG(1, 2))
	n := ExactSamples + 50_000
	all := make([]float64, n)
	for i := range all {
		v := 0.01 + rng.ExpFloat64()*0.05 // seconds
		all[i] = v
		d.add(v)
	}
	if d.samples != nil || d.hist == nil {
		t.Fatal("still holding exact samples past ExactSamples")
	}
	slices.Sort(all)
	got := d.summary()
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"median", got.Median, Percentile(all, 50)}, {"p90", got.P90, Percentile(all, 90)}, {"p99", got.P99, Percentile(all, 99)}} {
		if math.Abs(c.got-c.want)/c.want > 2*HistogramRelError {
			t.Errorf("%s %g, exact %g (relative error %.2g > %.2g)", c.name, c.got, c.want, math.Abs(c.got-c.want)/c.want, 2*HistogramRelError)
		}
	}
	if got.Min != all[0] || got.Max != all[n-1] || got.Count != n {
		t.Errorf("min/max/count %+v", got)
	}
	cs := d.chartSamples(100)
	if len(cs) != 100 || !slices.IsSorted(cs) {
		t.Errorf("chart samples %v", cs)
	}
}

func TestBucketRoundTrip(t *testing.T) {
	for _, v := range []float64{1e-9, 1e-6, 0.0123, 0.5, 1, 3.7, 1000} {
		m := mid(bucket(v))
		if math.Abs(m-v)/v > HistogramRelError {
			t.Errorf("value %g lands in bucket with midpoint %g", v, m)
		}
	}
}

// A million requests of 100 tokens: the aggregator's memory stays bounded.
func BenchmarkAggregatorAdd(b *testing.B) {
	itl := slices.Repeat([]time.Duration{10 * time.Millisecond}, 99)
	r := ok(time.Now(), 50*time.Millisecond, 1040*time.Millisecond, 100, itl...)
	a := NewAggregator(SLO{TTFT: time.Second})
	b.ReportAllocs()
	for b.Loop() {
		a.Add(r)
	}
	a.Close()
}
