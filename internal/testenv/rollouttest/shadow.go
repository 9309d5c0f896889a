package rollouttest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/shadow"
	"github.com/modelship/modelship/serving/stage"
	"github.com/modelship/modelship/suite"
)

// ShadowSpec mirrors every request for 2s, needing 10 compared answers
// and 90% of them the same, and checks the validation case "capital"
// (Paris) on both releases' answers: the shadow step of the Docker and
// Kubernetes e2e tests.
func ShadowSpec() *deploy.ShadowSpec {
	return &deploy.ShadowSpec{Percent: 100, Duration: 2 * time.Second, MinAgreement: 0.9, MinSamples: 10,
		Checks: []suite.TextCheck{{Case: "capital", Prompt: "What is the capital of France?",
			Assertions: []suite.TextAssertion{{Kind: "icontains", Value: []byte(`"paris"`)}}}}}
}

// LogShadow logs a mirror's report and its worst disagreements.
func LogShadow(t *testing.T, rep *shadow.Report) {
	t.Helper()
	t.Logf("shadow: %d offered, %d dropped, %d skipped, %d compared, %d comparable, %d agreed: agreement %.3f; candidate errors %d; assertions %d checked, stable failed %d, candidate failed %d; TTFB p50 stable %.1f ms, candidate %.1f ms",
		rep.Offered, rep.Dropped, rep.Skipped, rep.Compared, rep.Comparable, rep.Agreed, rep.AgreementRate, rep.CandidateErrors,
		rep.Assertions.Checked, rep.Assertions.StableFailed, rep.Assertions.CandidateFailed, rep.Stable.TTFBP50Ms, rep.Candidate.TTFBP50Ms)
	for _, w := range rep.Worst {
		t.Logf("shadow disagreement (similarity %.2f, %d times) on %q: stable %q, candidate %q", w.Similarity, w.Count, w.Prompt, w.Stable, w.Candidate)
	}
}

// RegressedShadowAborted checks the deploy of the regressed model (it
// answers Lyon) with ShadowSpec: aborted at the shadow step by its
// agreement, then by the failed assertions check too, rolled back, the
// candidate failing every checked answer and stable none, the worst
// disagreement Paris against Lyon, and no canary step run. It returns
// the shadow's report.
func RegressedShadowAborted(t *testing.T, res *deploy.Result, err error) *shadow.Report {
	t.Helper()
	var ae *deploy.AbortError
	if !errors.As(err, &ae) || ae.Step != "shadow" || ae.Decision.Decider != "agreement" {
		t.Fatalf("deploy error %v, want a canary aborted at the shadow step by its agreement", err)
	}
	if res == nil || !res.RolledBack || res.Rollout == nil || res.Rollout.Shadow == nil {
		t.Fatalf("result %+v: want rolled back, with the shadow's report", res)
	}
	rep := res.Rollout.Shadow
	LogShadow(t, rep)
	t.Logf("deploy error: %v", err)
	if rep.AgreementRate >= 0.9 || rep.Comparable < 10 {
		t.Errorf("agreement %g on %d comparable answers, want below the 0.9 limit on at least 10", rep.AgreementRate, rep.Comparable)
	}
	if a := rep.Assertions; a.Checked < 10 || a.CandidateFailed != a.Checked || a.StableFailed != 0 || len(a.Examples) == 0 {
		t.Errorf("the validation case on the regressed model: %+v, want every checked answer of the candidate failed, none of stable's", a)
	}
	if c := ae.Decision.Checks; len(c) != 2 || c[1].Name != "assertions" || c[1].Verdict != stage.Failed {
		t.Errorf("shadow checks %+v, want agreement then a failed assertions check", c)
	}
	if len(rep.Worst) == 0 || !strings.Contains(rep.Worst[0].Stable, "Paris") || !strings.Contains(rep.Worst[0].Candidate, "Lyon") {
		t.Errorf("worst disagreements %+v, want Paris (stable) against Lyon (candidate) first", rep.Worst)
	}
	if n := len(res.Rollout.Steps); n != 1 || res.Rollout.CanaryRequests != 0 {
		t.Errorf("%d steps ran, the canary answered %d requests; want the shadow step only, none", n, res.Rollout.CanaryRequests)
	}
	return rep
}
