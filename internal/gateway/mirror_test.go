package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/shadow"
	"github.com/modelship/modelship/internal/testenv"
	"github.com/modelship/modelship/suite"
)

// fakeShadow samples every request and keeps what it is offered.
type fakeShadow struct {
	opt shadow.Options

	mu      sync.Mutex
	offered []shadow.Exchange
	skipped int
	closed  bool
}

func (f *fakeShadow) Sample() bool { return true }

func (f *fakeShadow) Offer(ex shadow.Exchange) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		panic("Offer after Close")
	}
	f.offered = append(f.offered, ex)
	return true
}

func (f *fakeShadow) Skip() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.skipped++
}

func (f *fakeShadow) Report() shadow.Report {
	f.mu.Lock()
	defer f.mu.Unlock()
	return shadow.Report{Upstream: f.opt.Upstream, Percent: f.opt.Percent, Offered: uint64(len(f.offered)), Skipped: uint64(f.skipped)}
}

func (f *fakeShadow) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
}

func (f *fakeShadow) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

func (f *fakeShadow) counts() (offered, skipped int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.offered), f.skipped
}

// echoRelease answers "stable:" and the request body's length and
// SHA-256 (the whole body for short ones).
func echoRelease(t *testing.T) string {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if len(b) > 100 {
			fmt.Fprintf(w, "stable:%d:%x", len(b), sha256.Sum256(b))
			return
		}
		w.Header().Set("X-Release", "stable")
		fmt.Fprintf(w, "stable:%s", b)
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

func post(t *testing.T, u string, body io.Reader) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, body)
	req.Header.Set("X-Test", "mirror")
	return send(t, http.DefaultClient, req)
}

func TestShadowMirrorsSampledExchanges(t *testing.T) {
	fake := &fakeShadow{}
	stable, cand := echoRelease(t), named(t, "candidate")
	gw := startGateway(t, Options{Upstream: stable, NewShadow: func(o shadow.Options) (Shadower, error) { fake.opt = o; return fake, nil }})
	ctx := context.Background()
	checks := []suite.TextCheck{{Case: "capital", Prompt: "What is the capital of France?",
		Assertions: []suite.TextAssertion{{Kind: "icontains", Value: []byte(`"paris"`)}}}}
	rep, err := gw.client.SetShadow(ctx, ShadowRequest{Upstream: cand, Percent: 100, Queue: 8, Checks: checks})
	if err != nil || rep.Upstream != cand || fake.opt.Queue != 8 || fake.opt.Percent != 100 || fake.opt.Check == nil {
		t.Fatalf("start: %+v %v (options %+v)", rep, err, fake.opt)
	}
	// The suite's assertions reached the mirror: they judge by prompt.
	for _, c := range []struct {
		prompt, answer  string
		checked, failed bool
	}{{"What is the capital of France?", "Paris", true, false}, {"What is the capital of France?", "Rome", true, true}, {"hi", "x", false, false}} {
		if checked, err := fake.opt.Check(c.prompt, c.answer); checked != c.checked || (err != nil) != c.failed {
			t.Errorf("Check(%q, %q) = %v, %v", c.prompt, c.answer, checked, err)
		}
	}
	if st, _ := gw.client.State(ctx); st.Shadow == nil || st.Shadow.Upstream != cand || st.Shadow.Percent != 100 {
		t.Fatalf("state: %+v", st.Shadow)
	}
	code, body := post(t, gw.url+"/v1/chat/completions?x=1", strings.NewReader(`{"prompt":"hi"}`))
	if code != 200 || body != `stable:{"prompt":"hi"}` {
		t.Fatalf("the client got %d %q", code, body)
	}
	testenv.Eventually(t, 10*time.Second, "the exchange offered", func() bool { n, _ := fake.counts(); return n == 1 })
	ex := fake.offered[0]
	if ex.Method != "POST" || ex.Path != "/v1/chat/completions?x=1" || string(ex.Body) != `{"prompt":"hi"}` || ex.Header.Get("X-Test") != "mirror" ||
		ex.Status != 200 || string(ex.Response) != body || ex.Truncated || ex.TTFB <= 0 || ex.Total < ex.TTFB {
		t.Fatalf("offered %+v", ex)
	}

	// Too large to mirror: skipped, and proxied whole, with a known
	// length and chunked.
	big := bytes.Repeat([]byte("0123456789abcdef"), 2<<20/16)
	want := fmt.Sprintf("stable:%d:%x", len(big), sha256.Sum256(big))
	for i, r := range []io.Reader{bytes.NewReader(big), io.MultiReader(bytes.NewReader(big))} {
		if code, body := post(t, gw.url+"/v1/completions", r); code != 200 || body != want {
			t.Fatalf("2 MiB body %d: the client got %d %.80q", i, code, body)
		}
	}
	testenv.Eventually(t, 10*time.Second, "two skips", func() bool { n, s := fake.counts(); return n == 1 && s == 2 })

	rep, err = gw.client.SetShadow(ctx, ShadowRequest{Percent: 0})
	if err != nil || rep.Offered != 1 || rep.Skipped != 2 || !fake.isClosed() {
		t.Fatalf("stop: %+v %v, closed %v", rep, err, fake.isClosed())
	}
	var ae *APIError
	if _, err := gw.client.ShadowReport(ctx); !errors.As(err, &ae) || ae.Status != 404 {
		t.Fatalf("report with no shadow: %v", err)
	}
	post(t, gw.url+"/v1/completions", strings.NewReader("after"))
	if n, _ := fake.counts(); n != 1 {
		t.Fatalf("offered after the shadow stopped: %d", n)
	}
}

// A response longer than shadow.MaxCapture is captured up to it, Truncated;
// the client gets it whole.
func TestShadowTruncatesLongAnswers(t *testing.T) {
	long := strings.Repeat("x", shadow.MaxCapture+10)
	stable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, long) }))
	defer stable.Close()
	fake := &fakeShadow{}
	gw := startGateway(t, Options{Upstream: stable.URL, NewShadow: func(o shadow.Options) (Shadower, error) { return fake, nil }})
	if _, err := gw.g.SetShadow(ShadowRequest{Upstream: named(t, "c"), Percent: 50}); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, gw.url+"/v1/models"); code != 200 || body != long {
		t.Fatalf("the client got %d and %d bytes", code, len(body))
	}
	testenv.Eventually(t, 10*time.Second, "the exchange offered", func() bool { n, _ := fake.counts(); return n == 1 })
	if ex := fake.offered[0]; len(ex.Response) != shadow.MaxCapture || !ex.Truncated || ex.Body != nil || ex.Method != "GET" {
		t.Fatalf("offered %d bytes, truncated %v, body %q", len(ex.Response), ex.Truncated, ex.Body)
	}
}

func TestShadowRefusals(t *testing.T) {
	stable := named(t, "stable")
	gw := startGateway(t, Options{Upstream: stable})
	ctx := context.Background()
	var ae *APIError
	if _, err := gw.client.SetShadow(ctx, ShadowRequest{Upstream: named(t, "c"), Percent: 10}); !errors.As(err, &ae) || ae.Status != 501 || ae.Message != "shadow traffic not available in this build" {
		t.Fatalf("no NewShadow: %v", err)
	}
	fake := &fakeShadow{}
	gw = startGateway(t, Options{Upstream: stable, NewShadow: func(o shadow.Options) (Shadower, error) { return fake, nil }})
	for _, tc := range []struct {
		req    ShadowRequest
		status int
		want   string
	}{
		{ShadowRequest{Upstream: stable, Percent: 10}, 400, "field upstream: " + stable + " is the active release"},
		{ShadowRequest{Upstream: named(t, "c"), Percent: 101}, 400, "field percent: 101 is not between 0 and 100"},
		{ShadowRequest{Upstream: named(t, "c"), Percent: 10, Queue: -1}, 400, "field queue: -1 is negative"},
		{ShadowRequest{Percent: 0}, 404, "no shadow is running"},
		{ShadowRequest{Upstream: named(t, "c"), Percent: 10, Checks: []suite.TextCheck{{Case: "x", Prompt: "p",
			Assertions: []suite.TextAssertion{{Kind: "regex", Value: []byte(`"("`)}}}}}, 400, `field checks: checks[0] (case "x"): assertions[0]: regex "(" does not compile`},
	} {
		_, err := gw.client.SetShadow(ctx, tc.req)
		if !errors.As(err, &ae) || ae.Status != tc.status || !strings.Contains(ae.Message, tc.want) {
			t.Errorf("%+v: %v, want %d %q", tc.req, err, tc.status, tc.want)
		}
	}
	if _, err := gw.client.SetShadow(ctx, ShadowRequest{Upstream: named(t, "c"), Percent: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := gw.client.SetShadow(ctx, ShadowRequest{Upstream: named(t, "d"), Percent: 10}); !errors.As(err, &ae) || ae.Status != 409 || !strings.Contains(ae.Message, "a shadow is already running") {
		t.Fatalf("a second shadow: %v", err)
	}
	// A shadow alone is a rollout the operator can steer.
	if err := gw.client.SetControl(ctx, "promote"); err != nil {
		t.Fatal(err)
	}
	if st, _ := gw.client.State(ctx); st.Shadow == nil || st.Shadow.Control != "promote" || st.Canary != nil {
		t.Fatalf("state %+v %+v", st.Shadow, st.Canary)
	}
}
