package kubernetes

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/modelship/modelship/internal/deploy"
)

// RolloutState is what the Deployment's status says about a release.
type RolloutState struct {
	Ready bool
	// Stalled is set when the controller gave up: ProgressDeadlineExceeded.
	Stalled bool
	// Reason is one line: why not ready (or the stall's reason).
	Reason string
	// Explain lists the pod events and log lines behind a stall or a wait.
	Explain []string
}

// Rollout reads the state of release's rollout in Deployment dep. It trusts
// the Deployment's conditions only once the controller has observed the
// current spec (status.observedGeneration >= metadata.generation): an old
// ProgressDeadlineExceeded stays visible until then.
func (t *Target) Rollout(ctx context.Context, dep, release string) (*RolloutState, error) {
	d, err := t.deployments().Get(ctx, dep, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return &RolloutState{Stalled: true, Reason: "deployment/" + dep + " was deleted"}, nil
	}
	if err != nil {
		return nil, t.wrap(err, "reading deployment "+dep)
	}
	if got := d.Spec.Template.Labels[deploy.LabelRelease]; got != release {
		return &RolloutState{Stalled: true, Reason: fmt.Sprintf("deployment/%s now runs release %s, not %s", dep, got, release)}, nil
	}
	if d.Status.ObservedGeneration < d.Generation {
		return &RolloutState{Reason: fmt.Sprintf("waiting for the deployment controller to observe generation %d (observed %d)", d.Generation, d.Status.ObservedGeneration)}, nil
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := &RolloutState{}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			st.Stalled = true
			st.Reason = fmt.Sprintf("rollout of deployment/%s stalled: ProgressDeadlineExceeded after %ds without progress (%s)", dep, deref(d.Spec.ProgressDeadlineSeconds), c.Message)
		}
	}
	s := d.Status
	if !st.Stalled && s.UpdatedReplicas >= want && s.Replicas <= s.UpdatedReplicas && s.AvailableReplicas >= want {
		st.Ready = true
		return st, nil
	}
	if !st.Stalled {
		ready := 0
		if pods, err := t.Pods(ctx, "", dep, release); err == nil {
			for _, p := range pods {
				if PodReady(&p) && p.DeletionTimestamp == nil {
					ready++
				}
			}
		}
		st.Reason = fmt.Sprintf("%d of %d new replicas ready", ready, want)
		if old := s.Replicas - s.UpdatedReplicas; old > 0 {
			st.Reason += fmt.Sprintf(", %d old still serving", old)
		}
	}
	st.Explain = t.explain(ctx, dep, release, st.Stalled)
	if len(st.Explain) > 0 && !st.Stalled {
		st.Reason += "; " + st.Explain[0]
	}
	return st, nil
}

func deref(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

// Pods lists the target's pods (of Options.Name) of environment env, in
// Deployment dep, of release; "" matches any.
func (t *Target) Pods(ctx context.Context, env, dep, release string) ([]corev1.Pod, error) {
	set := map[string]string{LabelInstance: t.opt.Name}
	for k, v := range map[string]string{deploy.LabelEnv: env, LabelDeployment: dep, deploy.LabelRelease: release} {
		if v != "" {
			set[k] = v
		}
	}
	sel := labels.SelectorFromSet(set).String()
	list, err := t.cs.CoreV1().Pods(t.opt.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, t.wrap(err, "listing pods "+sel)
	}
	return list.Items, nil
}

// explain lists, for the release's pods that are not ready, their most
// recent warning events ("Readiness probe failed: ...") and, when stalled,
// their last log lines.
func (t *Target) explain(ctx context.Context, dep, release string, logs bool) []string {
	pods, err := t.Pods(ctx, "", dep, release)
	if err != nil {
		return []string{"(pods unavailable: " + err.Error() + ")"}
	}
	var out []string
	for _, p := range pods {
		if PodReady(&p) || p.DeletionTimestamp != nil {
			continue
		}
		evs, err := t.cs.CoreV1().Events(t.opt.Namespace).List(ctx, metav1.ListOptions{
			FieldSelector: "involvedObject.kind=Pod,involvedObject.name=" + p.Name})
		if err == nil {
			items := evs.Items
			sort.SliceStable(items, func(i, j int) bool { return eventTime(&items[i]).After(eventTime(&items[j])) })
			seen := map[string]bool{}
			for _, e := range items {
				if e.Type != corev1.EventTypeWarning || seen[e.Reason] {
					continue
				}
				seen[e.Reason] = true
				count := ""
				if e.Count > 1 {
					count = fmt.Sprintf(" (%d times)", e.Count)
				}
				out = append(out, fmt.Sprintf("pod %s: %s: %s%s", p.Name, e.Reason, strings.TrimSpace(e.Message), count))
			}
		}
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" {
				out = append(out, fmt.Sprintf("pod %s: container %s waiting: %s %s", p.Name, cs.Name, w.Reason, w.Message))
			}
		}
		if logs {
			for _, l := range squeeze(t.lastLogs(ctx, p.Name, false, 10)) {
				out = append(out, "pod "+p.Name+" log: "+l)
			}
		}
	}
	return out
}

// squeeze folds runs of identical lines into one with a count.
func squeeze(lines []string) []string {
	var out []string
	for i := 0; i < len(lines); {
		j := i
		for j < len(lines) && lines[j] == lines[i] {
			j++
		}
		if n := j - i; n > 1 {
			out = append(out, fmt.Sprintf("%s (%d times)", lines[i], n))
		} else {
			out = append(out, lines[i])
		}
		i = j
	}
	return out
}

func eventTime(e *corev1.Event) time.Time {
	if !e.LastTimestamp.IsZero() {
		return e.LastTimestamp.Time
	}
	if !e.EventTime.IsZero() {
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// PodReady reports whether p's Ready condition is true.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (t *Target) lastLogs(ctx context.Context, pod string, previous bool, n int64) []string {
	b, err := t.cs.CoreV1().Pods(t.opt.Namespace).GetLogs(pod, &corev1.PodLogOptions{TailLines: &n, Previous: previous}).DoRaw(ctx)
	if err != nil {
		return nil
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if l = strings.TrimRight(l, "\r"); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// Status reports a stalled rollout (Reason, with the events that explain
// it) or a crashing container (its exit code and previous log lines) as not
// running, so the deploy stops waiting at once.
func (t *Target) Status(ctx context.Context, in *deploy.Instance) (*deploy.Status, error) {
	st, err := t.Rollout(ctx, in.ID, in.Release)
	if err != nil {
		return nil, err
	}
	if st.Stalled {
		return &deploy.Status{Running: false, ExitCode: -1, Reason: st.Reason, Logs: st.Explain}, nil
	}
	pods, err := t.Pods(ctx, "", in.ID, in.Release)
	if err != nil {
		return nil, err
	}
	for _, p := range pods {
		for _, cs := range p.Status.ContainerStatuses {
			// Waiting for something that will not come by itself.
			if w := cs.State.Waiting; w != nil && slices.Contains(hopeless, w.Reason) {
				return &deploy.Status{Running: false, ExitCode: -1,
					Reason: fmt.Sprintf("pod %s cannot start its container: %s: %s", p.Name, w.Reason, w.Message),
					Logs:   t.explain(ctx, in.ID, in.Release, false)}, nil
			}
			term := cs.LastTerminationState.Terminated
			if term == nil {
				term = cs.State.Terminated
			}
			if term == nil || cs.RestartCount == 0 && cs.State.Terminated == nil {
				continue
			}
			logs := []string{fmt.Sprintf("pod %s: container %s exited (%s), restarted %d times", p.Name, cs.Name, term.Reason, cs.RestartCount)}
			logs = append(logs, t.lastLogs(ctx, p.Name, cs.RestartCount > 0, 15)...)
			return &deploy.Status{Running: false, ExitCode: int(term.ExitCode), Logs: logs}, nil
		}
	}
	return &deploy.Status{Running: true}, nil
}

// hopeless are container waiting reasons that do not resolve by waiting.
var hopeless = []string{"ErrImageNeverPull", "InvalidImageName", "CreateContainerConfigError"}
