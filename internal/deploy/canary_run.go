package deploy

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/modelship/modelship/internal/analysis"
	"github.com/modelship/modelship/serving/stage"
)

// Defaults of a CanarySpec.
const (
	DefaultCanaryInterval = 10 * time.Second
	DefaultCanaryDeadline = 10 * time.Minute
)

// Traffic of a step with too few requests.
const (
	TrafficWait      = "wait"
	TrafficSynthetic = "synthetic"
)

// Control actions an operator asks a running rollout for (Splitter.Control).
const (
	ControlPromote = "promote"
	ControlAbort   = "abort"
	ControlResume  = "resume"
	// ControlClear forgets the action once the rollout acted on it.
	ControlClear = "clear"
)

// AbortError says a canary (or shadow) step decided against the new
// release, or an operator aborted it; all traffic went back to the
// serving release at once.
type AbortError struct {
	Env  string
	Step string // "5%", "shadow"
	// Decision is the step's last analysis (the deciding check is its
	// Decider); Operator: aborted by modelship abort instead.
	Decision analysis.Decision
	Operator bool
	Why      string // one sentence, in numbers
}

func (e *AbortError) Error() string {
	return fmt.Sprintf("canary of %s aborted at step %s: %s", e.Env, e.Step, e.Why)
}

// check says what is wrong with a canary spec, naming the step.
func (s *CanarySpec) check() error {
	if len(s.Steps) == 0 {
		return errors.New("strategy canary needs canary steps; none were given")
	}
	prev := 0.0
	for i, st := range s.Steps {
		if st.Percent <= prev || st.Percent > 100 {
			return fmt.Errorf("canary step %d: percent %g: expected more than the step before (%g) and at most 100", i+1, st.Percent, prev)
		}
		prev = st.Percent
	}
	if prev != 100 {
		return fmt.Errorf("canary steps end at %g%%: expected the last step to be 100 (the promotion)", prev)
	}
	if s.Traffic != "" && s.Traffic != TrafficWait && s.Traffic != TrafficSynthetic {
		return fmt.Errorf("canary traffic %q: expected wait or synthetic", s.Traffic)
	}
	return nil
}

// withDefaults fills the spec's zero Interval, Deadline and Traffic.
func (s CanarySpec) withDefaults() CanarySpec {
	if s.Interval <= 0 {
		s.Interval = DefaultCanaryInterval
	}
	if s.Deadline <= 0 {
		s.Deadline = DefaultCanaryDeadline
	}
	if s.Traffic == "" {
		s.Traffic = TrafficWait
	}
	return s
}

// rollout runs a canary's steps (and its shadow step) with only what
// they need: the router's Splitter, the two instances, a clock.
type rollout struct {
	split   Splitter
	engines EngineReader // nil: no engine metrics
	env     string
	stable  *Instance // the serving release
	canary  *Instance // the new release
	spec    CanarySpec
	shadow  *ShadowSpec
	analyse func(analysis.Window, analysis.Thresholds) analysis.Decision
	// synthetic starts analysis traffic through the environment's
	// endpoint (nil: there is none); stop ends it.
	synthetic func(ctx context.Context) (stop func())
	logf      func(format string, a ...any)
	event     func(name, detail string)
	hook      func(step string)
	now       func() time.Time
	sleep     func(ctx context.Context, d time.Duration) error

	out         *Rollout
	cursor      uint64
	firstCanary time.Time
	noEngine    map[string]bool // releases whose engine metrics were not read (said once)
}

// percentName is "5%", "12.5%".
func percentName(p float64) string { return strconv.FormatFloat(p, 'f', -1, 64) + "%" }

// steps runs every step below 100% in order; nil means promote (all
// steps passed or an operator promoted). A failed step has already sent
// all traffic back to the serving release when it returns.
func (ro *rollout) steps(ctx context.Context) error {
	_, next, err := ro.split.Samples(ctx, ro.env, 0)
	if err != nil {
		return fmt.Errorf("reading the measurements of %s's router before the canary: %w", ro.env, err)
	}
	ro.cursor = next
	for _, st := range ro.spec.Steps {
		if st.Percent >= 100 {
			break
		}
		promote, err := ro.step(ctx, st)
		if err != nil {
			return err
		}
		if promote {
			ro.logf("canary of %s: promoted by an operator (modelship promote) at step %s; the remaining steps are skipped", ro.env, percentName(st.Percent))
			ro.out.Decision = "promoted by an operator (modelship promote) at step " + percentName(st.Percent)
			return nil
		}
	}
	ro.out.Decision = fmt.Sprintf("promoted: every step passed (%s)", ro.stepNames())
	return nil
}

func (ro *rollout) stepNames() string {
	s := ""
	for i, st := range ro.out.Steps {
		if i > 0 {
			s += ", "
		}
		s += st.Name
	}
	return s
}

// stepState is one step in progress.
type stepState struct {
	rec       analysis.Step
	bake      time.Duration
	pause     bool
	window    analysis.Window
	passed    bool // passed after its bake (waiting for approval when pause)
	stopSynth func()
}

// step sends st.Percent to the canary and analyses every Interval until
// the step passes (promote: an operator promoted), fails, or is aborted.
func (ro *rollout) step(ctx context.Context, st CanaryStep) (promote bool, err error) {
	s := &stepState{rec: analysis.Step{Name: percentName(st.Percent), Percent: st.Percent, Started: ro.now()}, bake: st.Bake, pause: st.Pause}
	defer func() {
		if s.stopSynth != nil {
			s.stopSynth()
		}
		s.rec.Ended = ro.now()
		ro.out.Steps = append(ro.out.Steps, s.rec)
	}()
	if err := ro.split.SetCanary(ctx, ro.env, ro.canary, st.Percent, ro.spec.StickyHeader); err != nil {
		return false, fmt.Errorf("sending %s of %s's requests to release %s: %w", s.rec.Name, ro.env, ro.canary.Release, err)
	}
	ro.hook("canary-" + strconv.FormatFloat(st.Percent, 'f', -1, 64))
	// What was measured before this step (at the step before's percent)
	// is counted, but not in this step's window.
	if err := ro.read(ctx, nil); err != nil {
		return false, err
	}
	ro.logf("canary step %s: %s of %s's requests go to release %s, for at least %s, analysed every %s",
		s.rec.Name, s.rec.Name, ro.env, ro.canary.Release, st.Bake, ro.spec.Interval)
	for {
		if err := ro.sleep(ctx, ro.spec.Interval); err != nil {
			return false, err
		}
		done, promote, err := ro.analyseStep(ctx, s)
		if done || err != nil {
			return promote, err
		}
	}
}

// analyseStep is one interval of a step: measure, decide, act.
func (ro *rollout) analyseStep(ctx context.Context, s *stepState) (done, promote bool, err error) {
	dec, err := ro.measure(ctx, &s.window)
	if err != nil {
		return true, false, err
	}
	s.rec.Decision = dec
	elapsed := ro.now().Sub(s.rec.Started)
	if dec.Verdict == stage.Failed {
		return true, false, ro.abort(ctx, s.rec.Name, &s.rec.Decision, false, dec.Why)
	}
	action, err := ro.split.Control(ctx, ro.env)
	if err != nil {
		return true, false, fmt.Errorf("reading the operator's control of %s's rollout: %w", ro.env, err)
	}
	switch action {
	case ControlAbort:
		return true, false, ro.abort(ctx, s.rec.Name, &s.rec.Decision, true, "aborted by an operator (modelship abort) at step "+s.rec.Name)
	case ControlPromote:
		ro.clearControl(ctx)
		return true, true, nil
	}
	switch {
	case s.passed || dec.Verdict == stage.Passed && elapsed >= s.bake:
		s.passed = true
		if !s.pause || action == ControlResume {
			if action == ControlResume {
				ro.clearControl(ctx)
			}
			ro.logf("canary step %s passed after %s: %s", s.rec.Name, elapsed.Round(time.Millisecond), dec.Why)
			ro.event("canary-step", s.rec.Name+" passed: "+dec.Why)
			return true, false, nil
		}
		ro.logf("step %s passed; waiting for approval: modelship resume --env %s or promote", s.rec.Name, ro.env)
	case dec.Verdict == stage.Inconclusive && elapsed >= s.bake:
		if elapsed >= ro.spec.Deadline {
			s.rec.Decision.Verdict = stage.Failed
			return true, false, ro.abort(ctx, s.rec.Name, &s.rec.Decision, false, ro.stayedInconclusive(s.rec.Name, dec))
		}
		ro.moreTraffic(ctx, s, dec)
	default: // still baking
		ro.logf("canary step %s: %s so far, %s into its %s bake (canary %d, stable %d requests): %s",
			s.rec.Name, dec.Verdict, elapsed.Round(time.Millisecond), s.bake, dec.CanaryN, dec.StableN, dec.Why)
	}
	return false, false, nil
}

// measure adds the samples since the last read to w, the step's window,
// reads the engines' metrics, and analyses it.
func (ro *rollout) measure(ctx context.Context, w *analysis.Window) (analysis.Decision, error) {
	if err := ro.read(ctx, w); err != nil {
		return analysis.Decision{}, err
	}
	w.StableEngine = ro.engine(ctx, ro.stable)
	w.CanaryEngine = ro.engine(ctx, ro.canary)
	return ro.analyse(*w, ro.spec.Analysis), nil
}

// read counts the samples measured since the last read and adds them to
// w (nil: to none).
func (ro *rollout) read(ctx context.Context, w *analysis.Window) error {
	samples, next, err := ro.split.Samples(ctx, ro.env, ro.cursor)
	if err != nil {
		return fmt.Errorf("reading the measurements of %s's router: %w", ro.env, err)
	}
	ro.cursor = next
	if w == nil {
		w = &analysis.Window{}
	}
	for _, m := range samples {
		switch m.Upstream {
		case ro.canary.Upstream:
			w.Canary = append(w.Canary, m.Sample)
			ro.out.CanaryRequests++
			at := m.At
			if at.IsZero() {
				at = ro.now()
			}
			if ro.firstCanary.IsZero() || at.Before(ro.firstCanary) {
				ro.firstCanary = at
			}
		case ro.stable.Upstream:
			w.Stable = append(w.Stable, m.Sample)
			ro.out.StableRequests++
		}
	}
	return nil
}

// engine reads in's engine metrics; nil (said once per release) when they
// cannot be read from here.
func (ro *rollout) engine(ctx context.Context, in *Instance) *analysis.Engine {
	if ro.engines == nil {
		return nil
	}
	e, err := ro.engines.EngineMetrics(ctx, in)
	if (err != nil || e == nil) && !ro.noEngine[in.Release] {
		if ro.noEngine == nil {
			ro.noEngine = map[string]bool{}
		}
		ro.noEngine[in.Release] = true
		why := "no ready instance reachable from here"
		if err != nil {
			why = err.Error()
		}
		ro.logf("engine metrics of release %s not read (%s): its KV-cache and queue checks are skipped", in.Release, why)
	}
	if err != nil {
		return nil
	}
	return e
}

// moreTraffic starts synthetic traffic once for the step when the spec
// asks for it, else says the step keeps waiting.
func (ro *rollout) moreTraffic(ctx context.Context, s *stepState, dec analysis.Decision) {
	if s.stopSynth == nil && ro.spec.Traffic == TrafficSynthetic && ro.synthetic != nil {
		s.stopSynth = ro.synthetic(ctx)
		ro.logf("canary step %s: too few requests (canary %d, stable %d): sending synthetic analysis traffic through %s's endpoint", s.rec.Name, dec.CanaryN, dec.StableN, ro.env)
		return
	}
	ro.logf("canary step %s: inconclusive (canary %d, stable %d requests): %s; waiting for more, at most %s in all", s.rec.Name, dec.CanaryN, dec.StableN, dec.Why, ro.spec.Deadline)
}

// stayedInconclusive is the sentence of a step past its deadline.
func (ro *rollout) stayedInconclusive(name string, dec analysis.Decision) string {
	need := ro.spec.Analysis.WithDefaults().MinSamples
	head := fmt.Sprintf("step %s stayed inconclusive for %s: ", name, ro.spec.Deadline)
	switch {
	case dec.CanaryN < need:
		return head + fmt.Sprintf("canary had %d requests, fewer than the %d needed", dec.CanaryN, need)
	case dec.StableN < need:
		return head + fmt.Sprintf("the serving release had %d requests, fewer than the %d needed", dec.StableN, need)
	}
	return head + dec.Why
}

// abort sends all traffic back to the serving release at once, then
// records why in the step's decision.
func (ro *rollout) abort(ctx context.Context, step string, dec *analysis.Decision, operator bool, why string) error {
	cctx, cancel := fresh(ctx, 30*time.Second)
	defer cancel()
	err := ro.split.SetCanary(cctx, ro.env, nil, 0, "")
	back := ro.now()
	if !ro.firstCanary.IsZero() {
		ro.out.AbortAfter = back.Sub(ro.firstCanary)
	}
	dec.Why = why
	if operator {
		dec.Decider = "operator"
	}
	ro.out.Decision = "aborted at step " + step + ": " + why
	ro.event("canary-aborted", ro.out.Decision)
	ro.logf("canary of %s ABORTED at step %s: %s; all traffic back on release %s (%s after the canary's first request)",
		ro.env, step, why, ro.stable.Release, ro.out.AbortAfter.Round(time.Millisecond))
	aerr := &AbortError{Env: ro.env, Step: step, Decision: *dec, Operator: operator, Why: why}
	if err != nil {
		return fmt.Errorf("%w; sending all traffic back to release %s failed: %v", aerr, ro.stable.Release, err)
	}
	return aerr
}

// clearControl forgets the operator's action once acted on.
func (ro *rollout) clearControl(ctx context.Context) {
	if err := ro.split.SetControl(ctx, ro.env, ControlClear); err != nil {
		ro.logf("warning: clearing the operator's control of %s: %v", ro.env, err)
	}
}
