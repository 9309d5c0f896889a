package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/modelship/modelship/internal/deploy"
)

// Record writes the release's facts and outcome as the annotations of
// ConfigMap NAME-release-RELEASE (created or replaced).
func (t *Target) Record(ctx context.Context, r *deploy.Release) error {
	cms := t.cs.CoreV1().ConfigMaps(t.opt.Namespace)
	name := recordName(t.opt.Name, r.ID)
	js, _ := json.MarshalIndent(r, "", "  ")
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: t.opt.Namespace,
			Labels: map[string]string{LabelName: "modelship", LabelInstance: t.opt.Name, LabelManagedBy: "modelship",
				LabelRole: "record", deploy.LabelEnv: r.Env, deploy.LabelRelease: r.ID},
			Annotations: r.Labels()},
		Data: map[string]string{"release.json": string(js)},
	}
	cur, err := cms.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = cms.Create(ctx, cm, metav1.CreateOptions{})
	case err == nil:
		cm.ResourceVersion = cur.ResourceVersion
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	}
	return t.wrap(err, "writing record "+name)
}

// Releases lists the environment's releases from their records, marking
// the one the Service's annotation names.
func (t *Target) Releases(ctx context.Context, env string) ([]*deploy.Release, error) {
	sel := labels.SelectorFromSet(map[string]string{LabelInstance: t.opt.Name, LabelRole: "record", deploy.LabelEnv: env})
	list, err := t.cs.CoreV1().ConfigMaps(t.opt.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, t.wrap(err, "listing the releases of "+env)
	}
	var out []*deploy.Release
	for _, cm := range list.Items {
		r, err := deploy.ReleaseFromLabels(cm.Annotations)
		if err != nil {
			continue
		}
		out = append(out, r)
	}
	deploy.SortReleases(out)
	svc, err := t.cs.CoreV1().Services(t.opt.Namespace).Get(ctx, t.opt.Name, metav1.GetOptions{})
	if err == nil {
		for _, r := range out {
			r.Serving = r.ID == svc.Annotations[AnnotationServing]
		}
	} else if !apierrors.IsNotFound(err) {
		return nil, t.wrap(err, "reading service "+t.opt.Name)
	}
	return out, nil
}

// Prune deletes the dropped releases of env (deploy.Pruner): each one's
// record (ConfigMap NAME-release-RELEASE) and, for a blue-green release
// whose Deployment NAME-RELEASE is still there (a deploy that could not
// clean up after itself), that Deployment first. The release the Service
// serves and the Deployment it selects are never touched. Images are the
// nodes': the kubelet's image garbage collection frees unused ones.
func (t *Target) Prune(ctx context.Context, env string, drop []*deploy.Release) error {
	var selected, serves string
	svc, err := t.cs.CoreV1().Services(t.opt.Namespace).Get(ctx, t.opt.Name, metav1.GetOptions{})
	switch {
	case err == nil:
		selected, serves = svc.Spec.Selector[LabelDeployment], svc.Annotations[AnnotationServing]
	case !apierrors.IsNotFound(err):
		return t.wrap(err, "reading service "+t.opt.Name+" (to keep what it serves)")
	}
	var errs []error
	for _, r := range drop {
		dep := DeploymentName(t.opt.Name, deploy.BlueGreen, r.ID)
		if r.ID == serves || dep == selected {
			errs = append(errs, fmt.Errorf("release %s serves %s (service %s): not pruned", r.ID, env, t.opt.Name))
			continue
		}
		if err := t.pruneDeployment(ctx, dep, r.ID); err != nil {
			errs = append(errs, fmt.Errorf("release %s: %w", r.ID, err))
			continue
		}
		name := recordName(t.opt.Name, r.ID)
		if err := t.cs.CoreV1().ConfigMaps(t.opt.Namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("release %s: %w", r.ID, t.wrap(err, "deleting record "+name)))
		}
	}
	return errors.Join(errs...)
}

// pruneDeployment deletes blue-green Deployment dep when it exists and is
// release's (this instance's, by its labels; by uid, so a Deployment
// recreated meanwhile is not the one deleted).
func (t *Target) pruneDeployment(ctx context.Context, dep, release string) error {
	d, err := t.deployments().Get(ctx, dep, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return t.wrap(err, "reading deployment "+dep)
	}
	if d.Labels[LabelInstance] != t.opt.Name || d.Labels[deploy.LabelRelease] != release {
		return nil // not ours
	}
	err = t.deployments().Delete(ctx, dep, metav1.DeleteOptions{
		PropagationPolicy: ptr(metav1.DeletePropagationBackground),
		Preconditions:     &metav1.Preconditions{UID: &d.UID},
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return t.wrap(err, "deleting deployment "+dep)
}

// Destroy deletes everything the target created for env (tests, teardown).
func (t *Target) Destroy(ctx context.Context, env string) error {
	sel := labels.SelectorFromSet(map[string]string{LabelInstance: t.opt.Name}).String()
	ns := t.opt.Namespace
	bg := metav1.DeleteOptions{PropagationPolicy: ptr(metav1.DeletePropagationBackground)}
	var errs []error
	errs = append(errs, t.cs.AppsV1().Deployments(ns).DeleteCollection(ctx, bg, metav1.ListOptions{LabelSelector: sel}))
	errs = append(errs, t.cs.CoreV1().ConfigMaps(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: sel}))
	errs = append(errs, t.cs.CoordinationV1().Leases(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: sel}))
	if err := t.cs.CoreV1().Services(ns).Delete(ctx, t.opt.Name, metav1.DeleteOptions{}); !apierrors.IsNotFound(err) {
		errs = append(errs, err)
	}
	return t.wrap(errors.Join(errs...), "destroying "+env)
}
