package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/modelship/modelship/internal/deploy"
)

// Lock takes the Lease NAME-lock for the holder's TTL (spec.renewTime and
// leaseDurationSeconds, as Kubernetes' own leader election). A lease not
// renewed within its duration (or held by a process of this machine that
// is gone) is taken over by updating that very object version: of two
// takers one wins, the other gets a conflict and is told who holds it.
func (t *Target) Lock(ctx context.Context, env string, h deploy.Holder, _ *deploy.ImageInfo) (deploy.Lease, error) {
	hj, _ := json.Marshal(h)
	leases := t.cs.CoordinationV1().Leases(t.opt.Namespace)
	name := lockName(t.opt.Name)
	who := h.Who
	secs := int32((h.LeaseTTL() + time.Second - 1) / time.Second)
	now := metav1.NewMicroTime(time.Now())
	spec := coordv1.LeaseSpec{HolderIdentity: &who, AcquireTime: &now, RenewTime: &now, LeaseDurationSeconds: &secs}
	for attempt := 0; ; attempt++ {
		if attempt == 5 {
			return nil, fmt.Errorf("taking the lock of %s: it keeps changing hands; try again", env)
		}
		l, err := leases.Create(ctx, &coordv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{LabelRole: "lock", LabelInstance: t.opt.Name, deploy.LabelEnv: env},
				Annotations: map[string]string{AnnotationHolder: string(hj)}},
			Spec: spec,
		}, metav1.CreateOptions{})
		if err == nil {
			return &lease{t: t, env: env, cur: l}, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, t.wrap(err, "taking the lock of "+env)
		}
		cur, err := leases.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, t.wrap(err, "reading the lock of "+env)
		}
		held, renewed := leaseHolder(cur)
		if !held.Stale(renewed) {
			return nil, &deploy.LockedError{Env: env, Holder: held, Renewed: renewed}
		}
		// Take the stale lease over: an update of the version read.
		next := cur.DeepCopy()
		next.Annotations = map[string]string{AnnotationHolder: string(hj)}
		next.Labels[deploy.LabelEnv] = env
		next.Spec = spec
		l, err = leases.Update(ctx, next, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, t.wrap(err, "taking over the stale lock of "+env)
		}
		t.logf("took over the lock of %s from %s: not renewed since %s (lease %s)", env, held, renewed.Format(time.RFC3339), held.LeaseTTL())
		return &lease{t: t, env: env, cur: l}, nil
	}
}

// leaseHolder is the lock's holder and its last renewal.
func leaseHolder(l *coordv1.Lease) (deploy.Holder, time.Time) {
	var h deploy.Holder
	_ = json.Unmarshal([]byte(l.Annotations[AnnotationHolder]), &h)
	if l.Spec.LeaseDurationSeconds != nil && h.TTL == 0 {
		h.TTL = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	switch {
	case l.Spec.RenewTime != nil:
		return h, l.Spec.RenewTime.Time
	case l.Spec.AcquireTime != nil:
		return h, l.Spec.AcquireTime.Time
	}
	return h, h.Since
}

// BreakLock deletes the lock when its lease has run out
// (deploy.LockBreaker), the version read only.
func (t *Target) BreakLock(ctx context.Context, env string) (*deploy.Holder, error) {
	leases := t.cs.CoordinationV1().Leases(t.opt.Namespace)
	cur, err := leases.Get(ctx, lockName(t.opt.Name), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, t.wrap(err, "reading the lock of "+env)
	}
	held, renewed := leaseHolder(cur)
	if !held.Stale(renewed) {
		return nil, &deploy.LockedError{Env: env, Holder: held, Renewed: renewed}
	}
	uid, rv := cur.UID, cur.ResourceVersion
	err = leases.Delete(ctx, cur.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}})
	if apierrors.IsConflict(err) {
		return nil, fmt.Errorf("the lock of %s changed hands while breaking it; nothing was removed", env)
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, t.wrap(err, "removing the lock of "+env)
	}
	return &held, nil
}

// lease is a held Kubernetes lock: the Lease object as last written.
type lease struct {
	t   *Target
	env string
	cur *coordv1.Lease
}

// Renew moves spec.renewTime to now, on the version this holder last
// wrote: a conflict means another holder took the lease over.
func (l *lease) Renew(ctx context.Context) error {
	next := l.cur.DeepCopy()
	now := metav1.NewMicroTime(time.Now())
	next.Spec.RenewTime = &now
	up, err := l.t.cs.CoordinationV1().Leases(l.t.opt.Namespace).Update(ctx, next, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return fmt.Errorf("%w: the lease %s of %s was taken over or removed", deploy.ErrLockLost, l.cur.Name, l.env)
	}
	if err != nil {
		return l.t.wrap(err, "renewing the lock of "+l.env)
	}
	l.cur = up
	return nil
}

// Release deletes the Lease if it is still the version this holder wrote.
func (l *lease) Release(ctx context.Context) error {
	uid, rv := l.cur.UID, l.cur.ResourceVersion
	err := l.t.cs.CoordinationV1().Leases(l.t.opt.Namespace).Delete(ctx, l.cur.Name,
		metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return l.t.wrap(err, "releasing the lock of "+l.env)
}
