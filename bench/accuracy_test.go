package bench_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/modelship/modelship/bench"
	"github.com/modelship/modelship/bench/metrics"
	"github.com/modelship/modelship/internal/testenv"
)

// measure runs n requests of 8 output tokens at concurrency c against the
// simulator with fixed TTFT and ITL (no jitter) and summarises them.
func measure(tb testing.TB, ttft, itl time.Duration, c, n int) *metrics.Summary {
	tb.Helper()
	url := testenv.Sim(tb, goodModel, fixedLatency(float64(ttft)/1e6, float64(itl)/1e6))
	ch, err := bench.Attack(context.Background(), bench.Target{Endpoint: url, Model: "good", MaxTokens: 8}, []bench.Prompt{{Text: "Tell me about yourself."}},
		bench.Load{Mode: bench.Concurrency, Concurrency: c, Requests: n, Warmup: c}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	a := metrics.NewAggregator(metrics.SLO{})
	for r := range ch {
		a.Add(r)
	}
	s := a.Close()
	if s.Failed > 0 {
		tb.Fatalf("failures: %v", s.Failures)
	}
	return s
}

// TestAccuracy: against the simulator set to TTFT 50 ms and ITL 10 ms, the
// measured medians match the injected latencies. The bounds are generous
// (the machine is shared): -30% .. +30% + 40 ms.
func TestAccuracy(t *testing.T) {
	const ttft, itl = 50 * time.Millisecond, 10 * time.Millisecond
	s := measure(t, ttft, itl, 4, 16)
	check := func(name string, got float64, want time.Duration) {
		w := want.Seconds()
		if got < 0.7*w || got > 1.3*w+0.040 {
			t.Errorf("median %s %.2f ms, injected %v", name, got*1e3, want)
		}
	}
	check("TTFT", s.TTFT.Median, ttft)
	check("ITL", s.ITL.Median, itl)
	check("TPOT", s.TPOT.Median, itl)
	check("E2EL", s.E2EL.Median, ttft+7*itl)
	if s.OutputTokens != 16*8 || s.ITL.Count != 16*7 {
		t.Errorf("%d output tokens, %d ITL samples; want 128 and 112", s.OutputTokens, s.ITL.Count)
	}
}

// BenchmarkAccuracy prints the measured medians and p99s next to the
// injected latencies, and the median's error in microseconds.
func BenchmarkAccuracy(b *testing.B) {
	for _, c := range []struct{ ttft, itl time.Duration }{
		{50 * time.Millisecond, 10 * time.Millisecond},
		{200 * time.Millisecond, 25 * time.Millisecond},
		{5 * time.Millisecond, 1 * time.Millisecond},
	} {
		b.Run(fmt.Sprintf("ttft=%v/itl=%v", c.ttft, c.itl), func(b *testing.B) {
			var s *metrics.Summary
			for b.Loop() {
				s = measure(b, c.ttft, c.itl, 8, 64)
			}
			b.ReportMetric(float64(c.ttft)/1e6, "injected_ttft_ms")
			b.ReportMetric(s.TTFT.Median*1e3, "median_ttft_ms")
			b.ReportMetric(s.TTFT.P99*1e3, "p99_ttft_ms")
			b.ReportMetric((s.TTFT.Median-c.ttft.Seconds())*1e6, "ttft_err_us")
			b.ReportMetric(float64(c.itl)/1e6, "injected_itl_ms")
			b.ReportMetric(s.ITL.Median*1e3, "median_itl_ms")
			b.ReportMetric(s.ITL.P99*1e3, "p99_itl_ms")
			b.ReportMetric((s.ITL.Median-c.itl.Seconds())*1e6, "itl_err_us")
		})
	}
}
