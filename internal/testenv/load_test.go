package testenv

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
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
