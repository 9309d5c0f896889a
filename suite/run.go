package suite

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/modelship/modelship/internal/progress"
)

// Runner defaults.
const (
	DefaultConcurrency = 4
	DefaultTimeout     = 60 * time.Second
	DefaultRetries     = 3
	DefaultBackoff     = 250 * time.Millisecond
	maxBackoff         = 10 * time.Second
)

// Options configure Run. Zero fields take the defaults above, except
// Retries, which is used as given (0: no retries); DefaultOptions has all
// of them.
type Options struct {
	// Endpoint is the server, with or without /v1 (http://localhost:8100/v1).
	Endpoint string
	// Model is sent in every request unless a case or the suite's defaults
	// name one; when none does, the first model of GET /v1/models.
	Model string
	// APIKey, when set, is sent as a bearer token.
	APIKey string
	// Concurrency is how many requests are in flight at once.
	Concurrency int
	// Timeout bounds each request, from sending it to reading the whole
	// answer. A request that times out is the case's failure ("timeout"),
	// not retried: the server took the request and did not answer in time.
	Timeout time.Duration
	// Retries is how many times a request is sent again after a transport
	// error (refused, reset) or a 5xx, waiting Backoff, 2×Backoff, … (or the
	// server's Retry-After) in between. Nothing else is retried: not a 4xx,
	// not a malformed answer, never a failed assertion.
	Retries int
	Backoff time.Duration
	// PassThreshold, when > 0, overrides the suite's pass-threshold
	// (default 1: every case must pass).
	PassThreshold float64
	// HTTPClient, when set, sends the requests.
	HTTPClient *http.Client
	// Progress, when a terminal, shows a progress bar of requests done.
	Progress io.Writer
}

// DefaultOptions returns the defaults for endpoint.
func DefaultOptions(endpoint string) Options {
	return Options{Endpoint: endpoint, Concurrency: DefaultConcurrency, Timeout: DefaultTimeout, Retries: DefaultRetries, Backoff: DefaultBackoff}
}

// Run sends every case of s to the endpoint (each repetition a separate
// request, at most Concurrency at once), checks the answers and decides the
// verdict. It returns an error only for unusable options; an unreachable
// endpoint is an inconclusive report.
func Run(ctx context.Context, s *Suite, opt Options) (*Report, error) {
	if opt.Concurrency <= 0 {
		opt.Concurrency = DefaultConcurrency
	}
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultTimeout
	}
	if opt.Retries < 0 {
		return nil, fmt.Errorf("retries: expected 0 or more, got %d", opt.Retries)
	}
	if opt.Backoff <= 0 {
		opt.Backoff = DefaultBackoff
	}
	if opt.PassThreshold < 0 || opt.PassThreshold > 1 {
		return nil, fmt.Errorf("pass threshold: expected a fraction in (0, 1], got %g", opt.PassThreshold)
	}
	cl, err := newClient(opt.Endpoint, opt.APIKey, opt.HTTPClient, opt.Timeout)
	if err != nil {
		return nil, err
	}
	base, _ := APIBase(opt.Endpoint)
	r := &Report{
		Suite: s.File, Name: s.Name, Format: s.Format, Endpoint: base, Client: ClientLibrary,
		Started: time.Now(), PassThreshold: 1,
	}
	if s.PassThreshold > 0 {
		r.PassThreshold = s.PassThreshold
	}
	if opt.PassThreshold > 0 {
		r.PassThreshold = opt.PassThreshold
	}
	r.Cases = make([]CaseResult, len(s.Cases))
	for i, c := range s.Cases {
		kind := "chat"
		if !c.Chat() {
			kind = "completion"
		}
		r.Cases[i] = CaseResult{Name: c.Name, File: s.File, Line: c.Line, Kind: kind, Repeat: c.Repeat, PassRate: c.PassRate, Runs: make([]RunResult, c.Repeat)}
	}
	defer func() { r.Duration = Seconds(time.Since(r.Started).Seconds()) }()

	// The model: the option, else the suite's default, else the endpoint's.
	model := opt.Model
	if model == "" {
		model = s.Defaults.Model
	}
	needModel := false
	for _, c := range s.Cases {
		needModel = needModel || c.Model == ""
	}
	if model == "" && needModel {
		m, ex, attempts := retry(ctx, opt, func() (string, exchange) { return cl.firstModel(ctx) })
		if ex.outcome != gotAnswer {
			why := ex.reason
			if ex.outcome == retryable {
				why = fmt.Sprintf("endpoint unreachable after %d attempts: %s", attempts, ex.reason)
			}
			for i := range r.Cases {
				r.Cases[i].Status, r.Cases[i].Reason = StatusError, "not run: "+why
				r.Cases[i].Runs = nil
			}
			r.decide(why)
			return r, nil
		}
		model = m
	}
	r.Model = model

	type job struct{ c, run int }
	var jobs []job
	for i, c := range s.Cases {
		for k := 0; k < c.Repeat; k++ {
			jobs = append(jobs, job{i, k})
		}
	}
	var bar *progress.Bar
	if opt.Progress != nil {
		bar = progress.New(opt.Progress, "validate", int64(len(jobs)), progress.Count)
	}
	next := make(chan job)
	var wg sync.WaitGroup
	for w := 0; w < min(opt.Concurrency, len(jobs)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				c := s.Cases[j.c]
				m := model
				if c.Model != "" && opt.Model == "" {
					m = c.Model
				}
				r.Cases[j.c].Runs[j.run] = runOnce(ctx, cl, opt, c, m)
				if bar != nil {
					bar.Add(1)
				}
			}
		}()
	}
	for _, j := range jobs {
		if ctx.Err() != nil {
			break
		}
		next <- j
	}
	close(next)
	wg.Wait()
	if bar != nil {
		bar.Done()
	}

	var unreachable string
	for i, c := range s.Cases {
		cr := &r.Cases[i]
		errs := 0
		for k := range cr.Runs {
			run := &cr.Runs[k]
			if run.Status == "" { // never sent: cancelled
				run.Status, run.Error = StatusError, "not run: cancelled"
			}
			switch run.Status {
			case StatusPassed:
				cr.Passes++
			case StatusError:
				errs++
				if unreachable == "" {
					unreachable = run.Error
				}
			}
		}
		need := needed(c.Repeat, c.PassRate)
		switch {
		case cr.Passes >= need:
			cr.Status = StatusPassed
		case cr.Passes+errs < need:
			cr.Status = StatusFailed
		default:
			cr.Status = StatusError
		}
		if cr.Status != StatusPassed {
			cr.Reason = caseReason(cr, need)
		}
	}
	r.decide(unreachable)
	return r, nil
}

// caseReason is one line saying why a case did not pass.
func caseReason(cr *CaseResult, need int) string {
	p := cr.FirstProblem()
	if p == nil {
		return ""
	}
	var why string
	if p.Error != "" {
		why = p.Error
	} else {
		msgs := make([]string, len(p.Failures))
		for i, f := range p.Failures {
			msgs[i] = f.Message
		}
		why = strings.Join(msgs, "; ")
	}
	if cr.Repeat > 1 {
		return fmt.Sprintf("%d of %d runs passed, %d needed; first problem: %s", cr.Passes, cr.Repeat, need, why)
	}
	return why
}

// runOnce sends one request (retrying transport errors and 5xx) and checks
// the answer.
func runOnce(ctx context.Context, cl *client, opt Options, c *Case, model string) RunResult {
	_, ex, attempts := retry(ctx, opt, func() (struct{}, exchange) { return struct{}{}, cl.send(ctx, c, model) })
	run := RunResult{Attempts: attempts}
	switch ex.outcome {
	case aborted:
		run.Status, run.Error = StatusError, "not run: cancelled"
	case retryable:
		run.Status, run.Error, run.Body = StatusError, fmt.Sprintf("%s (after %d attempts)", ex.reason, attempts), ex.body
	case badAnswer:
		run.Status, run.Error, run.Body = StatusFailed, ex.reason, ex.body
	case gotAnswer:
		a := ex.answer
		run.Output, run.FinishReason, run.CompletionTokens, run.TokensEstimated = a.Text, a.FinishReason, a.CompletionTokens, a.TokensEstimated
		run.Latency = Seconds(a.Latency.Seconds())
		for _, as := range c.Assertions {
			if msg := as.Check(&a); msg != "" {
				run.Failures = append(run.Failures, Failure{Assertion: as.String(), Line: as.Line, Message: msg})
			}
		}
		run.Status = StatusPassed
		if len(run.Failures) > 0 {
			run.Status = StatusFailed
		}
	}
	return run
}

// retry calls f until it gives something other than a retryable outcome,
// at most 1+opt.Retries times, backing off exponentially in between.
func retry[T any](ctx context.Context, opt Options, f func() (T, exchange)) (T, exchange, int) {
	wait := opt.Backoff
	for attempt := 1; ; attempt++ {
		v, ex := f()
		if ex.outcome != retryable || attempt > opt.Retries {
			return v, ex, attempt
		}
		d := wait
		if ex.retryAfter > 0 {
			d = min(ex.retryAfter, maxBackoff*3)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			var zero T
			return zero, exchange{outcome: aborted, reason: "cancelled"}, attempt
		case <-t.C:
		}
		wait = min(wait*2, maxBackoff)
	}
}
