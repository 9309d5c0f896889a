package deploy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/modelship/modelship/internal/analysis"
)

// checkRollout refuses, before anything is touched, a canary or a shadow
// step the target cannot run, or canary steps that make no sense.
func (d *Deployer) checkRollout(req *Request) error {
	_, split := d.Target.(Splitter)
	if req.Strategy == Canary && !split {
		return fmt.Errorf("strategy canary needs a router that splits traffic; target %s does not yet: use rolling or blue-green", d.Target.Describe())
	}
	if req.Shadow != nil && !split {
		return fmt.Errorf("a shadow step needs a router that mirrors traffic; target %s does not yet: deploy without shadow", d.Target.Describe())
	}
	if req.Strategy == Canary && req.Canary == nil {
		return errors.New("strategy canary needs canary steps; none were given")
	}
	if req.Canary != nil {
		if err := req.Canary.check(); err != nil {
			return err
		}
		if err := req.Canary.Analysis.Validate(); err != nil {
			return fmt.Errorf("canary analysis: %w", err)
		}
	}
	if s := req.Shadow; s != nil && (s.Percent <= 0 || s.Percent > 100 || s.Duration <= 0 || s.MinAgreement < 0 || s.MinAgreement > 1) {
		return fmt.Errorf("shadow: percent %g, duration %s, min agreement %g: expected a percent in (0, 100], a positive duration and an agreement from 0 to 1",
			s.Percent, s.Duration, s.MinAgreement)
	}
	return nil
}

// canary starts the new release, mirrors traffic to it (a shadow step,
// when asked), moves traffic to it step by step, analysing each step, and
// promotes it (the switch, as blue-green) once every step passed.
func (r *run) canary(ctx context.Context) error {
	// The router must take the rollout's commands before anything starts.
	if _, err := r.d.Target.(Splitter).Control(ctx, r.req.Env); err != nil {
		return fmt.Errorf("strategy canary: %w", err)
	}
	if err := r.start(ctx); err != nil {
		return err
	}
	if r.oldInst == nil {
		r.d.logf("canary: %s has no serving release to compare the new one with; switching to it as blue-green", r.req.Env)
		return r.switchAndDrain(ctx)
	}
	ro := r.newRollout()
	r.ro, r.res.Rollout = ro, ro.out
	r.splitTried = true // from here the undo clears the split and the mirror first
	promoted := false
	if r.req.Shadow != nil {
		var err error
		if promoted, err = ro.shadowStep(ctx); err != nil {
			return err
		}
	}
	if !promoted {
		if err := ro.steps(ctx); err != nil {
			return err
		}
	}
	r.d.logf("canary of %s: %s; switching all traffic to release %s", r.req.Env, ro.out.Decision, r.rel.ID)
	if err := r.switchAndDrain(ctx); err != nil {
		return err
	}
	r.d.event("canary-promoted", r.rel, ro.out.Decision)
	return nil
}

// newRollout is the canary's step runner over this deploy's target.
func (r *run) newRollout() *rollout {
	d := r.d
	eng, _ := d.Target.(EngineReader)
	ro := &rollout{
		split: d.Target.(Splitter), engines: eng, env: r.req.Env, stable: r.oldInst, canary: r.newInst,
		spec: r.req.Canary.withDefaults(), shadow: r.req.Shadow, analyse: analysis.Analyse,
		logf: d.logf, event: func(name, detail string) { d.event(name, r.rel, detail) }, hook: d.hook,
		now: time.Now, sleep: Sleep, out: &Rollout{},
	}
	if d.Synthetic != nil && r.req.URL != "" {
		ro.synthetic = func(ctx context.Context) func() { return d.Synthetic(ctx, r.req.URL) }
	}
	return ro
}

// clearSplit sends every request of env to the serving release and stops
// any mirror: the first thing an undo does after a canary, so that an
// interrupted deploy leaves the serving release at 100%.
// A router that cannot split (ErrSplitUnsupported) has nothing to clear.
func clearSplit(ctx context.Context, s Splitter, env string) error {
	err := s.SetCanary(ctx, env, nil, 0, "")
	if errors.Is(err, ErrSplitUnsupported) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sending all of %s's traffic back to the serving release: %w", env, err)
	}
	if err := s.SetShadow(ctx, env, nil, 0, nil); err != nil && !errors.Is(err, ErrSplitUnsupported) {
		return fmt.Errorf("stopping the mirror of %s: %w", env, err)
	}
	return nil
}
