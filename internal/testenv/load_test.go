package testenv

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestLoadLoopCountsFailures runs the load loop against a server that
// answers every third request with a 503: the loop counts every request the
// server saw, the 503s as failures with their status and body.
func TestLoadLoopCountsFailures(t *testing.T) {
	var seen, refused atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/completions" || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		if seen.Add(1)%3 == 0 {
			refused.Add(1)
			http.Error(w, "loading", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"choices":[{"text":"Paris"}]}`))
	}))
	defer ts.Close()

	l := LoadLoop(ts.URL, 3)
	sent, took := l.During(30, func() { l.WaitMore(60) })
	reqs, fails, errs := l.Stop()
	if sent < 60 || took <= 0 {
		t.Errorf("During: %d requests in %s, want at least 60", sent, took)
	}
	if reqs != seen.Load() || fails != refused.Load() || reqs < 90 {
		t.Errorf("counted %d requests, %d failed; the server saw %d, refused %d", reqs, fails, seen.Load(), refused.Load())
	}
	if len(errs) != maxErrs || !strings.HasPrefix(errs[0], "status 503: loading") {
		t.Errorf("first failures %q, want %d naming status 503 and the body", errs, maxErrs)
	}
	// A stopped loop sends nothing more.
	if n := seen.Load(); n != reqs {
		t.Errorf("the server saw %d requests after Stop, %d counted", n, reqs)
	}
}

// TestLoadLoopRefused: with nothing listening every request is a failure.
func TestLoadLoopRefused(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	url := ts.URL
	ts.Close()
	l := LoadLoop(url, 2)
	l.Wait(10)
	reqs, fails, errs := l.Stop()
	if fails != reqs || len(errs) == 0 || !strings.Contains(errs[0], "refused") {
		t.Errorf("%d of %d requests failed, errors %q; want all refused", fails, reqs, errs)
	}
}

// recordTB records what a helper logs and reports as errors.
type recordTB struct {
	testing.TB
	logs, errs []string
}

func (r *recordTB) Helper() {}
func (r *recordTB) Logf(format string, a ...any) {
	r.logs = append(r.logs, fmt.Sprintf(format, a...))
}
func (r *recordTB) Errorf(format string, a ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, a...))
}

// UnderLoad runs the step under the load loop, logs the counts with the
// step's figures, and fails the test only when a request failed.
func TestUnderLoad(t *testing.T) {
	var seen, refused atomic.Int64
	var refuse atomic.Bool
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen.Add(1)%3 == 0 && refuse.Load() {
			refused.Add(1)
			http.Error(w, "loading", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"choices":[{"text":"Paris"}]}`))
	}))
	defer ts.Close()
	step := func() string {
		for n := seen.Load() + 60; seen.Load() < n; {
			time.Sleep(time.Millisecond)
		}
		return "ready after 1s"
	}
	for _, failing := range []bool{false, true} {
		seen.Store(0)
		refused.Store(0)
		refuse.Store(failing)
		rec := &recordTB{TB: t}
		got := UnderLoad(rec, ts.URL, 3, 30, "test deploy", step)
		if got.During < 60 || got.Requests != seen.Load() || got.Failures != refused.Load() || (got.Failures > 0) != failing {
			t.Errorf("failing %v: %+v; the server saw %d, refused %d", failing, got, seen.Load(), refused.Load())
		}
		want := fmt.Sprintf("test deploy under load: %d requests during the ", got.During)
		if len(rec.logs) != 1 || !strings.HasPrefix(rec.logs[0], want) ||
			!strings.HasSuffix(rec.logs[0], fmt.Sprintf("(%d in all), %d failed; ready after 1s", got.Requests, got.Failures)) {
			t.Errorf("failing %v: logged %q, want %q...", failing, rec.logs, want)
		}
		wantErr := fmt.Sprintf("test deploy: %d of %d requests failed, want 0: [\"status 503: loading", got.Failures, got.Requests)
		if failing != (len(rec.errs) == 1) || failing && !strings.HasPrefix(rec.errs[0], wantErr) {
			t.Errorf("failing %v: errors %q, want %q...", failing, rec.errs, wantErr)
		}
	}
}
