package docker_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/analysis"
	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/docker"
	"github.com/modelship/modelship/internal/testenv"
)

// canaryRequest is a canary of image: 5, 25, 50% baking 3 s each,
// analysed every second on at least 10 requests per version.
func (e *env) canaryRequest(image string) deploy.Request {
	req := e.request(image)
	req.Strategy = deploy.Canary
	req.Canary = &deploy.CanarySpec{
		Steps: []deploy.CanaryStep{{Percent: 5, Bake: 3 * time.Second}, {Percent: 25, Bake: 3 * time.Second},
			{Percent: 50, Bake: 3 * time.Second}, {Percent: 100}},
		Interval: time.Second, Deadline: time.Minute, Analysis: analysis.Thresholds{MinSamples: 10},
	}
	return req
}

// canaryUnderLoad deploys image as a canary after the good model while a
// load loop runs, and returns the result, the deploy's error, and the
// loop's counts.
func canaryUnderLoad(t *testing.T, e *env, image string) (res *deploy.Result, err error, reqs, fails int64, errs []string) {
	good, _ := images(t)
	e.deploy(t, good.Tag)
	l := testenv.LoadLoop(e.url, 8)
	l.During(50, func() { res, err = e.d.Deploy(context.Background(), e.canaryRequest(image)) })
	reqs, fails, errs = l.Stop()
	if res != nil && res.Rollout != nil {
		t.Logf("canary of %s: %s\n%s", image, res.Rollout.Decision, analysis.Table(res.Rollout.Steps))
	}
	return res, err, reqs, fails, errs
}

// exposure is the figure of an aborted canary for the report.
func exposure(t *testing.T, r *deploy.Rollout) {
	all := r.CanaryRequests + r.StableRequests
	if all > 0 {
		t.Logf("exposed: %d of %d requests (%.2f%%) went to the canary; all traffic back on the serving release %s after the canary's first request",
			r.CanaryRequests, all, 100*float64(r.CanaryRequests)/float64(all), r.AbortAfter.Round(time.Millisecond))
	}
}

func TestCanaryUnderLoad(t *testing.T) {
	e := newEnv(t)
	res, err, reqs, fails, errs := canaryUnderLoad(t, e, "modelship-test/good:2")
	if err != nil {
		t.Fatalf("canary of the good model: %v", err)
	}
	if fails != 0 {
		t.Errorf("%d of %d requests failed during the canary, want 0: %q", fails, reqs, errs)
	}
	if res.Plan.Strategy != deploy.Canary || len(res.Rollout.Steps) != 3 || res.RolledBack {
		t.Errorf("strategy %s, %d steps, rolled back %v; want canary, 3 steps passed", res.Plan.Strategy, len(res.Rollout.Steps), res.RolledBack)
	}
	if res.Rollout.CanaryRequests == 0 {
		t.Error("the canary answered no request before its promotion")
	}
	if v := e.version(t); v.Image != "modelship-test/good:2" {
		t.Errorf("/version %+v after the promotion, want image modelship-test/good:2", v)
	}
}

// abortedCanary checks what every aborted canary must: the deploy failed
// at the first step by the check named, no client saw a failure the
// abort caused, and every request after it is answered by the serving
// release.
func abortedCanary(t *testing.T, e *env, res *deploy.Result, err error, check string) {
	t.Helper()
	good, _ := images(t)
	var ae *deploy.AbortError
	if !errors.As(err, &ae) || ae.Step != "5%" || ae.Decision.Decider != check {
		t.Fatalf("deploy error %v, want a canary aborted at step 5%% by %s", err, check)
	}
	if res == nil || !res.RolledBack || res.Rollout == nil || res.Rollout.AbortAfter <= 0 {
		t.Fatalf("result %+v: want rolled back, with the time to abort", res)
	}
	exposure(t, res.Rollout)
	for i := range 50 {
		if v := e.version(t); v.Image != good.Tag {
			t.Fatalf("request %d after the abort answered by %+v, want the serving release %s", i, v, good.Tag)
		}
	}
}

func TestCanarySlowTTFTAborts(t *testing.T) {
	cli, _ := testenv.Docker(t)
	slow := testenv.ServingImage(t, cli, testenv.ImageSlowTTFT)
	e := newEnv(t)
	res, err, reqs, fails, errs := canaryUnderLoad(t, e, slow.Tag)
	if fails != 0 {
		t.Errorf("%d of %d requests failed, want 0 (the canary is slow, not failing): %q", fails, reqs, errs)
	}
	if err != nil && !strings.Contains(err.Error(), "ttft") {
		t.Errorf("the abort %q names no TTFT check", err)
	}
	var ae *deploy.AbortError
	check := "ttft-ratio"
	if errors.As(err, &ae) && strings.HasPrefix(ae.Decision.Decider, "ttft") {
		check = ae.Decision.Decider // the ratio or the rank test: both are TTFT checks
	}
	abortedCanary(t, e, res, err, check)
}

func TestCanaryErrorsAbort(t *testing.T) {
	cli, _ := testenv.Docker(t)
	bad := testenv.ServingImage(t, cli, testenv.ImageErrors)
	e := newEnv(t)
	res, err, reqs, fails, errs := canaryUnderLoad(t, e, bad.Tag)
	abortedCanary(t, e, res, err, "error-rate")
	// Every failed request is one of the bad release's 500s: none was
	// caused by the abort.
	samples, _, serr := e.target.Samples(context.Background(), e.name, 0)
	if serr != nil {
		t.Fatal(serr)
	}
	canary := fmt.Sprintf("http://modelship-%s-%s:8000", e.name, res.Release.ID)
	var canaryErrs int64
	for _, s := range samples {
		if s.Err && (s.Upstream != canary || s.Status != http.StatusInternalServerError) {
			t.Errorf("request at %s failed with %d from %s, want only the canary's 500s", s.At, s.Status, s.Upstream)
		}
		if s.Err {
			canaryErrs++
		}
	}
	if fails != canaryErrs || fails == 0 {
		t.Errorf("%d of %d requests failed, the gateway measured %d 500s of the canary: want the same, and some", fails, reqs, canaryErrs)
	}
	for _, m := range errs {
		if !strings.HasPrefix(m, "status 500") {
			t.Errorf("a request failed with %q, want only the canary's 500s", m)
		}
	}
}

// The Docker target reads a release's engine metrics from its /metrics:
// the queue summed, the KV-cache usage by its current name, else the
// older one.
func TestCanaryEngineMetrics(t *testing.T) {
	for _, c := range []struct {
		body          string
		waiting, kvPc float64
	}{
		{"# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name=\"a\"} 2\nvllm:num_requests_waiting{model_name=\"b\"} 3\n" +
			"# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{model_name=\"a\"} 0.25\n" +
			"# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc{model_name=\"a\"} 0.9\n", 5, 0.25},
		{"# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc 0.5\n", 0, 0.5},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/metrics" {
				http.NotFound(w, r)
				return
			}
			fmt.Fprint(w, c.body)
		}))
		tg, err := docker.New(docker.Options{Host: "unix:///nonexistent/docker.sock"}) // never dialled
		if err != nil {
			t.Fatal(err)
		}
		e, err := tg.EngineMetrics(context.Background(), &deploy.Instance{Release: "r1", Env: "e", URL: srv.URL})
		srv.Close()
		if err != nil || e == nil || e.RequestsWaiting != c.waiting || e.KVCacheUsage != c.kvPc {
			t.Errorf("engine metrics %+v %v, want waiting %g, KV cache %g", e, err, c.waiting, c.kvPc)
		}
		if e, err := tg.EngineMetrics(context.Background(), &deploy.Instance{Release: "r1"}); e != nil || err != nil {
			t.Errorf("a release out of reach: %+v %v, want nil, nil", e, err)
		}
	}
}

// Interrupting the deployer mid-canary leaves the serving release at
// 100%: the undo clears the split first; no client sees a failure.
func TestCanaryInterruptedLeavesStable(t *testing.T) {
	good, _ := images(t)
	e := newEnv(t)
	e.deploy(t, good.Tag)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.d.Hook = func(step string) {
		if step == "canary-25" {
			cancel()
		}
	}
	l := testenv.LoadLoop(e.url, 4)
	res, err := e.d.Deploy(ctx, e.canaryRequest("modelship-test/good:3"))
	reqs, fails, errs := l.Stop()
	if err == nil || !strings.Contains(err.Error(), "interrupted") || !strings.Contains(err.Error(), "all traffic back on") {
		t.Fatalf("interrupted canary: %v, want interrupted with all traffic back on the serving release", err)
	}
	if fails != 0 {
		t.Errorf("%d of %d requests failed, want 0: %q", fails, reqs, errs)
	}
	if res == nil || !res.RolledBack {
		t.Errorf("result %+v, want rolled back", res)
	}
	for i := range 50 {
		if v := e.version(t); v.Image != good.Tag {
			t.Fatalf("request %d after the interrupt answered by %+v, want %s", i, v, good.Tag)
		}
	}
}

// With no client traffic and Traffic "synthetic", each step sends
// analysis traffic through the endpoint (once, stopped when the step ends)
// and the canary is promoted on it.
func TestCanarySyntheticTraffic(t *testing.T) {
	good, _ := images(t)
	e := newEnv(t)
	e.deploy(t, good.Tag)
	var loads []*testenv.Load
	var stopped int
	e.d.Synthetic = func(_ context.Context, url string) func() {
		l := testenv.LoadLoop(url, 4)
		loads = append(loads, l)
		return func() {
			stopped++
			if reqs, fails, errs := l.Stop(); fails != 0 {
				t.Errorf("%d of %d synthetic requests failed: %q", fails, reqs, errs)
			}
		}
	}
	req := e.canaryRequest("modelship-test/good:3")
	req.Canary.Traffic = deploy.TrafficSynthetic
	res, err := e.d.Deploy(context.Background(), req)
	if err != nil {
		t.Fatalf("canary on synthetic traffic: %v", err)
	}
	t.Logf("canary on synthetic traffic: %s\n%s", res.Rollout.Decision, analysis.Table(res.Rollout.Steps))
	if len(loads) != 3 || stopped != 3 {
		t.Errorf("synthetic traffic started %d times and stopped %d, want once per step (3)", len(loads), stopped)
	}
	if !strings.Contains(e.log.String(), "too few requests (canary 0, stable 0): sending synthetic analysis traffic") {
		t.Errorf("the log does not say why synthetic traffic started:\n%s", e.log.String())
	}
	if v := e.version(t); v.Image != "modelship-test/good:3" {
		t.Errorf("/version %+v, want modelship-test/good:3", v)
	}
}
