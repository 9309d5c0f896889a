package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/analysis"
	"github.com/modelship/modelship/internal/shadow"
	"github.com/modelship/modelship/serving/stage"
	"github.com/modelship/modelship/suite"
)

// fakeSplit is a router that splits by the percent it was last given:
// each Samples call returns perRead requests measured since the last one,
// the canary's share of them from the canary.
type fakeSplit struct {
	mu      sync.Mutex
	calls   []string
	clock   *fakeClock
	percent float64
	control string
	perRead int
	// canaryErr: the canary fails every request from this percent on (0: never).
	canaryErr float64
	// extra requests per read while synthetic traffic runs.
	synthetic, extra int
	canaryN, stableN int
	next             uint64
	report           shadow.Report
	checks           []suite.TextCheck // the last SetShadow's
	// onCall, when set, is called (unlocked) after each call is recorded.
	onCall func(call string)
}

const stableUp, canaryUp = "http://modelship-e-r1:8000", "http://modelship-e-r2:8000"

func (f *fakeSplit) record(call string) {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	on := f.onCall
	f.mu.Unlock()
	if on != nil {
		on(call)
	}
}

func (f *fakeSplit) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeSplit) SetCanary(_ context.Context, _ string, in *Instance, percent float64, sticky string) error {
	if in == nil {
		percent = 0
	}
	f.mu.Lock()
	f.percent = percent
	f.mu.Unlock()
	f.record(fmt.Sprintf("SetCanary %g %s", percent, sticky))
	return nil
}

func (f *fakeSplit) Samples(_ context.Context, _ string, since uint64) ([]MeasuredSample, uint64, error) {
	f.mu.Lock()
	var out []MeasuredSample
	n := f.perRead
	if f.synthetic > 0 {
		n += f.extra
	}
	if since > 0 { // the first read (0) is what came before the canary
		for i := range n {
			s := MeasuredSample{Upstream: stableUp, Sample: analysis.Sample{At: f.clock.now(), Status: 200, TTFT: 15 * time.Millisecond}}
			if float64(i) < float64(n)*f.percent/100 {
				s.Upstream = canaryUp
				if f.canaryErr > 0 && f.percent >= f.canaryErr {
					s.Status, s.Err = 500, true
				}
				f.canaryN++
			} else {
				f.stableN++
			}
			out = append(out, s)
		}
	}
	f.next += uint64(len(out)) + 1
	next := f.next
	f.mu.Unlock()
	f.record("Samples")
	return out, next, nil
}

func (f *fakeSplit) Control(context.Context, string) (string, error) {
	f.record("Control")
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.control, nil
}

func (f *fakeSplit) SetControl(_ context.Context, _ string, action string) error {
	f.mu.Lock()
	if action == ControlClear {
		f.control = ""
	} else {
		f.control = action
	}
	f.mu.Unlock()
	f.record("SetControl " + action)
	return nil
}

func (f *fakeSplit) SetShadow(_ context.Context, _ string, in *Instance, percent float64, checks []suite.TextCheck) error {
	if in == nil {
		percent = 0
	} else {
		f.mu.Lock()
		f.checks = checks
		f.mu.Unlock()
	}
	f.record(fmt.Sprintf("SetShadow %g", percent))
	return nil
}

func (f *fakeSplit) ShadowReport(context.Context, string) (*shadow.Report, error) {
	f.record("ShadowReport")
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.report
	return &r, nil
}

// fakeClock advances only when the rollout sleeps.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
	return ctx.Err()
}

// stubAnalyse stands in for analysis.Analyse (whose checks are its own
// package's tests), with figures a test can predict: inconclusive below
// MinSamples per version, failed when the canary's error rate exceeds
// MaxErrorRate, else passed.
func stubAnalyse(w analysis.Window, t analysis.Thresholds) analysis.Decision {
	d := analysis.Decision{StableN: len(w.Stable), CanaryN: len(w.Canary)}
	errs := 0
	for _, s := range w.Canary {
		if s.Err {
			errs++
		}
	}
	switch {
	case d.CanaryN < t.MinSamples || d.StableN < t.MinSamples:
		d.Verdict, d.Decider = stage.Inconclusive, "samples"
		d.Why = fmt.Sprintf("canary %d, stable %d requests, %d needed", d.CanaryN, d.StableN, t.MinSamples)
	case float64(errs)/float64(d.CanaryN) > t.MaxErrorRate:
		d.Verdict, d.Decider = stage.Failed, "error-rate"
		d.Why = fmt.Sprintf("failed on error-rate: canary error rate %.3f (%d of %d) above %.3f", float64(errs)/float64(d.CanaryN), errs, d.CanaryN, t.MaxErrorRate)
	default:
		d.Verdict, d.Why = stage.Passed, fmt.Sprintf("canary error rate %.3f of %d requests", float64(errs)/float64(d.CanaryN), d.CanaryN)
	}
	return d
}

type rolloutTest struct {
	ro     *rollout
	split  *fakeSplit
	log    strings.Builder
	events []string
	hooks  []string
}

// newRolloutTest: steps 5/25/50/100 baking 3s, analysed every second,
// 100 requests a second, 10 needed per version.
func newRolloutTest() *rolloutTest {
	clock := &fakeClock{t: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	rt := &rolloutTest{split: &fakeSplit{clock: clock, perRead: 100}}
	rt.ro = &rollout{
		split: rt.split, env: "e",
		stable: &Instance{Release: "r1", Upstream: stableUp}, canary: &Instance{Release: "r2", Upstream: canaryUp},
		spec: CanarySpec{Steps: []CanaryStep{{Percent: 5, Bake: 3 * time.Second}, {Percent: 25, Bake: 3 * time.Second}, {Percent: 50, Bake: 3 * time.Second}, {Percent: 100}},
			Interval: time.Second, StickyHeader: "X-User", Analysis: analysis.Thresholds{MinSamples: 10, MaxErrorRate: 0.01}}.withDefaults(),
		analyse: stubAnalyse,
		logf:    func(format string, a ...any) { fmt.Fprintf(&rt.log, format+"\n", a...) },
		event:   func(name, detail string) { rt.events = append(rt.events, name+": "+detail) },
		hook:    func(s string) { rt.hooks = append(rt.hooks, s) },
		now:     clock.now, sleep: clock.sleep, out: &Rollout{},
	}
	return rt
}

func (rt *rolloutTest) percents() []string {
	var p []string
	for _, c := range rt.split.Calls() {
		if strings.HasPrefix(c, "SetCanary") {
			p = append(p, strings.Fields(c)[1])
		}
	}
	return p
}

func TestCanaryGoodPassesEveryStep(t *testing.T) {
	rt := newRolloutTest()
	if err := rt.ro.steps(context.Background()); err != nil {
		t.Fatalf("a good canary: %v\n%s", err, rt.log.String())
	}
	out := rt.ro.out
	var names []string
	for _, s := range out.Steps {
		names = append(names, s.Name)
		if s.Decision.Verdict != stage.Passed {
			t.Errorf("step %s: %s (%s), want passed", s.Name, s.Decision.Verdict, s.Decision.Why)
		}
		if s.Ended.Sub(s.Started) < 3*time.Second {
			t.Errorf("step %s passed after %s, before its 3s bake", s.Name, s.Ended.Sub(s.Started))
		}
	}
	if !slices.Equal(names, []string{"5%", "25%", "50%"}) || !slices.Equal(rt.percents(), []string{"5", "25", "50"}) {
		t.Errorf("steps %q, SetCanary percents %q, want 5%%, 25%%, 50%% (100%% is the switch)", names, rt.percents())
	}
	if !slices.Equal(rt.hooks, []string{"canary-5", "canary-25", "canary-50"}) {
		t.Errorf("hooks %q", rt.hooks)
	}
	if out.CanaryRequests != rt.split.canaryN || out.StableRequests != rt.split.stableN || out.CanaryRequests == 0 {
		t.Errorf("rollout counted canary %d stable %d, the router measured %d and %d", out.CanaryRequests, out.StableRequests, rt.split.canaryN, rt.split.stableN)
	}
	if !strings.Contains(out.Decision, "promoted: every step passed (5%, 25%, 50%)") || out.AbortAfter != 0 {
		t.Errorf("decision %q, abort after %s", out.Decision, out.AbortAfter)
	}
	if len(rt.events) != 3 || !strings.HasPrefix(rt.events[0], "canary-step: 5% passed") {
		t.Errorf("events %q, want one canary-step per step", rt.events)
	}
	if !strings.Contains(rt.split.Calls()[1], "SetCanary 5 X-User") {
		t.Errorf("calls %q: the sticky header does not reach the router", rt.split.Calls())
	}
}

func TestCanaryFailingStepAbortsAtOnce(t *testing.T) {
	rt := newRolloutTest()
	rt.split.canaryErr = 25 // the canary fails once it takes 25%
	err := rt.ro.steps(context.Background())
	var ae *AbortError
	if !errors.As(err, &ae) || ae.Step != "25%" || ae.Operator {
		t.Fatalf("error %v, want an abort at step 25%%", err)
	}
	if !strings.Contains(err.Error(), "failed on error-rate: canary error rate 1.000 (25 of 25) above 0.010") {
		t.Errorf("error %q does not say which check decided, in numbers", err)
	}
	calls := rt.split.Calls()
	i, j := slices.Index(calls, "SetCanary 25 X-User"), slices.Index(calls, "SetCanary 0 ")
	if i < 0 || j < i+2 || calls[j-1] != "Samples" || j != len(calls)-1 {
		t.Errorf("calls %q: SetCanary 0 is not the first call after the failing samples", calls)
	}
	if last := rt.ro.out.Steps[len(rt.ro.out.Steps)-1]; last.Name != "25%" || last.Decision.Verdict != stage.Failed {
		t.Errorf("last step %+v, want 25%% failed", last)
	}
	if rt.ro.out.AbortAfter <= 0 || !strings.HasPrefix(rt.ro.out.Decision, "aborted at step 25%: failed on error-rate") {
		t.Errorf("abort after %s, decision %q", rt.ro.out.AbortAfter, rt.ro.out.Decision)
	}
	if !slices.ContainsFunc(rt.events, func(e string) bool { return strings.HasPrefix(e, "canary-aborted: ") }) {
		t.Errorf("events %q: no canary-aborted", rt.events)
	}
}

func TestCanaryOperatorAbort(t *testing.T) {
	rt := newRolloutTest()
	rt.split.onCall = func(c string) {
		if c == "SetCanary 25 X-User" {
			_ = rt.split.SetControl(context.Background(), "e", ControlAbort)
		}
	}
	err := rt.ro.steps(context.Background())
	var ae *AbortError
	if !errors.As(err, &ae) || !ae.Operator || !strings.Contains(err.Error(), "aborted by an operator (modelship abort) at step 25%") {
		t.Fatalf("error %v, want an operator's abort at step 25%%", err)
	}
	if p := rt.percents(); !slices.Equal(p, []string{"5", "25", "0"}) {
		t.Errorf("SetCanary percents %q, want 5, 25 then 0", p)
	}
}

func TestCanaryPromoteSkipsTheRemainingSteps(t *testing.T) {
	rt := newRolloutTest()
	_ = rt.split.SetControl(context.Background(), "e", ControlPromote)
	if err := rt.ro.steps(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p := rt.percents(); !slices.Equal(p, []string{"5"}) {
		t.Errorf("SetCanary percents %q, want only 5 (promoted there)", p)
	}
	if !strings.Contains(rt.ro.out.Decision, "promoted by an operator (modelship promote) at step 5%") || !slices.Contains(rt.split.Calls(), "SetControl clear") {
		t.Errorf("decision %q, calls %q", rt.ro.out.Decision, rt.split.Calls())
	}
}

func TestCanaryPauseWaitsForResume(t *testing.T) {
	rt := newRolloutTest()
	rt.ro.spec.Steps[1].Pause = true
	waits := 0
	rt.ro.logf = func(format string, a ...any) {
		line := fmt.Sprintf(format, a...)
		fmt.Fprintln(&rt.log, line)
		if strings.Contains(line, "waiting for approval") {
			waits++
			if waits == 3 { // the operator approves after three intervals
				_ = rt.split.SetControl(context.Background(), "e", ControlResume)
			}
		}
	}
	if err := rt.ro.steps(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rt.log.String(), "step 25% passed; waiting for approval: modelship resume --env e or promote") || waits != 3 {
		t.Errorf("waited %d intervals; log:\n%s", waits, rt.log.String())
	}
	calls := rt.split.Calls()
	resume, clear, next := slices.Index(calls, "SetControl resume"), slices.Index(calls, "SetControl clear"), slices.Index(calls, "SetCanary 50 X-User")
	if resume < 0 || clear < resume || next < clear {
		t.Errorf("calls %q: want resume, then the control cleared, then step 50%%", calls)
	}
}

func TestCanaryInconclusiveStartsSyntheticTraffic(t *testing.T) {
	rt := newRolloutTest()
	rt.split.perRead, rt.split.extra = 10, 200 // 0.5 canary request a second at 5%: never enough alone
	rt.ro.spec.Traffic = TrafficSynthetic
	starts, stops := 0, 0
	rt.ro.synthetic = func(context.Context) func() {
		starts++
		rt.split.synthetic++
		return func() { stops++; rt.split.synthetic-- }
	}
	if err := rt.ro.steps(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, rt.log.String())
	}
	if starts == 0 || starts != stops || rt.split.synthetic != 0 {
		t.Errorf("synthetic traffic started %d times, stopped %d", starts, stops)
	}
	if !strings.Contains(rt.log.String(), "canary step 5%: too few requests (canary") {
		t.Errorf("the log does not say why synthetic traffic started:\n%s", rt.log.String())
	}
}

func TestCanaryInconclusivePastDeadlineFails(t *testing.T) {
	rt := newRolloutTest()
	rt.split.perRead = 20 // 1 canary request a second at 5%
	rt.ro.spec.Deadline = 10 * time.Second
	rt.ro.spec.Analysis.MinSamples = 20
	err := rt.ro.steps(context.Background())
	want := "step 5% stayed inconclusive for 10s: canary had 10 requests, fewer than the 20 needed"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want %q", err, want)
	}
	if p := rt.percents(); !slices.Equal(p, []string{"5", "0"}) {
		t.Errorf("SetCanary percents %q, want 5 then 0", p)
	}
}

// An interrupt mid-step: the step returns the context's error, and the
// undo's first calls clear the split and the mirror.
func TestCanaryInterruptedUndoClearsTheSplitFirst(t *testing.T) {
	rt := newRolloutTest()
	ctx, cancel := context.WithCancel(context.Background())
	rt.split.onCall = func(c string) {
		if c == "SetCanary 25 X-User" {
			cancel()
		}
	}
	if err := rt.ro.steps(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted step: %v, want context.Canceled", err)
	}
	rt.split.onCall = nil
	before := len(rt.split.Calls())
	tg := &undoTarget{fakeSplit: rt.split}
	r := &run{d: &Deployer{Target: tg}, req: Request{Env: "e"}, res: &Result{Plan: &Plan{Strategy: Canary}},
		rel: &Release{ID: "r2"}, old: &Release{ID: "r1"}, oldInst: rt.ro.stable, newInst: rt.ro.canary, splitTried: true}
	did, err := r.undo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	calls := rt.split.Calls()[before:]
	if len(calls) < 2 || calls[0] != "SetCanary 0 " || calls[1] != "SetShadow 0" {
		t.Errorf("undo's calls %q, want SetCanary 0 and SetShadow 0 first", calls)
	}
	if !slices.Contains(calls, "Remove r2") || !r.res.RolledBack || !strings.Contains(did, "all traffic back on r1") {
		t.Errorf("undo %q, calls %q, rolled back %v", did, calls, r.res.RolledBack)
	}
}

// undoTarget is the little of a Target the undo of a canary uses.
type undoTarget struct {
	Target
	*fakeSplit
}

func (u *undoTarget) Status(context.Context, *Instance) (*Status, error) {
	return &Status{Running: true}, nil
}
func (u *undoTarget) WaitDrained(_ context.Context, _ string, in *Instance, _ time.Duration) error {
	u.record("WaitDrained " + in.Release)
	return nil
}
func (u *undoTarget) Stop(_ context.Context, in *Instance) error {
	u.record("Stop " + in.Release)
	return nil
}
func (u *undoTarget) Remove(_ context.Context, in *Instance) error {
	u.record("Remove " + in.Release)
	return nil
}

func TestShadowStep(t *testing.T) {
	for _, c := range []struct {
		name       string
		comparable uint64
		agreed     uint64
		verdict    stage.Verdict
		why        string
	}{
		{"agrees", 50, 49, stage.Passed, "agreed with the serving one on 98.0% of 50 answers (49), at least 95.0% required"},
		{"disagrees", 50, 40, stage.Failed, "agreed with the serving one on 80.0% of 50 answers (40), below the 95.0% required"},
		{"too few by the deadline", 5, 5, stage.Failed, "the shadow step stayed inconclusive for 1m0s: the mirror compared 5 answers both releases gave, fewer than the 20 needed"},
		{"aborted by an operator", 50, 49, stage.Failed, "aborted by an operator (modelship abort) at the shadow step"},
		{"promoted by an operator", 3, 3, stage.Passed, "promoted by an operator (modelship promote) at the shadow step; the canary's steps are skipped"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rt := newRolloutTest()
			rt.ro.spec.Deadline = time.Minute
			rt.ro.shadow = &ShadowSpec{Percent: 10, Duration: 5 * time.Second, MinAgreement: 0.95, MinSamples: 20}
			switch c.name {
			case "aborted by an operator":
				rt.split.control = ControlAbort
			case "promoted by an operator":
				rt.split.control = ControlPromote
			}
			rt.split.report = shadow.Report{Compared: c.comparable, Comparable: c.comparable, Agreed: c.agreed, AgreementRate: float64(c.agreed) / float64(c.comparable)}
			promoted, err := rt.ro.shadowStep(context.Background())
			if (err == nil) != (c.verdict == stage.Passed) || err != nil && !strings.Contains(err.Error(), c.why) {
				t.Fatalf("error %v, want verdict %s saying %q", err, c.verdict, c.why)
			}
			if want := c.name == "promoted by an operator"; promoted != want || want && rt.ro.out.Decision != c.why {
				t.Errorf("promoted %v (decision %q), want %v", promoted, rt.ro.out.Decision, want)
			}
			calls := slices.DeleteFunc(rt.split.Calls(), func(c string) bool { return !strings.HasPrefix(c, "SetShadow") })
			if calls[0] != "SetShadow 10" || calls[len(calls)-1] != "SetShadow 0" || rt.hooks[0] != "shadow" {
				t.Errorf("calls %q hooks %q: want the mirror started, then stopped last", calls, rt.hooks)
			}
			st := rt.ro.out.Steps[0]
			if rt.ro.out.Shadow == nil || st.Name != "shadow" || st.Decision.Verdict != c.verdict || !strings.Contains(st.Decision.Why, c.why) {
				t.Errorf("rollout shadow %v, step %+v", rt.ro.out.Shadow, st)
			}
		})
	}
}

// The validation suite's assertions reach the mirror, and decide against
// a new release that fails more of them than the serving one did.
func TestShadowStepAssertions(t *testing.T) {
	checks := []suite.TextCheck{{Case: "capital", Prompt: "What is the capital of France?",
		Assertions: []suite.TextAssertion{{Kind: "icontains", Value: []byte(`"paris"`)}}}}
	for _, c := range []struct {
		name    string
		a       shadow.Assertions
		verdict stage.Verdict
		why     string
	}{
		{"no regression", shadow.Assertions{Checked: 30, StableFailed: 2, CandidateFailed: 2}, stage.Passed,
			"the validation suite's assertions failed the new release on 2 of 30 requests with a case's prompt, the serving one on 2"},
		{"regressed", shadow.Assertions{Checked: 30, StableFailed: 0, CandidateFailed: 12, Examples: []string{`case "capital": icontains: "paris": missing 'paris'`}}, stage.Failed,
			`the new release failed the validation suite's assertions on 12 of 30 requests with a case's prompt, the serving one on 0 (first: case "capital": icontains: "paris": missing 'paris')`},
		{"nothing matched", shadow.Assertions{}, stage.Passed, "no mirrored request had a validation case's prompt"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rt := newRolloutTest()
			rt.ro.spec.Deadline = time.Minute
			rt.ro.shadow = &ShadowSpec{Percent: 10, Duration: 5 * time.Second, MinAgreement: 0.95, MinSamples: 20, Checks: checks}
			rt.split.report = shadow.Report{Compared: 50, Comparable: 50, Agreed: 50, AgreementRate: 1, Assertions: c.a}
			_, err := rt.ro.shadowStep(context.Background())
			if (err == nil) != (c.verdict == stage.Passed) || err != nil && !strings.Contains(err.Error(), c.why) {
				t.Fatalf("error %v, want verdict %s saying %q", err, c.verdict, c.why)
			}
			rt.split.mu.Lock()
			got := rt.split.checks
			rt.split.mu.Unlock()
			if !reflect.DeepEqual(got, checks) {
				t.Errorf("the mirror got checks %+v, want the suite's %+v", got, checks)
			}
			dec := rt.ro.out.Steps[0].Decision
			if len(dec.Checks) != 2 || dec.Checks[1].Name != "assertions" || dec.Checks[1].Verdict != c.verdict || !strings.Contains(dec.Why, c.why) {
				t.Errorf("decision %+v, want an assertions check %s saying %q", dec, c.verdict, c.why)
			}
		})
	}
}

// noSplitTarget is a target whose router cannot split traffic.
type noSplitTarget struct{ Target }

func (noSplitTarget) Describe() string { return "kubernetes context kind-test" }

func TestCanaryRefusedWithoutASplitter(t *testing.T) {
	d := &Deployer{Target: noSplitTarget{}}
	spec := &CanarySpec{Steps: []CanaryStep{{Percent: 10}, {Percent: 100}}}
	for _, c := range []struct {
		req  Request
		want string
	}{
		{Request{Env: "prod", Image: "m:2", Strategy: Canary, Canary: spec}, "deploy to prod: strategy canary needs a router that splits traffic; target kubernetes context kind-test does not yet: use rolling or blue-green (nothing was changed)"},
		{Request{Env: "prod", Image: "m:2", Shadow: &ShadowSpec{Percent: 5, Duration: time.Minute}}, "a shadow step needs a router that mirrors traffic"},
	} {
		if _, err := d.Deploy(context.Background(), c.req); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
}

func TestCanarySpecCheck(t *testing.T) {
	for _, c := range []struct {
		steps []CanaryStep
		want  string
	}{
		{[]CanaryStep{{Percent: 25}, {Percent: 5}, {Percent: 100}}, "canary step 2: percent 5: expected more than the step before (25)"},
		{[]CanaryStep{{Percent: 5}, {Percent: 50}}, "canary steps end at 50%: expected the last step to be 100"},
		{nil, "needs canary steps"},
	} {
		s := CanarySpec{Steps: c.steps}
		if err := s.check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("steps %v: %v, want %q", c.steps, err, c.want)
		}
	}
}

// oldRouter is a router older than canaries: every rollout command fails.
type oldRouter struct{ fakeSplit }

func (o *oldRouter) SetCanary(context.Context, string, *Instance, float64, string) error {
	o.record("SetCanary")
	return fmt.Errorf("%w: gateway canary unknown", ErrSplitUnsupported)
}

func (o *oldRouter) SetShadow(context.Context, string, *Instance, float64, []suite.TextCheck) error {
	o.record("SetShadow")
	return fmt.Errorf("%w: gateway shadow unknown", ErrSplitUnsupported)
}

// An undo on a router that cannot split has nothing to clear, and is not
// failed by it.
func TestClearSplitOnARouterThatCannotSplit(t *testing.T) {
	if err := clearSplit(context.Background(), &oldRouter{}, "e"); err != nil {
		t.Errorf("clearing on a router without canaries: %v, want nothing to clear", err)
	}
}

// reconcileTarget holds a release a deployer killed mid-canary left.
type reconcileTarget struct{ undoTarget }

func (reconcileTarget) Releases(context.Context, string) ([]*Release, error) {
	return []*Release{{ID: "r1", Serving: true, Outcome: Live}, {ID: "r2", Strategy: Canary, Outcome: InProgress}}, nil
}
func (reconcileTarget) Instance(_ context.Context, env, id string) (*Instance, error) {
	return &Instance{Release: id, Env: env}, nil
}
func (reconcileTarget) Record(context.Context, *Release) error { return nil }

// The next deploy after a deployer killed mid-canary clears the split
// before it removes the release, and says so.
func TestReconcileClearsALeftCanary(t *testing.T) {
	f := &fakeSplit{}
	var log strings.Builder
	d := &Deployer{Target: &reconcileTarget{undoTarget{fakeSplit: f}}, Out: &log}
	if err := d.reconcile(context.Background(), "e"); err != nil {
		t.Fatal(err)
	}
	if calls := f.Calls(); !slices.Equal(calls, []string{"SetCanary 0 ", "SetShadow 0", "Remove r2"}) {
		t.Errorf("calls %q, want the split and the mirror cleared, then r2 removed", calls)
	}
	if !strings.Contains(log.String(), "release r2 was left mid-canary by a deployer that is gone: cleared the traffic split and the mirror") {
		t.Errorf("log:\n%s", log.String())
	}
}

// progressed is one call of Deployer.Progress, with how many ledger lines
// were written when it came.
type progressed struct {
	name, release, detail string
	ledgerLines           int
}

// progressDeployer is a Deployer with a ledger whose Progress records each
// call into got, and rt's rollout recording its steps through it, as
// run.newRollout wires them.
func progressDeployer(t *testing.T, rt *rolloutTest, rel *Release, got *[]progressed) *Deployer {
	t.Helper()
	ledger := filepath.Join(t.TempDir(), "ledger.jsonl")
	d := &Deployer{Ledger: &Ledger{Path: ledger}}
	d.Progress = func(name string, r *Release, detail string) {
		b, _ := os.ReadFile(ledger)
		*got = append(*got, progressed{name, r.ID, detail, strings.Count(string(b), "\n")})
	}
	rt.ro.event = func(name, detail string) { d.event(name, rel, detail) }
	return d
}

// Every step of a rollout reaches Deployer.Progress with its detail, after
// the ledger has it; the deploy's other events do not.
func TestProgressReceivesEveryRolloutStep(t *testing.T) {
	rel := &Release{ID: "r2", Env: "e"}
	var got []progressed
	rt := newRolloutTest()
	rt.ro.shadow = &ShadowSpec{Percent: 10, Duration: 5 * time.Second, MinAgreement: 0.95, MinSamples: 20}
	rt.split.report = shadow.Report{Compared: 50, Comparable: 50, Agreed: 50, AgreementRate: 1}
	d := progressDeployer(t, rt, rel, &got)
	d.event("started", rel, "canary")
	if _, err := rt.ro.shadowStep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := rt.ro.steps(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.event("switched", rel, "")
	d.event("canary-promoted", rel, rt.ro.out.Decision) // as run.canary records it after the switch
	d.event("live", rel, "")

	want := []struct{ name, detail string }{
		{"shadow", "passed: the new release agreed with the serving one on 100.0% of 50 answers (50)"},
		{"canary-step", "5% passed: canary error rate 0.000"},
		{"canary-step", "25% passed: canary error rate 0.000"},
		{"canary-step", "50% passed: canary error rate 0.000"},
		{"canary-promoted", "promoted: every step passed (shadow, 5%, 25%, 50%)"},
	}
	if len(got) != len(want) {
		t.Fatalf("Progress got %+v, want the %d rollout steps only", got, len(want))
	}
	// Ledger lines: started (1), then each step, the switch before the promotion.
	lines := []int{2, 3, 4, 5, 7}
	for i, w := range want {
		g := got[i]
		if g.name != w.name || g.release != "r2" || !strings.HasPrefix(g.detail, w.detail) || g.ledgerLines != lines[i] {
			t.Errorf("call %d: %+v, want %s of r2 with detail %q after %d ledger lines", i, g, w.name, w.detail, lines[i])
		}
	}
}

// An aborted canary's abort reaches Progress with the check that decided.
func TestProgressReceivesTheAbort(t *testing.T) {
	var got []progressed
	rt := newRolloutTest()
	rt.split.canaryErr = 25
	progressDeployer(t, rt, &Release{ID: "r2"}, &got)
	if err := rt.ro.steps(context.Background()); err == nil {
		t.Fatal("a failing canary passed")
	}
	var names []string
	for _, g := range got {
		names = append(names, g.name)
	}
	if !slices.Equal(names, []string{"canary-step", "canary-aborted"}) ||
		!strings.Contains(got[1].detail, "aborted at step 25%: failed on error-rate: canary error rate 1.000 (25 of 25) above 0.010") {
		t.Errorf("Progress got %+v, want the 5%% step then the abort at 25%% saying why", got)
	}
}
