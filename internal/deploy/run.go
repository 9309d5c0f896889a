package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/modelship/modelship/serving"
)

// run is one deploy's state: what has been done, so undo knows what to undo.
type run struct {
	d       *Deployer
	req     Request
	res     *Result
	rel     *Release
	old     *Release
	oldInst *Instance
	newInst *Instance

	oldStopped  bool     // recreate stopped the previous release
	switched    bool     // the router sends traffic to the new release
	switchTried bool     // a switch to the new release was asked (it may have happened)
	splitTried  bool     // a canary split or a mirror to the new release was asked
	ro          *rollout // the canary's steps, once they began
}

func (r *run) execute(ctx context.Context) error {
	d := r.d
	var err error
	if r.req.Shadow != nil && r.res.Plan.Strategy != Canary {
		d.logf("the shadow step runs with strategy canary only; this deploy is %s: no traffic is mirrored", r.res.Plan.Strategy)
	}
	switch r.res.Plan.Strategy {
	case Recreate:
		err = r.recreate(ctx)
	case Canary:
		err = r.canary(ctx)
	default:
		err = r.blueGreen(ctx)
	}
	if err == nil {
		err = r.verify(ctx)
	}
	if err == nil {
		return r.finish(ctx)
	}
	// Failure or interrupt: put the previous release back.
	interrupted := ctx.Err() != nil
	outcome, verb := Failed, "failed"
	if interrupted {
		outcome, verb = Interrupted, "was interrupted"
		err = fmt.Errorf("interrupted (%v)", context.Cause(ctx))
	}
	d.logf("release %s %s: %v", r.rel.ID, verb, err)
	if ro := r.res.Rollout; ro != nil && !strings.HasPrefix(ro.Decision, "aborted") {
		if ro.Decision == "" {
			ro.Decision = "not promoted: the deploy " + verb + ": " + oneLine(err.Error())
		} else { // promoted, then verify failed or the deploy was interrupted
			ro.Decision += "; then the deploy " + verb + ": " + oneLine(err.Error())
		}
	}
	cctx, cancel := fresh(ctx, r.cleanupTimeout())
	defer cancel()
	undone, uerr := r.undo(cctx)
	// A target that stops answering mid-undo (its daemon restarting, the
	// API server away) is waited for within the undo's budget: every step
	// of the undo can be done again.
	for errors.Is(uerr, ErrUnreachable) && cctx.Err() == nil {
		d.logf("the target does not answer while putting the previous release back (%v); trying again", uerr)
		if Sleep(cctx, 2*time.Second) != nil {
			break
		}
		undone, uerr = r.undo(cctx)
	}
	if r.ro != nil {
		// The requests the new release answered after the last analysis
		// (up to the split's end and its drain) count in what it exposed.
		if err := r.ro.read(cctx, nil); err != nil {
			d.logf("warning: the last measurements of the rollout: %v", err)
		}
	}
	r.rel.Outcome, r.rel.Reason, r.rel.Finished = outcome, oneLine(err.Error()), time.Now().UTC()
	if rerr := d.Target.Record(cctx, r.rel); rerr != nil {
		d.logf("warning: recording the outcome: %v", rerr)
	}
	d.event(string(outcome), r.rel, undone)
	// The cause stays reachable (errors.As: a canary's *AbortError).
	if uerr != nil {
		return fmt.Errorf("deploy of %s to %s %s: %w; %s; PUTTING THE PREVIOUS RELEASE BACK FAILED: %v", r.req.Image, r.req.Env, verb, err, undone, uerr)
	}
	return fmt.Errorf("deploy of %s to %s %s: %w; %s", r.req.Image, r.req.Env, verb, err, undone)
}

func (r *run) drainTimeout() time.Duration {
	if r.d.DrainTimeout == 0 {
		return 2 * time.Minute
	}
	return r.d.DrainTimeout
}

func (r *run) cleanupTimeout() time.Duration {
	t := r.d.CleanupTimeout
	if t == 0 {
		t = 5 * time.Minute
	}
	if r.oldStopped {
		t += r.res.Budget
	}
	return t
}

// start starts the new release and waits until it is ready.
func (r *run) start(ctx context.Context) error {
	d, req := r.d, r.req
	settings := req.Settings
	if u := r.res.Plan.GPUMemoryUtilization; u > 0 {
		settings.GPUMemoryUtilization = u
	}
	env := ReleaseEnv(r.rel, append([]string{req.ServedName}, req.ServedAliases...), settings)
	in, err := d.Target.Start(ctx, &Spec{Release: r.rel, Env: env, GPUs: r.res.Plan.GPUs, Port: serving.Port,
		LoadBudget: r.res.Budget, SharedMemory: settings.NeedsSharedMemory(), Secrets: req.Secrets, Engine: req.Engine})
	if err != nil {
		return fmt.Errorf("starting release %s: %w", r.rel.ID, err)
	}
	r.newInst = in
	d.event("started-container", r.rel, in.Name)
	d.hook("started")
	d.logf("started %s; waiting for /ready (health, %q in /v1/models, one generation)", in.Name, req.ServedName)
	every := d.ProgressEvery
	if every == 0 {
		every = 5 * time.Second
	}
	took, err := WaitReady(ctx, d.Target, in, r.res.Budget, d.out(), every)
	if err != nil {
		return err
	}
	r.res.ReadyAfter, r.rel.ReadyAfter = took, took
	d.logf("release %s ready after %s", r.rel.ID, took.Round(time.Millisecond))
	d.event("ready", r.rel, took.String())
	d.hook("ready")
	return ctx.Err()
}

func (r *run) switchTo(ctx context.Context) error {
	t0 := time.Now()
	// A switch cut short (an interrupt, a lost answer) may still have
	// taken effect: from here the undo switches back in any case.
	r.switchTried = true
	if err := r.d.Target.Switch(ctx, r.req.Env, r.newInst); err != nil {
		return err
	}
	r.switched = true
	r.res.SwitchAfterReady = time.Since(t0)
	r.d.logf("switched %s to release %s in %s", r.req.Env, r.rel.ID, r.res.SwitchAfterReady.Round(time.Millisecond))
	r.d.event("switched", r.rel, "")
	r.d.hook("switched")
	return ctx.Err()
}

func (r *run) blueGreen(ctx context.Context) error {
	if err := r.start(ctx); err != nil {
		return err
	}
	return r.switchAndDrain(ctx)
}

// switchAndDrain switches to the new release and waits until the
// previous one has no request in flight.
func (r *run) switchAndDrain(ctx context.Context) error {
	if err := r.switchTo(ctx); err != nil {
		return err
	}
	if r.oldInst != nil {
		t0 := time.Now()
		if err := r.d.Target.WaitDrained(ctx, r.req.Env, r.oldInst, r.drainTimeout()); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.d.logf("warning: %v (continuing: new requests already go to %s)", err, r.rel.ID)
		}
		r.res.DrainedAfter = time.Since(t0)
		r.d.logf("release %s drained %s after the switch", r.old.ID, r.res.DrainedAfter.Round(time.Millisecond))
		r.d.hook("drained")
	}
	return ctx.Err()
}

func (r *run) recreate(ctx context.Context) error {
	if r.oldInst != nil {
		expect := r.res.Budget
		if r.old.ReadyAfter > 0 {
			expect = r.old.ReadyAfter
		}
		r.d.logf("recreate: %s stops serving until %s is ready; expected downtime about %s (the previous release's load time; at most the %s budget). Release %s's image stays on disk for a rollback without pull.",
			r.req.Env, r.rel.ID, expect.Round(time.Second), r.res.Budget, r.old.ID)
		if err := r.d.Target.Stop(ctx, r.oldInst); err != nil {
			return err
		}
		r.oldStopped = true
		r.d.event("stopped-previous", r.old, "")
	}
	if err := r.start(ctx); err != nil {
		return err
	}
	return r.switchTo(ctx)
}

func (r *run) verify(ctx context.Context) error {
	if r.d.Verifier == nil {
		return nil
	}
	t0 := time.Now()
	r.d.logf("verifying %s through %s", r.rel.ID, r.req.URL)
	err := r.d.Verifier.Verify(ctx, r.req.URL, Expect{Release: r.rel.ID, Model: r.req.ServedName, ModelDigest: r.rel.ModelDigest, Image: r.req.Image})
	r.res.Verify = time.Since(t0)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("verify failed: %w", err)
	}
	r.d.logf("verified %s in %s", r.rel.ID, r.res.Verify.Round(time.Millisecond))
	r.d.hook("verified")
	return nil
}

// finish: the new release is live; retire the previous one (its image stays).
func (r *run) finish(ctx context.Context) error {
	cctx, cancel := fresh(ctx, 2*time.Minute)
	defer cancel()
	r.rel.Outcome, r.rel.Finished = Live, time.Now().UTC()
	if err := r.d.Target.Record(cctx, r.rel); err != nil {
		r.d.logf("warning: recording the outcome: %v", err)
	}
	r.d.event("live", r.rel, "")
	if r.oldInst != nil {
		if !r.oldStopped {
			if err := r.d.Target.Stop(cctx, r.oldInst); err != nil {
				r.d.logf("warning: %v", err)
			}
		}
		if err := r.d.Target.Remove(cctx, r.oldInst); err != nil {
			r.d.logf("warning: %v", err)
		}
	}
	if u, ok := r.d.Target.(RouterUpgrader); ok && r.newInst != nil {
		if err := u.UpgradeRouter(cctx, r.req.Env, r.newInst); err != nil {
			r.d.logf("warning: the gateway keeps its binary: %v", err)
		}
	}
	r.d.logf("release %s is live on %s", r.rel.ID, r.req.Env)
	return nil
}

// undo puts the previous release back and removes the new one. It returns
// a sentence saying what it did.
func (r *run) undo(ctx context.Context) (string, error) {
	d := r.d
	did, err := r.undoSplit(ctx)
	if err != nil {
		return "", err
	}
	if r.old == nil {
		if r.newInst != nil {
			if err := d.Target.Remove(ctx, r.newInst); err != nil {
				return "", err
			}
		}
		return fmt.Sprintf("release %s removed; there was no previous release to go back to", r.rel.ID), nil
	}
	oldInst := r.oldInst
	resumed := false
	if !r.oldStopped && r.res.Plan.Strategy != Rolling {
		// The previous release's engine may have died meanwhile (a crash,
		// the OOM killer): start it again before traffic goes back to it.
		// (A rolling update has no separate previous instance: switching
		// back rolls the Deployment back.)
		if st, err := d.Target.Status(ctx, oldInst); err == nil && !st.Running {
			d.logf("previous release %s is not running (exit %d); starting it again", r.old.ID, st.ExitCode)
			in, err := d.Target.Resume(ctx, oldInst)
			if err != nil {
				return "", fmt.Errorf("previous release %s stopped and could not be started again: %w", r.old.ID, err)
			}
			oldInst = in
			if _, err := WaitReady(ctx, d.Target, in, r.res.Budget, d.out(), 5*time.Second); err != nil {
				return "", fmt.Errorf("previous release %s: %w", r.old.ID, err)
			}
			did = append(did, "previous release "+r.old.ID+" (its engine had stopped) started again")
			resumed = true
		}
	}
	if r.oldStopped {
		d.logf("starting release %s again", r.old.ID)
		if r.newInst != nil { // free its GPUs first
			if err := d.Target.Remove(ctx, r.newInst); err != nil {
				return "", err
			}
			r.newInst = nil
		}
		in, err := d.Target.Resume(ctx, r.oldInst)
		if err != nil {
			return "", err
		}
		oldInst = in
		if _, err := WaitReady(ctx, d.Target, in, r.res.Budget, d.out(), 5*time.Second); err != nil {
			return "", fmt.Errorf("previous release %s: %w", r.old.ID, err)
		}
		did = append(did, "previous release "+r.old.ID+" started again")
	}
	if r.switched || r.switchTried || r.oldStopped {
		if err := d.Target.Switch(ctx, r.req.Env, oldInst); err != nil {
			return "", err
		}
		if r.switched || r.oldStopped {
			did = append(did, "traffic switched back to "+r.old.ID)
		} else {
			did = append(did, "traffic confirmed on "+r.old.ID+" (the interrupted switch may have taken effect)")
		}
		d.event("rolled-back", r.old, "from "+r.rel.ID)
		r.res.RolledBack = true
	}
	if r.newInst != nil {
		if r.switched || r.switchTried || r.splitTried {
			// Requests the new release took before the switch back (or
			// as the canary) finish there first.
			if err := d.Target.WaitDrained(ctx, r.req.Env, r.newInst, r.drainTimeout()); err != nil {
				d.logf("warning: %v", err)
			}
			if err := d.Target.Stop(ctx, r.newInst); err != nil {
				d.logf("warning: %v", err)
			}
		}
		if err := d.Target.Remove(ctx, r.newInst); err != nil {
			return "", err
		}
	}
	did = append(did, "release "+r.rel.ID+" removed")
	if d.Verifier != nil && (r.switched || r.switchTried || r.splitTried || r.oldStopped || resumed) {
		if err := d.Verifier.Verify(ctx, r.req.URL, Expect{Release: r.old.ID, Model: r.req.ServedName, ModelDigest: r.old.ModelDigest, Image: r.old.Image}); err != nil {
			return strings.Join(did, ", "), fmt.Errorf("previous release %s does not verify either: %w", r.old.ID, err)
		}
		did = append(did, r.old.ID+" verified again")
	}
	if !r.switchTried && !r.splitTried && !r.oldStopped && !resumed {
		did = append([]string{"previous release " + r.old.ID + " kept serving throughout"}, did...)
	}
	return strings.Join(did, ", "), nil
}

// undoSplit is the first step of a canary's undo: every request back to
// the serving release, no mirror.
func (r *run) undoSplit(ctx context.Context) ([]string, error) {
	if !r.splitTried {
		return nil, nil
	}
	if err := clearSplit(ctx, r.d.Target.(Splitter), r.req.Env); err != nil {
		return nil, err
	}
	if r.old == nil {
		return nil, nil
	}
	r.d.event("rolled-back", r.old, "from the canary "+r.rel.ID)
	r.res.RolledBack = true
	return []string{"all traffic back on " + r.old.ID + " (the canary's share and the mirror cleared)"}, nil
}
