package notify

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// request is one request a recording server received.
type request struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

// recorder is an httptest server that records requests and answers with
// the next status of its script (then 200).
type recorder struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []request
	script []int
}

func newRecorder(t *testing.T, script ...int) *recorder {
	r := &recorder{script: script}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, request{req.Method, req.URL.Path, req.Header.Clone(), body})
		status := http.StatusOK
		if len(r.script) > 0 {
			status, r.script = r.script[0], r.script[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(status)
		if status != http.StatusOK {
			io.WriteString(w, "scripted failure")
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.reqs...)
}

// sampleEvent is a deploy that passed, with every field set.
func sampleEvent() Event {
	return Event{
		Stage: StageDeploy, Status: StatusPassed, Release: "r-42",
		Model: "llama-3.1-8b", ModelDigest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		Image: "ghcr.io/acme/llama-serving:r-42", ImageDigest: "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210",
		GitSHA: "abc1234def5678abc1234def5678abc1234def56", Environment: "production",
		Figures: &Figures{
			Validation: &ValidationFigures{Passed: true, Verdict: "passed", Total: 50, Ok: 49, Failed: 1, PassRate: 0.98},
			Bench: &BenchFigures{Passed: true, Requests: 200, Errors: 2, ErrorRate: 0.01,
				TTFT:               Quantiles{P50: 0.05, P90: 0.08, P99: 0.12, Mean: 0.055, Count: 198},
				E2EL:               Quantiles{P50: 1.2, P90: 1.8, P99: 2.5, Mean: 1.3, Count: 198},
				OutputTokensPerSec: 1234.5, RequestsPerSec: 9.5},
		},
		RunURL:  "https://github.com/acme/models/actions/runs/123456",
		Started: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
		Time:    time.Date(2025, 3, 1, 12, 4, 30, 0, time.UTC),
		Message: "blue-green switch to green; verify passed",
	}
}

// fast is Notifier options for tests: short backoff, generous timeout.
func fast() Options {
	return Options{Timeout: 5 * time.Second, Attempts: 3, Backoff: 10 * time.Millisecond}
}

// deliver notifies s of events, one at a time, failing t on a warning, and
// returns what rec received, failing t unless that is want requests, every
// one a POST to path.
func deliver(t *testing.T, s Sink, rec *recorder, path string, want int, events ...Event) []request {
	t.Helper()
	for _, e := range events {
		if ws := notifyOne(t, s, e, fast()); len(ws) != 0 {
			t.Fatalf("warnings: %v", ws)
		}
	}
	reqs := rec.requests()
	if len(reqs) != want {
		t.Fatalf("got %d requests, want %d", len(reqs), want)
	}
	for _, r := range reqs {
		if r.Method != http.MethodPost || r.Path != path {
			t.Errorf("got %s %s, want POST %s", r.Method, r.Path, path)
		}
	}
	return reqs
}

func notifyOne(t *testing.T, s Sink, e Event, o Options) []Warning {
	t.Helper()
	n := New([]Sink{s}, o)
	defer n.Close(context.Background())
	return n.Notify(context.Background(), e)
}

// progressEvent is a canary step of sampleEvent's deploy, under way: no
// figures, and a Started a sink must not turn into a region.
func progressEvent() Event {
	e := sampleEvent()
	e.Status, e.Figures = StatusProgress, nil
	e.Time = e.Started.Add(90 * time.Second)
	e.Message = "canary-step: 25% passed: canary error rate 0.000 of 240 requests"
	return e
}
