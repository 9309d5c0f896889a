package deploy

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/modelship/modelship/internal/analysis"
	"github.com/modelship/modelship/internal/shadow"
	"github.com/modelship/modelship/serving/stage"
)

// shadowStep mirrors ro.shadow.Percent of the requests to the new release
// for Duration (longer while too few answers were compared, up to the
// canary's Deadline), then stops the mirror and judges the agreement. It
// fails with an *AbortError when the new release agreed too little or
// the mirror compared too few answers by the deadline. promoted: an
// operator promoted during the step (modelship promote), so the canary's
// steps are skipped too.
func (ro *rollout) shadowStep(ctx context.Context) (promoted bool, err error) {
	sp := ro.shadow
	rec := analysis.Step{Name: "shadow", Percent: sp.Percent, Started: ro.now()}
	if err := ro.split.SetShadow(ctx, ro.env, ro.canary, sp.Percent, sp.Checks); err != nil {
		return false, fmt.Errorf("mirroring %s of %s's requests to release %s: %w", percentName(sp.Percent), ro.env, ro.canary.Release, err)
	}
	ro.hook("shadow")
	ro.logf("shadow: %s of %s's requests are mirrored to release %s for %s (clients get release %s's answers)",
		percentName(sp.Percent), ro.env, ro.canary.Release, sp.Duration, ro.stable.Release)
	var stopSynth func()
	dec, rep, err := ro.shadowWait(ctx, rec.Started, &stopSynth)
	if stopSynth != nil {
		stopSynth()
	}
	if err != nil {
		return false, err
	}
	cctx, cancel := fresh(ctx, 30*time.Second)
	defer cancel()
	if err := ro.split.SetShadow(cctx, ro.env, nil, 0, nil); err != nil {
		return false, fmt.Errorf("stopping the mirror of %s to release %s: %w", ro.env, ro.canary.Release, err)
	}
	rec.Decision, rec.Ended = dec, ro.now()
	ro.out.Shadow = rep
	ro.out.Steps = append(ro.out.Steps, rec)
	ro.logf("shadow %s: %s", dec.Verdict, dec.Why)
	if dec.Verdict != stage.Passed {
		ro.out.Decision = "aborted at the shadow step: " + dec.Why
		ro.event("canary-aborted", ro.out.Decision)
		return false, &AbortError{Env: ro.env, Step: "shadow", Decision: dec, Why: dec.Why}
	}
	ro.event("shadow", "passed: "+dec.Why)
	if dec.Decider == "operator" {
		ro.clearControl(ctx)
		ro.out.Decision = dec.Why
		return true, nil
	}
	return false, nil
}

// shadowWait polls the mirror's report every interval until Duration is
// over and the report decides, the deadline passes, or an operator aborts
// or promotes (resume acts on the canary's paused steps).
func (ro *rollout) shadowWait(ctx context.Context, start time.Time, stopSynth *func()) (analysis.Decision, *shadow.Report, error) {
	sp := ro.shadow
	for {
		if err := ro.sleep(ctx, ro.spec.Interval); err != nil {
			return analysis.Decision{}, nil, err
		}
		rep, err := ro.split.ShadowReport(ctx, ro.env)
		if err != nil {
			return analysis.Decision{}, nil, fmt.Errorf("reading the mirror's report of %s: %w", ro.env, err)
		}
		if action, err := ro.split.Control(ctx, ro.env); err != nil {
			return analysis.Decision{}, nil, fmt.Errorf("reading the operator's control of %s's rollout: %w", ro.env, err)
		} else if action == ControlAbort {
			why := "aborted by an operator (modelship abort) at the shadow step"
			return analysis.Decision{Verdict: stage.Failed, Decider: "operator", Why: why}, rep, nil
		} else if action == ControlPromote {
			why := "promoted by an operator (modelship promote) at the shadow step; the canary's steps are skipped"
			return analysis.Decision{Verdict: stage.Passed, Decider: "operator", Why: why}, rep, nil
		}
		elapsed := ro.now().Sub(start)
		ro.logf("shadow: %d answers compared (%d comparable), agreement %.1f%% so far, %s of %s", rep.Compared, rep.Comparable,
			100*rep.AgreementRate, elapsed.Round(time.Second), sp.Duration)
		if elapsed < sp.Duration {
			continue
		}
		dec := ShadowDecision(rep, *sp)
		if dec.Verdict != stage.Inconclusive {
			return dec, rep, nil
		}
		if elapsed >= ro.spec.Deadline {
			dec.Verdict = stage.Failed
			dec.Why = fmt.Sprintf("the shadow step stayed inconclusive for %s: %s", ro.spec.Deadline, dec.Why)
			return dec, rep, nil
		}
		if *stopSynth == nil && ro.spec.Traffic == TrafficSynthetic && ro.synthetic != nil {
			*stopSynth = ro.synthetic(ctx)
			ro.logf("shadow: too few answers compared (%d of %d needed): sending synthetic analysis traffic through %s's endpoint", rep.Comparable, sp.MinSamples, ro.env)
		}
	}
}

// ShadowDecision judges a mirror's report: passed when at least
// MinSamples answers were comparable, at least MinAgreement of them agreed
// and (with Checks) the new release failed no more of the validation
// suite's assertions than the serving one on the same requests;
// inconclusive with too few answers, failed otherwise. The failed check
// decides; agreement first.
func ShadowDecision(rep *shadow.Report, sp ShadowSpec) analysis.Decision {
	checks := []analysis.Check{agreementCheck(rep, sp)}
	if len(sp.Checks) > 0 {
		checks = append(checks, assertionsCheck(rep.Assertions))
	}
	d := analysis.Decision{Verdict: stage.Passed, Checks: checks, CanaryN: int(rep.Comparable), StableN: int(rep.Comparable)}
	for _, c := range checks {
		if c.Verdict != stage.Passed && d.Decider == "" {
			d.Verdict, d.Decider, d.Why = c.Verdict, c.Name, c.Why
		}
	}
	if d.Verdict == stage.Passed {
		whys := make([]string, len(checks))
		for i, c := range checks {
			whys[i] = c.Why
		}
		d.Why = strings.Join(whys, "; ")
	}
	return d
}

// agreementCheck: enough comparable answers, and enough of them the same.
func agreementCheck(rep *shadow.Report, sp ShadowSpec) analysis.Check {
	c := analysis.Check{Name: "agreement", Stable: 1, Canary: rep.AgreementRate, Limit: sp.MinAgreement, Unit: "ratio"}
	switch {
	case rep.Comparable < uint64(max(sp.MinSamples, 0)):
		c.Verdict = stage.Inconclusive
		c.Why = fmt.Sprintf("the mirror compared %d answers both releases gave, fewer than the %d needed", rep.Comparable, sp.MinSamples)
	case rep.AgreementRate < sp.MinAgreement:
		c.Verdict = stage.Failed
		c.Why = fmt.Sprintf("the new release agreed with the serving one on %.1f%% of %d answers (%d), below the %.1f%% required; it failed %d requests the serving one answered",
			100*rep.AgreementRate, rep.Comparable, rep.Agreed, 100*sp.MinAgreement, rep.CandidateErrors)
	default:
		c.Verdict = stage.Passed
		c.Why = fmt.Sprintf("the new release agreed with the serving one on %.1f%% of %d answers (%d), at least %.1f%% required",
			100*rep.AgreementRate, rep.Comparable, rep.Agreed, 100*sp.MinAgreement)
	}
	return c
}

// assertionsCheck: the new release failed no more of the validation
// suite's assertions than the serving one did on the same requests. No
// request with a suite case's prompt passes, and says so: the suite had
// nothing to say of this traffic.
func assertionsCheck(a shadow.Assertions) analysis.Check {
	c := analysis.Check{Name: "assertions", Stable: float64(a.StableFailed), Canary: float64(a.CandidateFailed),
		Limit: float64(a.StableFailed), Unit: "requests", Verdict: stage.Passed}
	switch {
	case a.Checked == 0:
		c.Why = "no mirrored request had a validation case's prompt: the suite's assertions judged nothing"
	case a.CandidateFailed > a.StableFailed:
		c.Verdict = stage.Failed
		c.Why = fmt.Sprintf("the new release failed the validation suite's assertions on %d of %d requests with a case's prompt, the serving one on %d",
			a.CandidateFailed, a.Checked, a.StableFailed)
		if len(a.Examples) > 0 {
			c.Why += " (first: " + a.Examples[0] + ")"
		}
	default:
		c.Why = fmt.Sprintf("the validation suite's assertions failed the new release on %d of %d requests with a case's prompt, the serving one on %d",
			a.CandidateFailed, a.Checked, a.StableFailed)
	}
	return c
}
