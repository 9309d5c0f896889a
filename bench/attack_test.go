package bench_test

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelship/modelship/bench"
	"github.com/modelship/modelship/bench/metrics"
	"github.com/modelship/modelship/internal/sim"
	"github.com/modelship/modelship/internal/testenv"
)

const goodModel = "../testdata/models/good"

// collect(t)(bench.Attack(...)) reads every result of a run.
func collect(t *testing.T) func(<-chan *bench.Result, error) []*bench.Result {
	return func(ch <-chan *bench.Result, err error) []*bench.Result {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var out []*bench.Result
		for r := range ch {
			out = append(out, r)
		}
		return out
	}
}

func prompts(t *testing.T) []bench.Prompt {
	t.Helper()
	ps, err := bench.LoadPrompts("../testdata/prompts/benchmark_prompts.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// fixedLatency sets the simulator to exact TTFT and ITL, no jitter.
func fixedLatency(ttftMS, itlMS float64) func(*sim.Table) {
	return func(tb *sim.Table) { tb.Latency = sim.Latency{TTFTms: ttftMS, ITLms: itlMS} }
}

func TestAttackSim(t *testing.T) {
	url := testenv.Sim(t, goodModel, fixedLatency(2, 1))
	for _, api := range []bench.API{bench.Chat, bench.Completions} {
		t.Run(string(api), func(t *testing.T) {
			var calls atomic.Int64
			rs := collect(t)(bench.Attack(context.Background(), bench.Target{Endpoint: url, Model: "good", API: api, MaxTokens: 8},
				prompts(t), bench.Load{Mode: bench.Concurrency, Concurrency: 4, Requests: 30, Warmup: 3}, func(p bench.Progress) { calls.Add(1) }))
			if len(rs) != 33 || calls.Load() != 33 {
				t.Fatalf("%d results, %d progress calls, want 33", len(rs), calls.Load())
			}
			seqs := map[int]bool{}
			warm := 0
			for _, r := range rs {
				if !r.OK() {
					t.Fatalf("request %d failed: %s", r.Seq, r.Error)
				}
				if !r.UsageReported || r.OutputTokens < 1 || r.OutputTokens > 8 || r.InputTokens < 1 || r.Load != 4 {
					t.Errorf("result %+v", r)
				}
				if r.Warmup {
					warm++
					if r.Seq >= 3 {
						t.Errorf("warm-up request has seq %d", r.Seq)
					}
				}
				seqs[r.Seq] = true
			}
			if warm != 3 || len(seqs) != 33 {
				t.Errorf("%d warm-up, %d distinct seqs", warm, len(seqs))
			}
			s := metrics.NewAggregator(metrics.SLO{})
			for _, r := range rs {
				s.Add(r)
			}
			sum := s.Close()
			if sum.Requests != 30 || sum.Succeeded != 30 || sum.TTFT.Count != 30 {
				t.Errorf("summary counts warm-up: %+v", sum)
			}
		})
	}
}

// inflight counts requests in flight at the server and the most seen.
type inflight struct {
	now, peak atomic.Int64
	total     atomic.Int64
	hold      time.Duration
}

func (f *inflight) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	n := f.now.Add(1)
	f.total.Add(1)
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(f.hold)
	f.now.Add(-1)
	w.Header().Set("Content-Type", "text/event-stream")
	io.WriteString(w, `data: {"choices":[{"delta":{"content":"x"}}]}`+"\n\ndata: [DONE]\n\n")
}

func TestConcurrencyBounded(t *testing.T) {
	for _, l := range []bench.Load{
		{Mode: bench.Concurrency, Concurrency: 3, Requests: 40},
		{Mode: bench.Rate, Rate: 2000, Concurrency: 2, Requests: 40},
		{Mode: bench.Poisson, Rate: 2000, Concurrency: 5, Requests: 40, Seed: 1},
	} {
		t.Run(string(l.Mode), func(t *testing.T) {
			f := &inflight{hold: 5 * time.Millisecond}
			ts := httptest.NewServer(f)
			defer ts.Close()
			rs := collect(t)(bench.Attack(context.Background(), bench.Target{Endpoint: ts.URL}, []bench.Prompt{{Text: "x"}}, l, nil))
			if len(rs) != 40 || f.total.Load() != 40 {
				t.Fatalf("%d results, %d requests served, want 40", len(rs), f.total.Load())
			}
			if p := f.peak.Load(); p > int64(l.Concurrency) || p < 2 {
				t.Errorf("peak in flight %d, want 2..%d", p, l.Concurrency)
			}
		})
	}
}

func TestPoissonArrivals(t *testing.T) {
	const rate, n = 50.0, 20000
	l := bench.Load{Mode: bench.Poisson, Rate: rate, Seed: 42}
	next := l.Arrivals()
	var prev time.Duration
	var sum, sumsq float64
	gaps := make([]float64, n)
	for i := range gaps {
		at := next()
		g := (at - prev).Seconds()
		prev = at
		gaps[i] = g
		sum += g
		sumsq += g * g
	}
	mean := sum / n
	sd := math.Sqrt(sumsq/n - mean*mean)
	// Exponential: mean = sd = 1/rate. Standard error of the mean is
	// (1/rate)/sqrt(n) = 0.7%; allow 4 of them.
	if math.Abs(mean*rate-1) > 0.03 || math.Abs(sd*rate-1) > 0.05 {
		t.Errorf("mean gap %.5f s, sd %.5f s; want both near %.5f", mean, sd, 1/rate)
	}
	// Memorylessness: P(gap > 1/rate) = e^-1.
	over := 0
	for _, g := range gaps {
		if g > 1/rate {
			over++
		}
	}
	if p := float64(over) / n; math.Abs(p-math.Exp(-1)) > 0.02 {
		t.Errorf("P(gap > mean) = %.3f, want %.3f", p, math.Exp(-1))
	}
	// Same seed, same schedule; another seed, another one.
	a, b, c := l.Arrivals(), l.Arrivals(), bench.Load{Mode: bench.Poisson, Rate: rate, Seed: 43}.Arrivals()
	same := true
	for range 100 {
		x, y, z := a(), b(), c()
		if x != y {
			t.Fatal("same seed gave different schedules")
		}
		same = same && x == z
	}
	if same {
		t.Error("different seeds gave the same schedule")
	}
	// Constant rate: even gaps.
	r := bench.Load{Mode: bench.Rate, Rate: 4}.Arrivals()
	for i := range 5 {
		if got, want := r(), time.Duration(i)*250*time.Millisecond; got != want {
			t.Errorf("arrival %d at %v, want %v", i, got, want)
		}
	}
}

func TestCancelAbortsInFlight(t *testing.T) {
	started := make(chan struct{}, 100)
	var aborted atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		started <- struct{}{}
		<-r.Context().Done()
		aborted.Add(1)
	}))
	defer ts.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := bench.Attack(ctx, bench.Target{Endpoint: ts.URL, Timeout: time.Minute}, []bench.Prompt{{Text: "x"}},
		bench.Load{Mode: bench.Concurrency, Concurrency: 4, Requests: 1000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		<-started
	}
	cancel()
	n := 0
	for range ch {
		n++
	}
	if n != 0 {
		t.Errorf("%d aborted requests reported as results", n)
	}
	ts.Close() // waits for the handlers, which end when the client aborts
	if aborted.Load() != 4 {
		t.Errorf("%d requests aborted at the server, want 4", aborted.Load())
	}
}

func TestDurationAndRate(t *testing.T) {
	url := testenv.Sim(t, goodModel, fixedLatency(0, 0))
	rs := collect(t)(bench.Attack(context.Background(), bench.Target{Endpoint: url, MaxTokens: 4}, prompts(t),
		bench.Load{Mode: bench.Rate, Rate: 200, Duration: 200 * time.Millisecond}, nil))
	// 200/s for 0.2 s: about 40 requests; arrivals at 0, 5 ms, ... stop at
	// the limit, so never more than 41.
	if len(rs) < 5 || len(rs) > 41 {
		t.Errorf("%d requests in 200ms at 200/s", len(rs))
	}
	for _, r := range rs {
		if !r.OK() {
			t.Errorf("%+v", r)
		}
	}
}

func TestLoadValidate(t *testing.T) {
	bad := []bench.Load{
		{},
		{Mode: "burst", Requests: 1},
		{Mode: bench.Concurrency, Requests: 1},
		{Mode: bench.Rate, Requests: 1},
		{Mode: bench.Poisson, Rate: math.Inf(1), Requests: 1},
		{Mode: bench.Rate, Rate: 1, Concurrency: -1, Requests: 1},
		{Mode: bench.Concurrency, Concurrency: 1},
		{Mode: bench.Concurrency, Concurrency: 1, Requests: -1},
	}
	for _, l := range bad {
		if err := l.Validate(); err == nil {
			t.Errorf("%+v: no error", l)
		}
	}
	if _, err := bench.Attack(context.Background(), bench.Target{Endpoint: "http://x"}, nil, bench.Load{Mode: bench.Concurrency, Concurrency: 1, Requests: 1}, nil); err == nil {
		t.Error("no prompts: no error")
	}
}

func TestSimFailures(t *testing.T) {
	// A quarter of the simulator's requests fail with 500; the summary says so.
	_, url := testenv.SimServer(t, goodModel, fixedLatency(0, 0), sim.Options{ErrorRate: 0.25, Seed: 3})
	rs := collect(t)(bench.Attack(context.Background(), bench.Target{Endpoint: url, MaxTokens: 4}, prompts(t),
		bench.Load{Mode: bench.Concurrency, Concurrency: 2, Requests: 40}, nil))
	s := metrics.NewAggregator(metrics.SLO{})
	for _, r := range rs {
		s.Add(r)
	}
	sum := s.Close()
	if sum.Failures[bench.ErrHTTP5xx] != 10 || sum.Succeeded != 30 || sum.ErrorRate != 0.25 {
		t.Errorf("failures %v, succeeded %d, error rate %g", sum.Failures, sum.Succeeded, sum.ErrorRate)
	}
}

// TestMockLLM runs against @dwmkerr/mock-llm, a server that is not ours. It
// streams its reply in 50-character chunks 50 ms apart and sends no usage,
// so output tokens are counted chunks and ITL is about 50 ms.
func TestMockLLM(t *testing.T) {
	url := testenv.MockLLM(t)
	long := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 4) // 180 characters: 4 chunks
	rs := collect(t)(bench.Attack(context.Background(), bench.Target{Endpoint: url, Model: "gpt-4o", Timeout: 10 * time.Second},
		[]bench.Prompt{{Messages: []bench.Message{{Role: "user", Content: long}}}}, bench.Load{Mode: bench.Concurrency, Concurrency: 2, Requests: 4}, nil))
	for _, r := range rs {
		if !r.OK() {
			t.Fatalf("%+v", r)
		}
		if r.UsageReported || r.NotStreamed || r.OutputTokens != 4 || len(r.ITL) != 3 {
			t.Errorf("%+v", r)
		}
		for _, g := range r.ITL {
			if g < 40*time.Millisecond {
				t.Errorf("ITL %v below mock-llm's 50 ms chunk interval", g)
			}
		}
	}
}
