package kubernetes_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/modelship/modelship/internal/analysis"
	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/kubernetes"
	"github.com/modelship/modelship/internal/testenv/rollouttest"
)

// directServices lists the environment's direct Services (LabelDirect).
func (e *env) directServices(t *testing.T) []string {
	t.Helper()
	list, err := e.target.Client().CoreV1().Services(e.ns).List(context.Background(), metav1.ListOptions{LabelSelector: kubernetes.LabelDirect})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range list.Items {
		out = append(out, s.Name)
	}
	return out
}

// A canary with a shadow step and a sticky header on Kubernetes, with no
// service mesh, under a conversations load: first the serving pods mirror
// to one replica of the new release (the same model: every answer
// agrees, and only the serving release answers clients), then each
// conversation stays on one version through each step, whichever pod the
// Service picked, and once on the new release never goes back. No client
// sees a failure; after the promotion no direct Service is left.
func TestShadowThenStickyCanary(t *testing.T) {
	images(t)
	e := newEnv(t, 2)
	e.deploy(t, good, deploy.Rolling)
	url := e.clusterIP(t)
	at := map[string]time.Time{}
	e.d.Hook = func(step string) { at[step] = time.Now() }
	const convs = 30
	req := e.canary(good2, 8*time.Second)
	req.Canary.Steps = []deploy.CanaryStep{{Percent: 50, Bake: 8 * time.Second}, {Percent: 100}}
	req.Canary.StickyHeader = rollouttest.ConvHeader
	req.Shadow = rollouttest.ShadowSpec()
	l := rollouttest.StartConversations(url, 4, convs)
	var res *deploy.Result
	var err error
	l.During(50, func() { res, err = e.d.Deploy(context.Background(), req) })
	seen := l.Seen(t)
	if err != nil {
		if res != nil && res.Rollout != nil && res.Rollout.Shadow != nil {
			rollouttest.LogShadow(t, res.Rollout.Shadow)
			t.Logf("worst disagreements: %+v", res.Rollout.Shadow.Worst)
		}
		t.Fatalf("canary of %s with a shadow step and a sticky header: %v", good2.Tag, err)
	}
	ro := res.Rollout
	if ro == nil || ro.Shadow == nil || len(ro.Steps) != 2 || ro.Steps[0].Name != "shadow" {
		t.Fatalf("rollout %+v: want a shadow report and 2 steps (the shadow, then 50%%; the last is the promotion)", ro)
	}
	rollouttest.LogShadow(t, ro.Shadow)
	t.Logf("canary: %s\n%s", ro.Decision, analysis.Table(ro.Steps))
	if ro.Shadow.AgreementRate != 1 || ro.Shadow.Comparable < 10 {
		t.Errorf("shadow of the same model: agreement %g on %d comparable answers, want 1 on at least 10", ro.Shadow.AgreementRate, ro.Shadow.Comparable)
	}
	if a := ro.Shadow.Assertions; a.Checked < 10 || a.CandidateFailed != 0 || a.StableFailed != 0 {
		t.Errorf("the validation case on the same model: %+v, want at least 10 answers checked, none failed", a)
	}
	firstStep := ro.Steps[1].Started
	for _, a := range seen {
		if a.Back.Before(firstStep) && a.Image != good.Tag {
			t.Errorf("a request sent at %s, before the first canary step, was answered by %s, want %s", a.Sent.Format(time.StampMilli), a.Image, good.Tag)
		}
	}
	rollouttest.StaysOnNew(t, seen, good2.Tag)
	for _, st := range ro.Steps[1:] {
		rollouttest.StickyStep(t, seen, at["canary-"+strconv.FormatFloat(st.Percent, 'f', -1, 64)], st, good2.Tag, convs)
	}
	if d := e.directServices(t); len(d) != 0 {
		t.Errorf("direct services left after the promotion: %v", d)
	}
	dep := kubernetes.DeploymentName("llm", deploy.Canary, res.Release.ID)
	if got := e.pods(t); got[dep] != 2 || len(got) != 1 {
		t.Errorf("ready pods per Deployment after the promotion: %v, want 2 of %s only", got, dep)
	}
	log := e.log.String()
	for _, want := range []string{"shadow: starting 1 replica of deployment/", "shadow: every pod of deployment/llm mirrors 100% of what it answers",
		"requests with header X-Conversation-Id go to the version their value hashes to"} {
		if !strings.Contains(log, want) {
			t.Errorf("the deploy log does not say %q", want)
		}
	}
}

// The regressed model's shadow disagrees: the rollout aborts at the shadow
// step on the agreement, with the worst disagreement (Paris against
// Lyon) in the report; no client ever got the regressed answer (the
// conversations fail on any answer without Paris), and the shadow's
// replica and direct Service are gone.
func TestShadowRegressedAbortsOnKubernetes(t *testing.T) {
	images(t)
	e := newEnv(t, 2)
	e.deploy(t, good, deploy.Rolling)
	url := e.clusterIP(t)
	req := e.canary(regr, 5*time.Second)
	req.Shadow = rollouttest.ShadowSpec()
	l := rollouttest.StartConversations(url, 4, 0)
	var res *deploy.Result
	var err error
	l.During(50, func() { res, err = e.d.Deploy(context.Background(), req) })
	l.Seen(t)
	rollouttest.RegressedShadowAborted(t, res, err)
	if d := e.directServices(t); len(d) != 0 {
		t.Errorf("direct services left after the abort: %v", d)
	}
	if got := e.pods(t); got["llm"] != 2 || len(got) != 1 {
		t.Errorf("ready pods per Deployment after the abort: %v, want both on the serving release (llm)", got)
	}
}

// Interrupting the deployer at the sticky step (Ctrl-C: the context ends)
// leaves the serving release answering every conversation: the pods'
// routes are dropped before the new release's replica stops, no direct
// Service is left, and no client saw a failure.
func TestStickyCanaryInterrupted(t *testing.T) {
	images(t)
	e := newEnv(t, 2)
	e.deploy(t, good, deploy.Rolling)
	url := e.clusterIP(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.d.Hook = func(step string) {
		if step == "canary-50" {
			cancel()
		}
	}
	req := e.canary(good2, 30*time.Second)
	req.Canary.Steps = []deploy.CanaryStep{{Percent: 50, Bake: 30 * time.Second}, {Percent: 100}}
	req.Canary.StickyHeader = rollouttest.ConvHeader
	l := rollouttest.StartConversations(url, 4, 30)
	var err error
	l.During(50, func() { _, err = e.d.Deploy(ctx, req) })
	l.WaitMore(100) // the conversations go on after the undo
	seen := l.Seen(t)
	if err == nil || !strings.Contains(err.Error(), "interrupted") || !strings.Contains(err.Error(), "all traffic back on") {
		t.Fatalf("deploy interrupted at the sticky step: %v, want interrupted with all traffic back on the serving release", err)
	}
	if d := e.directServices(t); len(d) != 0 {
		t.Errorf("direct services left after the interruption: %v", d)
	}
	if got := e.pods(t); got["llm"] != 2 || len(got) != 1 {
		t.Errorf("ready pods per Deployment after the interruption: %v, want both on the serving release (llm)", got)
	}
	last := seen[len(seen)-1].Sent
	for i := len(seen) - 1; i >= 0 && seen[i].Sent.After(last.Add(-2*time.Second)); i-- {
		if seen[i].Image != good.Tag {
			t.Errorf("conversation %s after the undo answered by %s, want the serving release %s", seen[i].Conv, seen[i].Image, good.Tag)
		}
	}
}
