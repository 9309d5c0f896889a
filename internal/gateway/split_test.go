package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// named is a release answering GET /ready with 200 and every other
// request with its name.
func named(t *testing.T, name string) string {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/ready" {
			return
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

// via sends GET path through the gateway with the header h: v (none when
// h is "") and returns the answer's body; anything but a 200 fails.
func via(t *testing.T, c *http.Client, base, h, v string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/models", nil)
	if h != "" {
		req.Header.Set(h, v)
	}
	code, body := send(t, c, req)
	if code != http.StatusOK {
		t.Fatalf("GET through the gateway: %d %s", code, body)
	}
	return body
}

func keepAlive(t *testing.T) *http.Client {
	c := &http.Client{Transport: &http.Transport{Proxy: nil}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func setCanary(t *testing.T, g *Gateway, up string, percent float64, sticky string) *CanaryState {
	t.Helper()
	st, err := g.SetCanary(context.Background(), CanaryRequest{Upstream: up, Percent: percent, StickyHeader: sticky})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestCanaryWeightedSplit(t *testing.T) {
	stable, cand := named(t, "stable"), named(t, "canary")
	gw := startGateway(t, Options{Upstream: stable})
	st := setCanary(t, gw.g, cand, 25, "")
	if st.Upstream != cand || st.Percent != 25 || st.Since.IsZero() {
		t.Fatalf("canary state %+v", st)
	}
	c := keepAlive(t)
	const n = 2000
	got := map[string]int{}
	for range n {
		got[via(t, c, gw.url, "", "")]++
	}
	// 25% of 2000 is 500 with a standard deviation of ~19: 400..600 is
	// more than 5 of them.
	if got["canary"] < n*20/100 || got["canary"] > n*30/100 || got["canary"]+got["stable"] != n {
		t.Fatalf("2000 requests at 25%%: %v", got)
	}
	state := gw.g.State()
	if state.Canary == nil || state.Canary.Percent != 25 || state.Upstreams[0].Percent != 75 {
		t.Fatalf("state %+v %+v", state.Canary, state.Upstreams)
	}
	for _, u := range state.Upstreams {
		if u.URL == cand && (u.Percent != 25 || u.Requests != uint64(got["canary"])) {
			t.Fatalf("canary in state: %+v, sent %d", u, got["canary"])
		}
	}
}

func TestCanaryStickyStaysAcrossSteps(t *testing.T) {
	stable, cand := named(t, "stable"), named(t, "canary")
	gw := startGateway(t, Options{Upstream: stable})
	c := keepAlive(t)
	const h = "X-Conversation-Id"
	wasOnCanary := map[string]bool{}
	for _, pct := range []float64{10, 25, 50} {
		setCanary(t, gw.g, cand, pct, h)
		onCanary := 0
		for i := range 200 {
			id := fmt.Sprintf("conversation-%d", i)
			first := via(t, c, gw.url, h, id)
			for range 4 {
				if got := via(t, c, gw.url, h, id); got != first {
					t.Fatalf("at %v%%, %s went to %s then %s", pct, id, first, got)
				}
			}
			if wasOnCanary[id] && first != "canary" {
				t.Fatalf("%s was on the canary at a smaller percent, on %s at %v%%", id, first, pct)
			}
			if first == "canary" {
				wasOnCanary[id] = true
				onCanary++
			}
		}
		if onCanary == 0 || onCanary == 200 {
			t.Fatalf("at %v%%, %d of 200 conversations on the canary", pct, onCanary)
		}
	}
}

func TestCanaryClearedAtOnce(t *testing.T) {
	stable, cand := named(t, "stable"), named(t, "canary")
	gw := startGateway(t, Options{Upstream: stable})
	c := keepAlive(t)
	setCanary(t, gw.g, cand, 100, "")
	if got := via(t, c, gw.url, "", ""); got != "canary" {
		t.Fatalf("at 100%%: %s", got)
	}
	if st := setCanary(t, gw.g, "", 0, ""); st.Percent != 0 || st.Upstream != "" {
		t.Fatalf("cleared: %+v", st)
	}
	for range 50 {
		if got := via(t, c, gw.url, "", ""); got != "stable" {
			t.Fatalf("after clearing the canary a request went to %s", got)
		}
	}
	if st := gw.g.State(); st.Canary != nil || st.Upstreams[0].Percent != 100 {
		t.Fatalf("state after clearing: %+v %+v", st.Canary, st.Upstreams)
	}
}

func TestCanaryRefusingIsRetriedOnStable(t *testing.T) {
	stable := named(t, "stable")
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	gw := startGateway(t, Options{Upstream: stable})
	no := false
	if _, err := gw.g.SetCanary(context.Background(), CanaryRequest{Upstream: gone.URL, Percent: 100, RequireReady: &no}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(gw.url+"/v1/chat/completions", "application/json", strings.NewReader(`{"prompt":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "stable" {
		t.Fatalf("a request to a canary refusing connections: %d %q", resp.StatusCode, body)
	}
	if st := gw.g.State(); st.Retries != 1 || st.Errors != 0 {
		t.Fatalf("state %+v", st)
	}
}

// The canary's requests count in flight like any upstream's: cleared, it
// drains; promoted with Switch, the split ends.
func TestCanaryDrainsAndPromotes(t *testing.T) {
	stable := named(t, "stable")
	cand := newGatedStream(t, "canary")
	gw := startGateway(t, Options{Upstream: stable})
	setCanary(t, gw.g, cand.srv.URL, 100, "")
	done := make(chan string, 1)
	go func() {
		resp, err := http.Get(gw.url + "/v1/chat/completions?stream=1")
		if err != nil {
			done <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- string(body)
	}()
	<-cand.started
	setCanary(t, gw.g, "", 0, "")
	res, err := gw.g.WaitDrained(context.Background(), cand.srv.URL, 100*time.Millisecond)
	if err != nil || res.Drained || res.InFlight != 1 {
		t.Fatalf("the canary's stream in flight: %+v %v", res, err)
	}
	close(cand.release)
	if body := <-done; !strings.Contains(body, "canary-2") {
		t.Fatalf("the stream in flight was cut: %q", body)
	}
	if res, err := gw.g.WaitDrained(context.Background(), cand.srv.URL, 10*time.Second); err != nil || !res.Drained {
		t.Fatalf("drained: %+v %v", res, err)
	}

	setCanary(t, gw.g, cand.srv.URL, 10, "")
	if _, err := gw.g.Switch(context.Background(), cand.srv.URL, true, 0); err != nil {
		t.Fatal(err)
	}
	if st := gw.g.State(); st.Canary != nil || st.Active != cand.srv.URL || st.Upstreams[0].Percent != 100 {
		t.Fatalf("after promotion: %+v", st)
	}
}

func TestCanaryRefusals(t *testing.T) {
	stable := named(t, "stable")
	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"ready":false,"check":"models","reason":"loading"}`)
	}))
	defer notReady.Close()
	gw := startGateway(t, Options{Upstream: stable})
	ctx := context.Background()
	for _, tc := range []struct {
		req    CanaryRequest
		status int
		want   string
	}{
		{CanaryRequest{Upstream: named(t, "c"), Percent: 120}, 400, "field percent: 120 is not between 0 and 100"},
		{CanaryRequest{Upstream: named(t, "c"), Percent: -1}, 400, "field percent: -1 is not between 0 and 100"},
		{CanaryRequest{Upstream: stable, Percent: 10}, 400, "field upstream: " + stable + " is the active release"},
		{CanaryRequest{Upstream: "release-b:8000", Percent: 10}, 400, "field upstream:"},
		{CanaryRequest{Upstream: named(t, "c"), Percent: 10, StickyHeader: "X Id"}, 400, `field sticky_header: "X Id" is not a header name`},
		{CanaryRequest{Upstream: named(t, "c"), Percent: 10, ReadyTimeout: "soon"}, 400, `field ready_timeout: "soon" is not a duration`},
		{CanaryRequest{Upstream: notReady.URL, Percent: 10}, 409, "canary refused: upstream is not ready: GET " + notReady.URL + "/ready answered 503: models check: loading"},
	} {
		_, err := gw.client.SetCanary(ctx, tc.req)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != tc.status || !strings.Contains(ae.Message, tc.want) {
			t.Errorf("%+v: %v, want %d %q", tc.req, err, tc.status, tc.want)
		}
	}
	if st := gw.g.State(); st.Canary != nil {
		t.Fatalf("a refused canary was set: %+v", st.Canary)
	}
}

func TestControl(t *testing.T) {
	stable := named(t, "stable")
	gw := startGateway(t, Options{Upstream: stable})
	ctx := context.Background()
	var ae *APIError
	if err := gw.client.SetControl(ctx, "promote"); !errors.As(err, &ae) || ae.Status != 409 || !strings.Contains(ae.Message, "no rollout in progress") {
		t.Fatalf("control without a rollout: %v", err)
	}
	setCanary(t, gw.g, named(t, "canary"), 5, "")
	if err := gw.client.SetControl(ctx, "pause"); !errors.As(err, &ae) || ae.Status != 400 || !strings.Contains(ae.Message, `field action: "pause" is not one of "promote", "abort", "resume", ""`) {
		t.Fatalf("a bad action: %v", err)
	}
	if err := gw.client.SetControl(ctx, "abort"); err != nil {
		t.Fatal(err)
	}
	if a, err := gw.client.Control(ctx); err != nil || a != "abort" {
		t.Fatalf("control: %q %v", a, err)
	}
	if st, _ := gw.client.State(ctx); st.Canary == nil || st.Canary.Control != "abort" {
		t.Fatalf("state: %+v", st.Canary)
	}
	setCanary(t, gw.g, "", 0, "")
	if a, _ := gw.client.Control(ctx); a != "" {
		t.Fatalf("control after the canary was cleared: %q", a)
	}
}
