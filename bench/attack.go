package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is how a Load issues requests.
type Mode string

// Load modes.
const (
	// Concurrency keeps Load.Concurrency requests in flight (closed loop):
	// each worker sends its next request when the previous one ends.
	Concurrency Mode = "concurrency"
	// Rate sends Load.Rate requests per second at even intervals (open
	// loop), whatever the server's latency.
	Rate Mode = "rate"
	// Poisson sends requests at Load.Rate per second on average, with
	// exponentially distributed gaps drawn from Load.Seed (open loop), as
	// vLLM's benchmark_serving does.
	Poisson Mode = "poisson"
)

// Load is how many requests to send and how.
type Load struct {
	Mode Mode
	// Concurrency is the number of workers in Concurrency mode. In Rate and
	// Poisson modes it caps requests in flight (0: no cap); arrivals wait
	// for a free slot, like benchmark_serving's --max-concurrency.
	Concurrency int
	// Rate is requests per second in Rate and Poisson modes.
	Rate float64
	// Requests is how many measured requests to send; with Duration set
	// too, whichever ends first. 0 with Duration: until Duration.
	Requests int
	// Duration bounds the measured phase: no request is sent after it;
	// requests in flight then finish (within the target's timeout).
	Duration time.Duration
	// Warmup requests are sent first, at the same load, and flagged
	// Result.Warmup; the measured phase starts when they have all ended.
	Warmup int
	// Seed draws the Poisson arrivals.
	Seed int64
}

// Validate checks the load and says what is wrong.
func (l Load) Validate() error {
	switch l.Mode {
	case Concurrency:
		if l.Concurrency < 1 {
			return fmt.Errorf("concurrency: expected at least 1, got %d", l.Concurrency)
		}
	case Rate, Poisson:
		if !(l.Rate > 0) || math.IsInf(l.Rate, 0) {
			return fmt.Errorf("rate: expected requests per second above 0, got %g", l.Rate)
		}
		if l.Concurrency < 0 {
			return fmt.Errorf("max concurrency: expected 0 (no cap) or more, got %d", l.Concurrency)
		}
	default:
		return fmt.Errorf("load mode: expected %q, %q or %q, got %q", Concurrency, Rate, Poisson, l.Mode)
	}
	if l.Requests < 0 || l.Warmup < 0 || l.Duration < 0 {
		return errors.New("requests, warm-up and duration must not be negative")
	}
	if l.Requests == 0 && l.Duration == 0 {
		return errors.New("load: expected a number of requests or a duration")
	}
	return nil
}

// Level is the load's figure: the concurrency, or the rate in requests/s.
func (l Load) Level() float64 {
	if l.Mode == Concurrency {
		return float64(l.Concurrency)
	}
	return l.Rate
}

// Arrivals returns the send times of an open-loop load, as offsets from the
// start: i/Rate for Rate, cumulative exponential gaps (mean 1/Rate, drawn
// from Seed) for Poisson. Each call starts the same sequence again. It
// returns nil for Concurrency mode.
func (l Load) Arrivals() func() time.Duration {
	var t float64 // seconds
	switch l.Mode {
	case Rate:
		i := 0
		return func() time.Duration {
			d := time.Duration(float64(i) / l.Rate * 1e9)
			i++
			return d
		}
	case Poisson:
		rng := rand.New(rand.NewPCG(uint64(l.Seed), 0x5041495353304e))
		return func() time.Duration {
			t += rng.ExpFloat64() / l.Rate
			return time.Duration(t * 1e9)
		}
	}
	return nil
}

// Progress is reported after each result.
type Progress struct {
	Warmup  bool          // in the warm-up phase
	Done    int           // requests ended in this phase
	Failed  int           // of which failed
	Total   int           // requests in this phase; 0 when by duration only
	Elapsed time.Duration // since this phase started
	Limit   time.Duration // the phase's duration limit; 0 when by count
}

// Attack runs load against the client's target with prompts (used in turn,
// request i sending prompts[i % len]) and streams each result on the
// returned channel, closed when the run ends. Cancelling ctx stops sending
// and aborts requests in flight; aborted requests are not reported.
// progress, when not nil, is called after each result from a single
// goroutine. The consumer must keep reading: a full channel delays workers.
func (c *Client) Attack(ctx context.Context, prompts []Prompt, l Load, progress func(Progress)) (<-chan *Result, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	if len(prompts) == 0 {
		return nil, errors.New("no prompts")
	}
	bodies := make([][]byte, len(prompts))
	maxTok := make([]int, len(prompts))
	for i := range prompts {
		bodies[i] = c.Body(&prompts[i])
		maxTok[i] = c.t.MaxTokens
		if prompts[i].MaxTokens > 0 {
			maxTok[i] = prompts[i].MaxTokens
		}
	}
	raw := make(chan *Result, 1024)
	out := make(chan *Result, 1024)
	a := &attack{c: c, l: l, bodies: bodies, maxTok: maxTok, raw: raw}
	go func() {
		defer close(raw)
		if l.Warmup > 0 {
			a.phase(ctx, true, l.Warmup, 0)
		}
		if ctx.Err() == nil {
			a.phase(ctx, false, l.Requests, l.Duration)
		}
	}()
	go func() {
		defer close(out)
		var p Progress
		phaseStart := time.Now()
		for r := range raw {
			switch r {
			case warmupStarts:
				p, phaseStart = Progress{Warmup: true, Total: l.Warmup}, time.Now()
				continue
			case runStarts:
				p, phaseStart = Progress{Total: l.Requests, Limit: l.Duration}, time.Now()
				continue
			}
			if progress != nil {
				p.Done++
				if !r.OK() {
					p.Failed++
				}
				p.Elapsed = time.Since(phaseStart)
				progress(p)
			}
			out <- r
		}
	}()
	return out, nil
}

// Attack is NewClient and Client.Attack in one call.
func Attack(ctx context.Context, t Target, prompts []Prompt, l Load, progress func(Progress)) (<-chan *Result, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	c, err := NewClient(t, max(l.Concurrency, 64))
	if err != nil {
		return nil, err
	}
	return c.Attack(ctx, prompts, l, progress)
}

// Phase markers on the raw channel, for progress.
var warmupStarts, runStarts = new(Result), new(Result)

type attack struct {
	c      *Client
	l      Load
	bodies [][]byte
	maxTok []int
	raw    chan *Result
	seq    atomic.Int64
}

// phase sends n requests (0: unlimited) for at most limit (0: unlimited)
// and waits for them all.
func (a *attack) phase(ctx context.Context, warmup bool, n int, limit time.Duration) {
	if warmup {
		a.raw <- warmupStarts
	} else {
		a.raw <- runStarts
	}
	pctx := ctx
	var stop context.CancelFunc = func() {}
	if limit > 0 {
		// Stops issuing at the limit; in-flight requests keep ctx.
		pctx, stop = context.WithTimeout(ctx, limit)
	}
	defer stop()
	var issued atomic.Int64
	take := func() (int, bool) {
		if pctx.Err() != nil {
			return 0, false
		}
		k := issued.Add(1)
		if n > 0 && k > int64(n) {
			return 0, false
		}
		return int(a.seq.Add(1) - 1), true
	}
	var wg sync.WaitGroup
	if a.l.Mode == Concurrency {
		workers := a.l.Concurrency
		if n > 0 {
			workers = min(workers, n)
		}
		for range workers {
			wg.Go(func() {
				for {
					seq, ok := take()
					if !ok {
						return
					}
					a.one(ctx, seq, warmup)
				}
			})
		}
		wg.Wait()
		return
	}
	var slots chan struct{}
	if a.l.Concurrency > 0 {
		slots = make(chan struct{}, a.l.Concurrency)
	}
	next := a.l.Arrivals()
	start := time.Now()
	timer := time.NewTimer(0)
	<-timer.C
	defer timer.Stop()
loop:
	for {
		at := start.Add(next())
		if d := time.Until(at); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-pctx.Done():
				break loop
			}
		}
		if slots != nil {
			select {
			case slots <- struct{}{}:
			case <-pctx.Done():
				break loop
			}
		}
		seq, ok := take()
		if !ok {
			if slots != nil {
				<-slots
			}
			break
		}
		wg.Go(func() {
			a.one(ctx, seq, warmup)
			if slots != nil {
				<-slots
			}
		})
	}
	wg.Wait()
}

// one sends request seq and reports it unless ctx aborted it.
func (a *attack) one(ctx context.Context, seq int, warmup bool) {
	i := seq % len(a.bodies)
	r := &Result{Seq: seq, Warmup: warmup, Load: a.l.Level()}
	if a.c.do(ctx, a.bodies[i], a.maxTok[i], r) {
		a.raw <- r
	}
}
