package testenv

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Load is a load loop: worker goroutines send requests one after the other,
// without pause and without retries, until Stop. It counts every request
// sent and every failure, and keeps the first few failures' messages.
type Load struct {
	requests, failures atomic.Int64
	stop               chan struct{}
	wg                 sync.WaitGroup
	mu                 sync.Mutex
	firstErrs          []string
}

// maxErrs is how many failure messages a Load keeps.
const maxErrs = 5

// StartLoad starts workers goroutines, each calling send(worker, i) for its
// i-th request (from 0) until Stop. A request counts once send returns; a
// non-nil error counts it as a failure.
func StartLoad(workers int, send func(worker, i int) error) *Load {
	l := &Load{stop: make(chan struct{})}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				err := send(w, i)
				l.requests.Add(1)
				if err != nil {
					l.failures.Add(1)
					l.mu.Lock()
					if len(l.firstErrs) < maxErrs {
						l.firstErrs = append(l.firstErrs, err.Error())
					}
					l.mu.Unlock()
				}
			}
		}()
	}
	return l
}

// LoadLoop sends completions (model "current", a fixed prompt, 4 tokens)
// to url+"/v1/completions" from workers goroutines without pause until
// Stop. Anything but a complete 200 is a failure; a refused connection
// too.
func LoadLoop(url string, workers int) *Load {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	body := `{"model":"current","prompt":"What is the capital of France?","max_tokens":4}`
	return StartLoad(workers, func(int, int) error {
		resp, err := hc.Post(url+"/v1/completions", "application/json", strings.NewReader(body))
		if err != nil {
			return err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("status %d: %.200s", resp.StatusCode, b)
		}
		return err
	})
}

// Requests is the number of requests sent so far.
func (l *Load) Requests() int64 { return l.requests.Load() }

// Failures is the number of requests failed so far.
func (l *Load) Failures() int64 { return l.failures.Load() }

// Wait blocks until n requests in all were sent.
func (l *Load) Wait(n int64) {
	for l.requests.Load() < n {
		time.Sleep(time.Millisecond)
	}
}

// WaitMore blocks until n more requests were sent.
func (l *Load) WaitMore(n int64) { l.Wait(l.requests.Load() + n) }

// During runs step while the load runs, once warm requests in all were
// sent (the loop at steady state), and returns how many requests were sent
// while step ran and how long it took.
func (l *Load) During(warm int64, step func()) (requests int64, took time.Duration) {
	l.Wait(warm)
	before := l.requests.Load()
	t0 := time.Now()
	step()
	took = time.Since(t0)
	return l.requests.Load() - before, took
}

// Stop stops the workers, waits for their last requests and returns the
// counts and the first failures' messages.
func (l *Load) Stop() (requests, failures int64, errs []string) {
	close(l.stop)
	l.wg.Wait()
	return l.requests.Load(), l.failures.Load(), l.firstErrs
}

// Loaded is what UnderLoad measured.
type Loaded struct {
	// During is how many requests were sent while the step ran, Took how
	// long it ran.
	During int64
	Took   time.Duration
	// Requests and Failures are the counts in all, the warm-up included.
	Requests, Failures int64
}

// UnderLoad runs step (a deploy, with whatever it checks) while a load
// loop (LoadLoop) of workers sends requests to url, once warm requests in
// all were sent (the loop at steady state; 0: at once). Then it stops the
// loop, logs "WHAT under load: N requests during the T deploy (M in all),
// F failed", followed by what step returned (its own figures; "" for
// none), and fails the test when any request failed: no deploy, and no
// rollback, may lose one. A step that ends the test (t.Fatal) stops the
// loop too.
func UnderLoad(t testing.TB, url string, workers int, warm int64, what string, step func() string) Loaded {
	t.Helper()
	l := LoadLoop(url, workers)
	stopped := false
	defer func() {
		if !stopped {
			l.Stop()
		}
	}()
	var figures string
	during, took := l.During(warm, func() { figures = step() })
	reqs, fails, errs := l.Stop()
	stopped = true
	if figures != "" {
		figures = "; " + figures
	}
	t.Logf("%s under load: %d requests during the %s deploy (%d in all), %d failed%s", what, during, took.Round(time.Millisecond), reqs, fails, figures)
	if fails != 0 {
		t.Errorf("%s: %d of %d requests failed, want 0: %q", what, fails, reqs, errs)
	}
	return Loaded{During: during, Took: took, Requests: reqs, Failures: fails}
}

// Version is what the deploy tests read of a release's GET /version
// (modelship serve's, through whatever routes to it).
type Version struct {
	Digest string `json:"digest"`
	Image  string `json:"image"`
	Engine string `json:"engine"`
	// EngineArgv is the engine's command line in the container.
	EngineArgv []string `json:"engine_argv"`
}

// GetVersion reads GET base/version.
func GetVersion(t testing.TB, base string) Version {
	t.Helper()
	resp, err := http.Get(base + "/version")
	if err != nil {
		t.Fatalf("GET /version: %v", err)
	}
	defer resp.Body.Close()
	var v Version
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("GET /version: %v", err)
	}
	return v
}

// RolledBack checks that a deploy of the regressed test model failed the way
// every target must fail it: verify caught the wrong answer ("Paris"
// missing), traffic went back to the previous release and that release was
// verified again. (That no request failed meanwhile, UnderLoad checks.)
func RolledBack(t testing.TB, err error, previous string) {
	t.Helper()
	if err == nil {
		t.Fatal("deploy of the regressed model succeeded, want verify to fail")
	}
	msg := err.Error()
	for _, want := range []string{"verify failed", "Paris", "traffic switched back to " + previous, previous + " verified again"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
}

// CheckAPIKey checks that the endpoint at base answers GET /v1/models only
// with the API key: 401 without one or with a wrong one, 200 with
// "Authorization: Bearer KEY".
func CheckAPIKey(t testing.TB, base, key string) {
	t.Helper()
	for _, c := range []struct {
		auth string
		want int
	}{{"", http.StatusUnauthorized}, {"Bearer wrong-" + key, http.StatusUnauthorized}, {"Bearer " + key, http.StatusOK}} {
		req, _ := http.NewRequest("GET", base+"/v1/models", nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("GET %s/v1/models with %s: %d, want %d", base, map[bool]string{true: "no key", false: "a key"}[c.auth == ""], resp.StatusCode, c.want)
		}
	}
}
