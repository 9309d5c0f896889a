package main

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/analysis"
	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/shadow"
	"github.com/modelship/modelship/notify"
	"github.com/modelship/modelship/serving/stage"
)

// abortedCanary is a canary that passed its shadow step and its 5% step,
// then failed at 25% on TTFT and was aborted.
func abortedCanary() (deploy.Request, *deploy.Result) {
	t0 := time.Date(2026, 12, 7, 13, 0, 0, 0, time.UTC)
	pass := func(name string, stable, canary float64) analysis.Check {
		return analysis.Check{Name: name, Stable: stable, Canary: canary, Limit: 0.01, Unit: "ratio", Verdict: stage.Passed,
			Why: "canary error rate 0.00% within 1.00%"}
	}
	steps := []analysis.Step{
		{Name: "5%", Percent: 5, Started: t0, Ended: t0.Add(time.Minute), Decision: analysis.Decision{
			Verdict: stage.Passed, Checks: []analysis.Check{pass("error-rate", 0, 0)}, Why: "all checks within their limits", StableN: 380, CanaryN: 21}},
		{Name: "25%", Percent: 25, Started: t0.Add(time.Minute), Ended: t0.Add(90 * time.Second), Decision: analysis.Decision{
			Verdict: stage.Failed, Decider: "ttft-ratio", StableN: 150, CanaryN: 52,
			Why: "failed on ttft-ratio: canary TTFT p95 412ms is 2.1× stable's 196ms, above 1.5×",
			Checks: []analysis.Check{pass("error-rate", 0, 0),
				{Name: "ttft-ratio", Stable: 196, Canary: 412, Limit: 294, MaxRatio: 1.5, Unit: "ms", Verdict: stage.Failed,
					Why: "canary TTFT p95 412ms is 2.1× stable's 196ms, above 1.5×"}}}},
	}
	req := deploy.Request{Env: "staging", Image: "registry.example.com/llm:2", URL: "http://127.0.0.1:8100", Strategy: "canary"}
	res := &deploy.Result{
		Release:    &deploy.Release{ID: "20261207-130000-2b", Env: "staging", Image: req.Image, Strategy: "canary", ModelDigest: "sha256:" + "ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12"},
		Previous:   &deploy.Release{ID: "20261206-090000-1a", Env: "staging", Image: "registry.example.com/llm:1"},
		RolledBack: true,
		Rollout: &deploy.Rollout{
			Steps:          steps,
			CanaryRequests: 73, StableRequests: 927,
			AbortAfter: 92*time.Second + 400*time.Millisecond,
			Decision:   "aborted at step 25%: failed on ttft-ratio: canary TTFT p95 412ms is 2.1× stable's 196ms, above 1.5×",
			Shadow: &shadow.Report{Upstream: "http://modelship-staging-2b:8000", Percent: 10, Offered: 220, Dropped: 2, Compared: 210,
				CandidateErrors: 1, Comparable: 200, Agreed: 190, AgreementRate: 0.95,
				Stable: shadow.Latency{N: 200, TTFBP50Ms: 180}, Candidate: shadow.Latency{N: 200, TTFBP50Ms: 201.4},
				Assertions: shadow.Assertions{Checked: 40, StableFailed: 1, CandidateFailed: 6,
					Examples: []string{`case "capital": icontains: "paris": missing 'paris'`}},
				Worst: []shadow.Disagreement{{Path: "/v1/chat/completions", Prompt: "What is the capital of France?\nAnswer in one word.",
					Stable: "Paris", Candidate: "Lyon | maybe", Similarity: 0.12, Count: 4}}},
		},
	}
	return req, res
}

// The deploy report's Rollout section (Markdown in the step summary, text
// on the terminal): the decision, the requests exposed, the abort's time,
// the shadow's agreement and worst answers, and the step table.
func TestRolloutReport(t *testing.T) {
	req, res := abortedCanary()
	md := deploySummary(notify.StageDeploy, req, res, errors.New("canary aborted at 25%"), stage.RolledBack)
	golden(t, "deploy_rollout.md.golden", md)
	var text bytes.Buffer
	printRollout(&text, res.Rollout)
	golden(t, "deploy_rollout.txt.golden", text.String())

	// A deploy without a rollout has no such section.
	res.Rollout = nil
	if md := deploySummary(notify.StageDeploy, req, res, nil, stage.Passed); bytes.Contains([]byte(md), []byte("Rollout")) {
		t.Errorf("a deploy without a rollout reports one:\n%s", md)
	}
}

// The stage result's figures of a rollout: the requests each version
// answered, the share exposed, the abort's time and the shadow's
// agreement; none of them without a rollout.
func TestRolloutFigures(t *testing.T) {
	req, res := abortedCanary()
	sr := &stageRun{res: stage.New("deploy")}
	deployResult(sr, req, res)
	want := map[string]float64{"canary_requests": 73, "stable_requests": 927, "exposed_percent": 7.3, "abort_after_s": 92.4, "agreement_rate": 0.95,
		"shadow_assertion_failures": 6}
	for k, v := range want {
		if got, ok := sr.res.Figures[k]; !ok || got != v {
			t.Errorf("figure %s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	res.Rollout.Shadow, res.Rollout.AbortAfter = nil, 0
	sr = &stageRun{res: stage.New("deploy")}
	deployResult(sr, req, res)
	if _, ok := sr.res.Figures["abort_after_s"]; ok {
		t.Error("abort_after_s on a rollout that was not aborted")
	}
	if _, ok := sr.res.Figures["agreement_rate"]; ok {
		t.Error("agreement_rate without a shadow step")
	}
	res.Rollout = nil
	sr = &stageRun{res: stage.New("deploy")}
	deployResult(sr, req, res)
	if _, ok := sr.res.Figures["canary_requests"]; ok {
		t.Error("canary_requests without a rollout")
	}
}
