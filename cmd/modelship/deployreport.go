package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/modelship/modelship/internal/analysis"
	"github.com/modelship/modelship/internal/clip"
	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/gha"
	"github.com/modelship/modelship/internal/logging"
	"github.com/modelship/modelship/internal/shadow"
	"github.com/modelship/modelship/notify"
	"github.com/modelship/modelship/serving/stage"
)

// startDeployEvents fills the stage's events with what is known before a
// deploy or rollback starts ("started" is posted by releaseStarted, once
// the release exists).
func startDeployEvents(ev *stageNotifier, req deploy.Request) {
	ev.Event.Environment, ev.Event.Image, ev.Event.ModelDigest, ev.Event.GitSHA = req.Env, req.Image, req.ModelDigest, req.GitSHA
	ev.Event.ImageDigest = pinnedDigest(req.Image)
	if req.ServedName != "" {
		ev.Event.Model = req.ServedName
	}
}

// releaseStarted posts the stage's "started" event once the deployer has
// made its release, so the event names it like the ones after it (a
// deploy refused before that, by the lock say, only reports its failure).
func releaseStarted(ev *stageNotifier, rel *deploy.Release) {
	releaseEvent(ev, rel)
	ev.Post(notify.StatusStarted)
}

// releaseProgress posts a step of a canary or shadow rollout (the
// deployer's Progress: ledger event name, the release rolled out, the
// step's detail) as a progress event of the stage naming the release,
// with the message "NAME: DETAIL".
func releaseProgress(ev *stageNotifier, name string, rel *deploy.Release, detail string) {
	releaseEvent(ev, rel)
	ev.Progress(name + ": " + detail)
}

// releaseEvent puts the release's facts on the stage's events: its id,
// image, model digest (the image's label, else the checkpoint's) and git
// SHA when it has one.
func releaseEvent(ev *stageNotifier, rel *deploy.Release) {
	ev.Event.Release, ev.Event.Image, ev.Event.ModelDigest = rel.ID, rel.Image, rel.ModelDigest
	ev.Event.ImageDigest = pinnedDigest(rel.Image)
	if rel.GitSHA != "" {
		ev.Event.GitSHA = rel.GitSHA
	}
}

// finishDeploy reports how a deploy (stage deploy) or a rollback (stage
// rollback) ended: the verdict (passed, failed, or rolled_back when a
// failed deploy put the previous release back) with its event and stage
// result, and in GitHub Actions the step outputs, the step summary with
// the release table, and an error annotation saying what failed.
func finishDeploy(sr *stageRun, req deploy.Request, res *deploy.Result, err error) {
	ev, ga := sr.ev, sr.ga
	v := stage.Passed
	if err != nil {
		v = stage.Failed
		if res != nil && res.RolledBack && ev.Event.Stage == notify.StageDeploy {
			v = stage.RolledBack
		}
	}
	var rel *deploy.Release
	if res != nil {
		rel = res.Release
	}
	if rel != nil {
		releaseEvent(ev, rel)
	}
	msg := ""
	switch {
	case err != nil:
		msg = err.Error()
	case res != nil:
		msg = deployTimings(res)
	}
	deployResult(sr, req, res)
	sr.decide(v, msg)

	if !ga.Enabled() {
		return
	}
	ga.SetOutput(gha.OutDeployVerdict, string(v))
	ga.SetOutput(gha.OutDeployEndpoint, req.URL)
	if rel != nil {
		ga.SetOutput(gha.OutReleaseID, rel.ID)
		ga.Image(rel.Image, pinnedDigest(rel.Image))
		ga.SetOutput(gha.OutImageID, rel.ImageID)
		ga.ModelDigest(rel.ModelDigest)
	} else {
		ga.Image(req.Image, pinnedDigest(req.Image))
		ga.ModelDigest(req.ModelDigest)
	}
	ga.AddStepSummary(deploySummary(ev.Event.Stage, req, res, err, v))
	if err != nil {
		ga.Error(gha.Annotation{Title: fmt.Sprintf("%s to %s %s", ev.Event.Stage, req.Env, strings.ReplaceAll(string(v), "_", " ")),
			Message: logging.Default.String(err.Error())})
	}
}

// pinnedDigest is the digest of a reference pinned by digest
// (name@sha256:...), else "".
func pinnedDigest(ref string) string {
	if _, d, ok := strings.Cut(ref, "@"); ok {
		return d
	}
	return ""
}

// deployTimings is one line of a deploy's timings.
func deployTimings(res *deploy.Result) string {
	ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	parts := []string{}
	if res.Plan != nil {
		parts = append(parts, res.Plan.Strategy)
	}
	parts = append(parts, "ready after "+ms(res.ReadyAfter), "switched "+ms(res.SwitchAfterReady)+" after ready")
	if res.Previous != nil {
		parts = append(parts, "previous release "+res.Previous.ID+" drained "+ms(res.DrainedAfter)+" after the switch")
	}
	parts = append(parts, "verified in "+ms(res.Verify))
	return strings.Join(parts, ", ")
}

// deploySummary is the step summary of a deploy or rollback: the verdict,
// a table of the release, the timings, and on failure what failed and what
// was put back.
func deploySummary(st notify.Stage, req deploy.Request, res *deploy.Result, err error, v stage.Verdict) string {
	var b strings.Builder
	icon := map[stage.Verdict]string{stage.Passed: "✅", stage.Failed: "❌", stage.RolledBack: "↩️"}[v]
	fmt.Fprintf(&b, "### %s modelship %s %s in %s\n\n", icon, st, strings.ReplaceAll(string(v), "_", " "), req.Env)
	cell := func(s string) string {
		if s == "" {
			return "-"
		}
		return "`" + strings.ReplaceAll(s, "|", `\|`) + "`"
	}
	b.WriteString("| Release | Image | Model digest | Git SHA | Strategy | Previous release | Endpoint |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	if res != nil && res.Release != nil {
		r := res.Release
		prev := ""
		if res.Previous != nil {
			prev = res.Previous.ID
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", cell(r.ID), cell(r.Image), cell(shortDigest(r.ModelDigest)),
			cell(shortSHA(r.GitSHA)), r.Strategy, cell(prev), cell(req.URL))
	} else {
		fmt.Fprintf(&b, "| - | %s | %s | %s | - | - | %s |\n", cell(req.Image), cell(shortDigest(req.ModelDigest)), cell(shortSHA(req.GitSHA)), cell(req.URL))
	}
	b.WriteString("\n")
	if res != nil && res.Rollout != nil {
		b.WriteString(rolloutMarkdown(res.Rollout))
	}
	if err == nil {
		if res != nil {
			fmt.Fprintf(&b, "Timings: %s.\n", deployTimings(res))
		}
		return b.String()
	}
	fmt.Fprintf(&b, "**What failed:** %s\n\n", strings.ReplaceAll(logging.Default.String(err.Error()), "\n", " "))
	switch {
	case res != nil && res.RolledBack && res.Previous != nil:
		fmt.Fprintf(&b, "**Rolled back:** traffic is back on release `%s` (%s).\n", res.Previous.ID, res.Previous.Image)
	case res == nil:
		b.WriteString("Nothing was changed in the environment.\n")
	}
	return b.String()
}

// deployStage runs a deploy or a rollback (run) as stage st: its events
// (started once the release exists, progress for each step of a canary or
// shadow rollout, then passed, failed or rolled_back; see stageEvents), its progress as log lines off a terminal
// (stageProgress), a GitHub Actions group "STAGE ENV", and the outputs and
// step summary (finishDeploy).
func deployStage(ctx context.Context, f *deployFlags, s stdio, sr *stageRun, d *deploy.Deployer, req deploy.Request, st notify.Stage,
	run func(context.Context) (*deploy.Result, error)) (*deploy.Result, error) {
	sr.ga.MaskSecrets(f.cfg)
	ev := sr.events(f.cfg, st)
	startDeployEvents(ev, req)
	ev.Begin()
	d.Started = func(rel *deploy.Release) { releaseStarted(ev, rel) }
	d.Progress = func(name string, rel *deploy.Release, detail string) { releaseProgress(ev, name, rel, detail) }
	format, _ := logging.ParseFormat(f.logFormat) // checked by deploySetup
	out, flush := stageProgress(terminalErr(s.err), format, st, req.Env)
	d.Out = out
	endGroup := sr.group(fmt.Sprintf("%s %s", st, req.Env))
	res, err := run(ctx)
	err = withHint(err) // the flag that changes the outcome, in every report of it
	flush()
	endGroup()
	finishDeploy(sr, req, res, err)
	if res != nil && res.Rollout != nil {
		printRollout(s.out, res.Rollout)
	}
	return res, err
}

// deployResult puts on the stage result of a deploy or rollback the
// release, the endpoint and the timings in seconds.
func deployResult(sr *stageRun, req deploy.Request, res *deploy.Result) {
	sr.res.Endpoint = req.URL
	sr.res.Release = &stage.Release{Env: req.Env, Image: req.Image, ModelDigest: req.ModelDigest, Strategy: req.Strategy}
	if res != nil && res.Release != nil {
		r := res.Release
		sr.res.Release = &stage.Release{ID: r.ID, Env: r.Env, Image: r.Image, ModelDigest: r.ModelDigest, Strategy: r.Strategy, Previous: r.Previous}
	}
	if res != nil {
		if res.Previous != nil {
			sr.res.Release.Previous = res.Previous.ID
		}
		for name, d := range map[string]time.Duration{"ready_after_s": res.ReadyAfter, "switch_after_ready_s": res.SwitchAfterReady,
			"drained_after_s": res.DrainedAfter, "verify_s": res.Verify, "budget_s": res.Budget} {
			if d > 0 {
				sr.figure(name, d.Seconds())
			}
		}
		rolloutFigures(sr, res.Rollout)
	}
}

// rolloutFacts are the sentences a canary or shadow rollout's report
// opens with: the decision, the requests the new release answered, the
// abort's time and the shadow's comparison.
func rolloutFacts(r *deploy.Rollout) []string {
	facts := []string{r.Decision}
	if total := r.CanaryRequests + r.StableRequests; total > 0 {
		facts = append(facts, fmt.Sprintf("Requests exposed to the new release: %d of %d (%.1f%%).", r.CanaryRequests, total, exposedPercent(r)))
	}
	if r.AbortAfter > 0 {
		facts = append(facts, fmt.Sprintf("Aborted %s after the canary's first request: all traffic back on the serving release.", r.AbortAfter.Round(time.Millisecond)))
	}
	if sh := r.Shadow; sh != nil {
		facts = append(facts, fmt.Sprintf("Shadow (%g%% mirrored): %.1f%% agreement (%d of %d comparable answers the same), %d compared, %d candidate errors, %d dropped; TTFB p50 stable %s, candidate %s.",
			sh.Percent, 100*sh.AgreementRate, sh.Agreed, sh.Comparable, sh.Compared, sh.CandidateErrors, sh.Dropped,
			msFigure(sh.Stable.TTFBP50Ms), msFigure(sh.Candidate.TTFBP50Ms)))
		if a := sh.Assertions; a.Checked > 0 {
			f := fmt.Sprintf("Validation suite's assertions on the %d mirrored requests with a case's prompt: the new release failed %d, the serving one %d.",
				a.Checked, a.CandidateFailed, a.StableFailed)
			if len(a.Examples) > 0 {
				f += " First: " + a.Examples[0] + "."
			}
			facts = append(facts, f)
		}
	}
	return facts
}

func msFigure(ms float64) string { return fmt.Sprintf("%.0fms", ms) }

// exposedPercent is the share of the rollout's requests the new release
// answered.
func exposedPercent(r *deploy.Rollout) float64 {
	total := r.CanaryRequests + r.StableRequests
	if total == 0 {
		return 0
	}
	return 100 * float64(r.CanaryRequests) / float64(total)
}

// rolloutMarkdown is the deploy report's Rollout section.
func rolloutMarkdown(r *deploy.Rollout) string {
	var b strings.Builder
	b.WriteString("#### Rollout\n\n")
	for _, f := range rolloutFacts(r) {
		b.WriteString(f + "\n\n")
	}
	if t := analysis.Table(r.Steps); t != "" {
		b.WriteString(t + "\n")
	}
	if r.Shadow != nil && len(r.Shadow.Worst) > 0 {
		b.WriteString(worstTable(r.Shadow.Worst) + "\n")
	}
	return b.String()
}

// worstTable lists the shadow's least similar answers.
func worstTable(worst []shadow.Disagreement) string {
	var b strings.Builder
	b.WriteString("| prompt | stable | candidate | similarity | times |\n|---|---|---|---|---|\n")
	cell := func(s string) string { return strings.ReplaceAll(clip.Line(s, 80), "|", `\|`) }
	for _, w := range worst {
		fmt.Fprintf(&b, "| %s | %s | %s | %.2f | %d |\n", cell(w.Prompt), cell(w.Stable), cell(w.Candidate), w.Similarity, max(w.Count, 1))
	}
	return b.String()
}

// printRollout is the Rollout section of the text summary.
func printRollout(w io.Writer, r *deploy.Rollout) {
	fmt.Fprintln(w, "rollout:")
	for _, f := range rolloutFacts(r) {
		fmt.Fprintf(w, "  %s\n", f)
	}
	indented(w, analysis.Table(r.Steps))
	if r.Shadow != nil && len(r.Shadow.Worst) > 0 {
		fmt.Fprintln(w, "  shadow's worst disagreements:")
		indented(w, worstTable(r.Shadow.Worst))
	}
}

// indented writes each line of text indented by two spaces.
func indented(w io.Writer, text string) {
	for l := range strings.Lines(text) {
		fmt.Fprintf(w, "  %s", l)
	}
}

// rolloutFigures put a rollout's numbers on the stage result:
// canary_requests, stable_requests, exposed_percent, abort_after_s (on an
// abort), agreement_rate (when a shadow step ran) and
// shadow_assertion_failures (when its mirrored requests met the
// validation suite's prompts).
func rolloutFigures(sr *stageRun, r *deploy.Rollout) {
	if r == nil {
		return
	}
	sr.figure("canary_requests", float64(r.CanaryRequests))
	sr.figure("stable_requests", float64(r.StableRequests))
	sr.figure("exposed_percent", exposedPercent(r))
	if r.AbortAfter > 0 {
		sr.figure("abort_after_s", r.AbortAfter.Seconds())
	}
	if r.Shadow != nil {
		sr.figure("agreement_rate", r.Shadow.AgreementRate)
		if a := r.Shadow.Assertions; a.Checked > 0 {
			sr.figure("shadow_assertion_failures", float64(a.CandidateFailed))
		}
	}
}
