package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/modelship/modelship/internal/deploy"
)

// Switch points the Service at in's Deployment once all its replicas are
// ready; a Deployment scaled below the environment's replicas (a canary
// being promoted, or the serving release a canary scaled down) first takes
// them over, batch by batch with no surge (fillUp). For a rolling release that is no longer the Deployment's template
// (a switch back after a failed verify), the template is rolled back to
// the release's ReplicaSet first and the rollout waited for.
func (t *Target) Switch(ctx context.Context, env string, in *deploy.Instance) error {
	d, err := t.deployments().Get(ctx, in.ID, metav1.GetOptions{})
	if err != nil {
		return t.wrap(err, "reading deployment "+in.ID)
	}
	if d.Spec.Template.Labels[deploy.LabelRelease] != in.Release {
		if err := t.rollBack(ctx, d, in.Release); err != nil {
			return err
		}
	}
	// A promoted canary keeps every sticky value on the new release while
	// the serving one's replicas are moved over (all of them forwarded
	// there); anything else ends the rollout's routes first.
	if err := t.routesForSwitch(ctx, env, in.ID); err != nil {
		return err
	}
	if err := t.fillUp(ctx, env, d); err != nil {
		return err
	}
	st, err := t.Rollout(ctx, in.ID, in.Release)
	if err != nil {
		return err
	}
	if !st.Ready {
		return fmt.Errorf("switching %s to release %s: not ready: %s", env, in.Release, st.Reason)
	}
	svcs := t.cs.CoreV1().Services(t.opt.Namespace)
	// The Service selects in's Deployment only: a canary's split (by
	// environment) and the rollout's control end here.
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]any{AnnotationServing: in.Release,
			AnnotationCanaryStable: nil, AnnotationCanary: nil, AnnotationControl: nil}},
		"spec": map[string]any{"selector": map[string]any{LabelInstance: t.opt.Name, LabelDeployment: in.ID, deploy.LabelEnv: nil}},
	})
	if _, err := svcs.Patch(ctx, t.opt.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return t.wrap(err, "switching service "+t.opt.Name)
	}
	// Only in's pods are left: each answers itself from here.
	if _, err := t.dropRoutes(ctx, env); err != nil {
		return err
	}
	// Wait until the endpoints list only in's pods, so "switched" means the
	// Service's endpoints say so.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, ready, other, err := t.endpoints(ctx, in.ID, "")
		if err != nil {
			return err
		}
		if ready > 0 && other == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("switching %s to release %s: the Service's endpoints did not follow within 30s", env, in.Release)
		}
		if err := deploy.Sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// endpoints counts the Service's endpoints: those of the pods of
// Deployment dep of release ("" any release), how many of those are ready,
// and those of other pods.
func (t *Target) endpoints(ctx context.Context, dep, release string) (mine, ready, other int, err error) {
	pods, err := t.Pods(ctx, "", dep, release)
	if err != nil {
		return 0, 0, 0, err
	}
	names := map[string]bool{}
	for _, p := range pods {
		names[p.Name] = true
	}
	slices, err := t.cs.DiscoveryV1().EndpointSlices(t.opt.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + t.opt.Name})
	if err != nil {
		return 0, 0, 0, t.wrap(err, "listing endpoints of "+t.opt.Name)
	}
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			switch {
			case e.TargetRef == nil || !names[e.TargetRef.Name]:
				other++
			case e.Conditions.Ready != nil && *e.Conditions.Ready:
				mine++
				ready++
			default:
				mine++
			}
		}
	}
	return mine, ready, other, nil
}

// rollBack sets Deployment d's pod template back to release's ReplicaSet
// (kubectl rollout undo) and waits for the rollout.
func (t *Target) rollBack(ctx context.Context, d *appsv1.Deployment, release string) error {
	rs, err := t.replicaSet(ctx, d.Name, release)
	if err != nil {
		return err
	}
	if rs == nil {
		return fmt.Errorf("deployment/%s has no revision of release %s left to go back to", d.Name, release)
	}
	tpl := *rs.Spec.Template.DeepCopy()
	delete(tpl.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	t.logf("rolling deployment/%s back to release %s (revision %d)", d.Name, release, revision(rs))
	if err := t.update(ctx, d, func(x *appsv1.Deployment) {
		x.Spec.Template = tpl
		for k, v := range tpl.Annotations {
			if strings.HasPrefix(k, "modelship.") {
				if x.Annotations == nil {
					x.Annotations = map[string]string{}
				}
				x.Annotations[k] = v
			}
		}
		if x.Labels != nil {
			x.Labels[deploy.LabelRelease] = release
		}
		if x.Spec.Replicas != nil && *x.Spec.Replicas == 0 {
			x.Spec.Replicas = ptr(int32(t.opt.Replicas))
		}
	}); err != nil {
		return err
	}
	timeout := t.opt.SwitchTimeout
	if timeout == 0 {
		timeout = time.Duration(deref(d.Spec.ProgressDeadlineSeconds))*time.Second + time.Minute
	}
	deadline := time.Now().Add(timeout)
	for {
		st, err := t.Rollout(ctx, d.Name, release)
		if err != nil {
			return err
		}
		if st.Ready {
			return nil
		}
		if st.Stalled || time.Now().After(deadline) {
			return fmt.Errorf("rolling deployment/%s back to release %s: %s %s", d.Name, release, st.Reason, strings.Join(st.Explain, "; "))
		}
		if err := deploy.Sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

// WaitDrained waits until the release's pods are out of the Service: for a
// blue-green release, its Deployment's pods left the endpoints (in-flight
// requests still finish there: they are only stopped by Stop, with the
// preStop delay and serve's drain); for a rolling release replaced by the
// rollout, its pods have terminated (each drained on SIGTERM).
func (t *Target) WaitDrained(ctx context.Context, env string, in *deploy.Instance, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		d, err := t.deployments().Get(ctx, in.ID, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return t.wrap(err, "reading deployment "+in.ID)
		}
		var done bool
		var what string
		if d.Spec.Template.Labels[deploy.LabelRelease] == in.Release {
			mine, _, _, err := t.endpoints(ctx, in.ID, in.Release)
			if err != nil {
				return err
			}
			done, what = mine == 0, "its pods to leave the Service's endpoints"
		} else {
			pods, err := t.Pods(ctx, "", in.ID, in.Release)
			if err != nil {
				return err
			}
			done, what = len(pods) == 0, fmt.Sprintf("its %d pods to terminate", len(pods))
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("draining release %s: still waiting for %s after %s", in.Release, what, timeout)
		}
		if err := deploy.Sleep(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
}

// Stop scales the release's Deployment to zero (kept for Resume) when the
// release is its current template, and waits for its pods to terminate;
// a rolling release already replaced needs nothing.
func (t *Target) Stop(ctx context.Context, in *deploy.Instance) error {
	d, err := t.runningTemplate(ctx, in)
	if d == nil || err != nil {
		return err
	}
	if err := t.update(ctx, d, func(x *appsv1.Deployment) { x.Spec.Replicas = ptr(int32(0)) }); err != nil {
		return err
	}
	deadline := time.Now().Add(time.Duration(PreStopSeconds+drainSeconds)*time.Second + 30*time.Second)
	for time.Now().Before(deadline) {
		pods, err := t.Pods(ctx, "", in.ID, in.Release)
		if err != nil {
			return err
		}
		if len(pods) == 0 {
			return nil
		}
		if err := deploy.Sleep(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("stopping %s: its pods did not terminate", in.Name)
}

// Resume scales a stopped release's Deployment back up.
func (t *Target) Resume(ctx context.Context, in *deploy.Instance) (*deploy.Instance, error) {
	d, err := t.deployments().Get(ctx, in.ID, metav1.GetOptions{})
	if err != nil {
		return nil, t.wrap(err, "reading deployment "+in.ID)
	}
	if d.Spec.Template.Labels[deploy.LabelRelease] != in.Release {
		return nil, fmt.Errorf("deployment/%s now runs release %s; cannot resume %s", in.ID, d.Spec.Template.Labels[deploy.LabelRelease], in.Release)
	}
	if err := t.update(ctx, d, func(x *appsv1.Deployment) { x.Spec.Replicas = ptr(int32(t.opt.Replicas)) }); err != nil {
		return nil, err
	}
	return t.instance(in.Env, in.Release, in.ID), nil
}

// Remove deletes a blue-green release's Deployment. For a rolling release
// still in the Deployment's template (its rollout failed before any switch)
// the template goes back to the previous revision while the Service
// selects that Deployment (the previous revision is what serves); when the
// Service selects another (a blue-green release serves: the strategy
// changed between deploys), or there is no previous revision, the
// Deployment is deleted. A rolling release already replaced keeps its
// ReplicaSet as revision history.
func (t *Target) Remove(ctx context.Context, in *deploy.Instance) error {
	d, err := t.runningTemplate(ctx, in)
	if d == nil || err != nil {
		return err
	}
	if in.ID == t.opt.Name && t.serviceSelects(ctx, in.ID) {
		prev, err := t.previousRevision(ctx, d, in.Release)
		if err != nil {
			return err
		}
		if prev != "" {
			return t.rollBack(ctx, d, prev)
		}
	}
	err = t.deployments().Delete(ctx, in.ID, metav1.DeleteOptions{PropagationPolicy: ptr(metav1.DeletePropagationBackground)})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return t.wrap(err, "deleting deployment "+in.ID)
}

// runningTemplate is in's Deployment when its pod template is in's
// release; nil when the Deployment is gone or a rollout replaced the
// release (its ReplicaSet stays as revision history).
func (t *Target) runningTemplate(ctx context.Context, in *deploy.Instance) (*appsv1.Deployment, error) {
	d, err := t.deployments().Get(ctx, in.ID, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, t.wrap(err, "reading deployment "+in.ID)
	}
	if d.Spec.Template.Labels[deploy.LabelRelease] != in.Release {
		return nil, nil
	}
	return d, nil
}

// serviceSelects reports whether the Service sends to Deployment dep's
// pods (false when it cannot be read: nothing serves through it then).
func (t *Target) serviceSelects(ctx context.Context, dep string) bool {
	svc, err := t.cs.CoreV1().Services(t.opt.Namespace).Get(ctx, t.opt.Name, metav1.GetOptions{})
	return err == nil && svc.Spec.Selector[LabelDeployment] == dep
}

// previousRevision is the release of d's newest ReplicaSet that is not
// release (and has run), "" when none.
func (t *Target) previousRevision(ctx context.Context, d *appsv1.Deployment, release string) (string, error) {
	sel := labels.SelectorFromSet(selector(t.opt.Name, d.Name))
	list, err := t.cs.AppsV1().ReplicaSets(t.opt.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return "", t.wrap(err, "listing replica sets of "+d.Name)
	}
	var best *appsv1.ReplicaSet
	for i := range list.Items {
		rs := &list.Items[i]
		if rs.Spec.Template.Labels[deploy.LabelRelease] == release {
			continue
		}
		if best == nil || revision(rs) > revision(best) {
			best = rs
		}
	}
	if best == nil {
		return "", nil
	}
	return best.Spec.Template.Labels[deploy.LabelRelease], nil
}
