package docker_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/analysis"
	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/docker"
	"github.com/modelship/modelship/internal/testenv"
	"github.com/modelship/modelship/internal/testenv/rollouttest"
)

// canaryRequest is a canary of image: 5, 25, 50% baking 3 s each,
// analysed every second on at least 30 requests per version (the p95 of
// fewer is nearly the slowest request: one hiccup of a busy machine would
// abort a good canary).
func (e *env) canaryRequest(image string) deploy.Request {
	req := e.request(image)
	req.Strategy = deploy.Canary
	req.Canary = &deploy.CanarySpec{
		Steps: []deploy.CanaryStep{{Percent: 5, Bake: 3 * time.Second}, {Percent: 25, Bake: 3 * time.Second},
			{Percent: 50, Bake: 3 * time.Second}, {Percent: 100}},
		Interval: time.Second, Deadline: time.Minute, Analysis: analysis.Thresholds{MinSamples: 30},
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

// exposure logs the figures of a canary that did not finish: the share of
// requests the canary answered and, on an abort, how long it took to put
// all traffic back.
func exposure(t *testing.T, r *deploy.Rollout) {
	all := r.CanaryRequests + r.StableRequests
	if all == 0 {
		t.Logf("exposed: no request went to the canary (none measured during the rollout)")
		return
	}
	msg := fmt.Sprintf("exposed: %d of %d requests (%.2f%%) went to the canary", r.CanaryRequests, all, 100*float64(r.CanaryRequests)/float64(all))
	if r.AbortAfter > 0 {
		msg += fmt.Sprintf("; all traffic back on the serving release %s after the canary's first request", r.AbortAfter.Round(time.Millisecond))
	}
	t.Log(msg)
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

// shadowRequest is canaryRequest with a shadow step first: every request
// mirrored for 2 s, passing with 90% of at least 10 answers the same, and
// a validation case for the conversations' prompt (its answer names Paris).
func (e *env) shadowRequest(image string) deploy.Request {
	req := e.canaryRequest(image)
	req.Shadow = rollouttest.ShadowSpec()
	return req
}

// hookTimes records when the deploy reached each hook point.
func hookTimes(e *env) map[string]time.Time {
	at := map[string]time.Time{}
	e.d.Hook = func(step string) { at[step] = time.Now() }
	return at
}

// servesOnly checks that 50 requests in a row are answered by image, and
// that the candidate's container is gone.
func servesOnly(t *testing.T, e *env, image string, candidate *deploy.Release) {
	t.Helper()
	for i := range 50 {
		if v := e.version(t); v.Image != image {
			t.Fatalf("request %d after the rollout answered by %+v, want the serving release %s", i, v, image)
		}
	}
	if candidate == nil {
		t.Fatal("the result names no candidate release")
	}
	if in, err := e.target.Instance(context.Background(), e.name, candidate.ID); err != nil || in != nil {
		t.Errorf("the candidate's container: %+v %v, want removed", in, err)
	}
}

// candidateRequests counts the requests the gateway measured as answered
// by release rel.
func candidateRequests(t *testing.T, e *env, rel *deploy.Release) int {
	t.Helper()
	samples, _, err := e.target.Samples(context.Background(), e.name, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range samples {
		if s.Upstream == fmt.Sprintf("http://modelship-%s-%s:8000", e.name, rel.ID) {
			n++
		}
	}
	return n
}

// A shadow step of the same model agrees on every answer, clients only
// ever get the serving release's answers while it runs, and the canary
// then goes on to its promotion.
func TestShadowIdenticalModel(t *testing.T) {
	good, _ := images(t)
	e := newEnv(t)
	e.deploy(t, good.Tag)
	at := hookTimes(e)
	l := rollouttest.StartConversations(e.url, 8, 0)
	var res *deploy.Result
	var err error
	l.During(50, func() { res, err = e.d.Deploy(context.Background(), e.shadowRequest("modelship-test/good:2")) })
	seen := l.Seen(t)
	if err != nil {
		t.Fatalf("canary of the same model with a shadow step: %v", err)
	}
	ro := res.Rollout
	if ro == nil || ro.Shadow == nil || len(ro.Steps) != 4 || ro.Steps[0].Name != "shadow" {
		t.Fatalf("rollout %+v: want a shadow report and 4 steps, the shadow first", ro)
	}
	rollouttest.LogShadow(t, ro.Shadow)
	t.Logf("canary: %s\n%s", ro.Decision, analysis.Table(ro.Steps))
	if ro.Shadow.AgreementRate != 1 || ro.Shadow.Comparable < 10 || ro.Shadow.Agreed != ro.Shadow.Comparable {
		t.Errorf("shadow of the same model: agreement %g on %d comparable answers (%d agreed), want 1 on at least 10",
			ro.Shadow.AgreementRate, ro.Shadow.Comparable, ro.Shadow.Agreed)
	}
	if a := ro.Shadow.Assertions; a.Checked < 10 || a.CandidateFailed != 0 || a.StableFailed != 0 {
		t.Errorf("the validation case on the same model: %+v, want at least 10 answers checked, none failed", a)
	}
	// Until the first canary step began, only the serving release answered.
	firstStep := ro.Steps[1].Started
	inShadow := 0
	for _, a := range seen {
		if !a.Back.Before(firstStep) {
			continue
		}
		if a.Image != good.Tag {
			t.Errorf("a request sent at %s, before the first canary step (%s), was answered by %s, want %s",
				a.Sent.Format(time.StampMilli), firstStep.Format(time.StampMilli), a.Image, good.Tag)
		}
		if !a.Sent.Before(at["shadow"]) {
			inShadow++
		}
	}
	t.Logf("%d requests were answered during the shadow step, all by the serving release", inShadow)
	if inShadow == 0 {
		t.Error("no request was answered during the shadow step: the load did not run through it")
	}
	if ro.CanaryRequests == 0 {
		t.Error("the canary answered no request after the shadow step")
	}
	if v := e.version(t); v.Image != "modelship-test/good:2" {
		t.Errorf("/version %+v after the promotion, want modelship-test/good:2", v)
	}
}

// A shadow step of the regressed model (it answers Lyon) agrees too
// little: the deploy fails at the shadow step, no client ever got the
// regressed model's answer, and nothing was switched.
func TestShadowRegressedAborts(t *testing.T) {
	good, regressed := images(t)
	e := newEnv(t)
	e.deploy(t, good.Tag)
	l := rollouttest.StartConversations(e.url, 8, 0)
	var res *deploy.Result
	var err error
	l.During(50, func() { res, err = e.d.Deploy(context.Background(), e.shadowRequest(regressed.Tag)) })
	seen := l.Seen(t)
	rollouttest.RegressedShadowAborted(t, res, err)
	exposure(t, res.Rollout)
	for _, a := range seen {
		if a.Image != good.Tag {
			t.Fatalf("a request sent at %s was answered by %s, want only the serving release %s", a.Sent.Format(time.StampMilli), a.Image, good.Tag)
		}
	}
	servesOnly(t, e, good.Tag, res.Release)
}

// With a sticky header, a conversation stays on one version through each
// step, and once the new release answered it, the old one never does
// again (its share only grows).
func TestStickyConversations(t *testing.T) {
	good, _ := images(t)
	e := newEnv(t)
	e.deploy(t, good.Tag)
	at := hookTimes(e)
	const convs = 50
	req := e.canaryRequest("modelship-test/good:2")
	req.Canary.StickyHeader = rollouttest.ConvHeader
	l := rollouttest.StartConversations(e.url, 8, convs)
	var res *deploy.Result
	var err error
	l.During(100, func() { res, err = e.d.Deploy(context.Background(), req) })
	seen := l.Seen(t)
	if err != nil {
		t.Fatalf("sticky canary of the good model: %v", err)
	}
	t.Logf("canary: %s\n%s", res.Rollout.Decision, analysis.Table(res.Rollout.Steps))
	const next = "modelship-test/good:2"
	rollouttest.StaysOnNew(t, seen, next)
	for _, st := range res.Rollout.Steps {
		rollouttest.StickyStep(t, seen, at["canary-"+strconv.FormatFloat(st.Percent, 'f', -1, 64)], st, next, convs)
	}
	if v := e.version(t); v.Image != next {
		t.Errorf("/version %+v after the promotion, want %s", v, next)
	}
}

// Interrupting the deployer at any step of the rollout (the shadow, each
// canary step) leaves the serving release at 100%: the undo clears the
// split and the mirror first, then removes the candidate; no client sees
// a failure.
func TestCanaryInterruptedLeavesStable(t *testing.T) {
	good, _ := images(t)
	for _, hook := range []string{"shadow", "canary-5", "canary-25", "canary-50"} {
		t.Run(hook, func(t *testing.T) {
			e := newEnv(t)
			e.deploy(t, good.Tag)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			e.d.Hook = func(step string) {
				if step == hook {
					cancel()
				}
			}
			req := e.shadowRequest("modelship-test/good:3")
			req.Shadow.Duration = time.Second
			for i := range req.Canary.Steps {
				req.Canary.Steps[i].Bake = time.Second
			}
			// The interrupt is under test, not the analysis: a few slow
			// requests on a busy test machine (the p95 of 10 is their
			// slowest) must not abort the canary before its hook.
			req.Canary.Analysis.MaxTTFTRatio = 10
			var res *deploy.Result
			var err error
			testenv.UnderLoad(t, e.url, 4, 20, "interrupt at "+hook, func() string {
				t0 := time.Now()
				res, err = e.d.Deploy(ctx, req)
				return "deploy returned after " + time.Since(t0).Round(time.Millisecond).String()
			})
			if err == nil || !strings.Contains(err.Error(), "interrupted") || !strings.Contains(err.Error(), "all traffic back on") {
				t.Fatalf("interrupted canary: %v, want interrupted with all traffic back on the serving release", err)
			}
			if res == nil || !res.RolledBack || res.Rollout == nil {
				t.Fatalf("result %+v, want rolled back, with the rollout", res)
			}
			exposure(t, res.Rollout)
			// The report's exposure counts every request the candidate
			// answered, also those after the last analysis.
			if n := candidateRequests(t, e, res.Release); res.Rollout.CanaryRequests != n {
				t.Errorf("the rollout counts %d requests answered by the candidate, the gateway measured %d", res.Rollout.CanaryRequests, n)
			}
			servesOnly(t, e, good.Tag, res.Release)
		})
	}
}

// With no traffic at all and Traffic "wait", the first step stays
// inconclusive until its deadline, then fails, saying so in numbers; the
// serving release keeps serving.
func TestCanaryNoTrafficStaysInconclusive(t *testing.T) {
	good, _ := images(t)
	e := newEnv(t)
	e.deploy(t, good.Tag)
	req := e.canaryRequest("modelship-test/good:3")
	req.Canary.Traffic = deploy.TrafficWait
	req.Canary.Deadline = 4 * time.Second
	req.Canary.Steps[0].Bake = time.Second
	t0 := time.Now()
	res, err := e.d.Deploy(context.Background(), req)
	t.Logf("deploy without traffic failed after %s: %v", time.Since(t0).Round(time.Millisecond), err)
	var ae *deploy.AbortError
	if !errors.As(err, &ae) || ae.Step != "5%" {
		t.Fatalf("deploy error %v, want a canary aborted at step 5%%", err)
	}
	for _, want := range []string{"stayed inconclusive for 4s", "canary had 0 requests, fewer than the 30 needed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("deploy error %q does not say %q", err, want)
		}
	}
	if res == nil || !res.RolledBack || res.Rollout == nil || res.Rollout.CanaryRequests != 0 {
		t.Fatalf("result %+v: want rolled back, the canary having answered no request", res)
	}
	exposure(t, res.Rollout)
	servesOnly(t, e, good.Tag, res.Release)
}
