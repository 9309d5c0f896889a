package kubernetes

import (
	"context"
	"errors"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/modelship/modelship/internal/deploy"
)

// Router creates the environment's Service when it is missing (selecting
// nothing until the first switch).
func (t *Target) Router(ctx context.Context, spec deploy.RouterSpec, _ *deploy.ImageInfo) error {
	svcs := t.cs.CoreV1().Services(t.opt.Namespace)
	_, err := svcs.Get(ctx, t.opt.Name, metav1.GetOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return t.wrap(err, "reading service "+t.opt.Name)
	}
	_, err = svcs.Create(ctx, ServiceFor(t.opt, spec.Env, "", ""), metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return t.wrap(err, "creating service "+t.opt.Name)
}

// Workload is the description of release r that Start applies.
func (t *Target) Workload(ctx context.Context, spec *deploy.Spec) *Workload {
	surge, unav := t.rollout(ctx)
	return &Workload{Options: t.opt, Env: spec.Release.Env, Release: spec.Release, Image: t.imageFor(ctx, spec.Release),
		ContainerEnv: spec.Env, LoadBudget: spec.LoadBudget, MaxSurge: surge, MaxUnavailable: unav, SharedMemory: spec.SharedMemory,
		NonRoot: NonRootEngine(spec.Engine)}
}

// Start applies the release's Deployment: creates NAME-RELEASE
// (blue-green; canary, with 0 replicas until its first step), or updates the pod template of NAME (rolling: the rollout
// starts now), and writes its record. Its readiness is the rollout's
// (Ready).
func (t *Target) Start(ctx context.Context, spec *deploy.Spec) (*deploy.Instance, error) {
	if len(spec.GPUs) > 0 {
		return nil, errors.New("kubernetes target: GPUs are requested per pod (environments.<env>.kubernetes.gpus), not by UUID")
	}
	w := t.Workload(ctx, spec)
	if err := t.pullSecret(ctx, w); err != nil {
		return nil, err
	}
	if err := t.servingSecret(ctx, w, spec.Secrets); err != nil {
		return nil, err
	}
	want := w.Deployment()
	r := spec.Release
	if r.Strategy == deploy.Canary {
		// No surge: the canary's steps give it replicas the serving
		// release gives up (SetCanary), the promotion the rest (Switch).
		want.Spec.Replicas = ptr(int32(0))
	}
	r.Outcome = deploy.InProgress
	if err := t.Record(ctx, r); err != nil {
		return nil, err
	}
	cur, err := t.deployments().Get(ctx, want.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := t.deployments().Create(ctx, want, metav1.CreateOptions{}); err != nil {
			return nil, t.wrap(err, "creating deployment "+want.Name)
		}
	case err != nil:
		return nil, t.wrap(err, "reading deployment "+want.Name)
	default:
		if err := t.update(ctx, cur, func(d *appsv1.Deployment) {
			d.Labels, d.Annotations = want.Labels, want.Annotations
			d.Spec.Template = want.Spec.Template
			d.Spec.Strategy = want.Spec.Strategy
			d.Spec.Replicas = want.Spec.Replicas
			d.Spec.ProgressDeadlineSeconds = want.Spec.ProgressDeadlineSeconds
		}); err != nil {
			return nil, err
		}
	}
	t.logf("applied deployment/%s in namespace %s: %d replica(s) of %s (progress deadline %ds)", want.Name, t.opt.Namespace, w.Replicas, w.Image, *want.Spec.ProgressDeadlineSeconds)
	return t.instance(r.Env, r.ID, want.Name), nil
}

// update applies mutate to the Deployment, retrying on conflicts.
func (t *Target) update(ctx context.Context, d *appsv1.Deployment, mutate func(*appsv1.Deployment)) error {
	for attempt := 0; ; attempt++ {
		mutate(d)
		_, err := t.deployments().Update(ctx, d, metav1.UpdateOptions{})
		if err == nil {
			return nil
		}
		if !apierrors.IsConflict(err) || attempt == 5 {
			return t.wrap(err, "updating deployment "+d.Name)
		}
		if d, err = t.deployments().Get(ctx, d.Name, metav1.GetOptions{}); err != nil {
			return t.wrap(err, "reading deployment "+d.Name)
		}
	}
}

// instance is release's instance: Deployment dep, which the Service
// selects (Upstream). This process does not reach its pods (URL empty).
func (t *Target) instance(env, release, dep string) *deploy.Instance {
	return &deploy.Instance{Release: release, Env: env, ID: dep, Name: "deployment/" + dep + " (release " + release + ")", Upstream: dep}
}

// Instance finds a release: its own Deployment (blue-green), or the
// Deployment NAME when the release is its pod template or one of its
// ReplicaSets; nil when it is gone.
func (t *Target) Instance(ctx context.Context, env, release string) (*deploy.Instance, error) {
	bg := DeploymentName(t.opt.Name, deploy.BlueGreen, release)
	if _, err := t.deployments().Get(ctx, bg, metav1.GetOptions{}); err == nil {
		return t.instance(env, release, bg), nil
	} else if !apierrors.IsNotFound(err) {
		return nil, t.wrap(err, "reading deployment "+bg)
	}
	d, err := t.deployments().Get(ctx, t.opt.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, t.wrap(err, "reading deployment "+t.opt.Name)
	}
	if d.Spec.Template.Labels[deploy.LabelRelease] == release {
		return t.instance(env, release, d.Name), nil
	}
	rs, err := t.replicaSet(ctx, d.Name, release)
	if err != nil || rs == nil {
		return nil, err
	}
	return t.instance(env, release, d.Name), nil
}

// replicaSet is the newest ReplicaSet of Deployment dep for release.
func (t *Target) replicaSet(ctx context.Context, dep, release string) (*appsv1.ReplicaSet, error) {
	sel := labels.SelectorFromSet(map[string]string{LabelInstance: t.opt.Name, LabelDeployment: dep, deploy.LabelRelease: release})
	list, err := t.cs.AppsV1().ReplicaSets(t.opt.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, t.wrap(err, "listing replica sets of "+dep)
	}
	var best *appsv1.ReplicaSet
	for i := range list.Items {
		rs := &list.Items[i]
		if best == nil || revision(rs) > revision(best) {
			best = rs
		}
	}
	return best, nil
}

func revision(rs *appsv1.ReplicaSet) int64 {
	n, _ := strconv.ParseInt(rs.Annotations["deployment.kubernetes.io/revision"], 10, 64)
	return n
}
