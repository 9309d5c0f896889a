package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/measure"
	"github.com/modelship/modelship/internal/serve"
	"github.com/modelship/modelship/internal/shadow"
	"github.com/modelship/modelship/suite"
)

// A canary on Kubernetes splits traffic by replica ratio, with no service
// mesh: while it runs, the Service selects the pods of the environment
// (both releases' Deployments), and a step of P% runs ceil(N×P/100) of the
// environment's N replicas as the new release and the rest as the serving
// one, never more than N in all (no surge: the batched rollout for GPUs
// that cannot hold two copies). Each pod's `modelship serve` measures the
// requests it answers (serve.SamplesPath), read through the API server's
// pod proxy. The operator's promote, abort or resume is an annotation on
// the Service. A sticky header and a shadow are routes the pods apply
// (route.go).
const (
	// AnnotationCanaryStable on the Service names the serving release's
	// Deployment while a canary runs; AnnotationCanary the new one's.
	AnnotationCanaryStable = "modelship.canary-stable"
	AnnotationCanary       = "modelship.canary"
	// AnnotationControl on the Service is the operator's action for the
	// running rollout: promote, abort or resume.
	AnnotationControl = "modelship.rollout-control"
)

// CanaryReplicas is how many of n replicas run the new release for percent
// of the traffic: ceil(n×percent/100), at least 1 and at most n. note says
// when the replicas cannot give that share (3 replicas cannot do 5%).
func CanaryReplicas(n int, percent float64) (k int, note string) {
	k = int(math.Ceil(float64(n)*percent/100 - 1e-9))
	k = max(1, min(n, k))
	if got := 100 * float64(k) / float64(n); math.Abs(got-percent) > 1e-9 {
		note = fmt.Sprintf("%d replica(s) cannot take exactly %g%%: %d of %d (%.0f%%)", n, percent, k, n, got)
	}
	return k, note
}

// Batch is one step of a no-surge move: the serving release's Deployment
// is scaled to Stable first, then the new one to Canary.
type Batch struct{ Stable, Canary int }

// Batches moves the new release from `from` to `to` of n replicas one
// replica at a time; each batch scales the one losing a replica first, so
// no more than n pods ever run (or wait for a GPU).
func Batches(n, from, to int) []Batch {
	var out []Batch
	for k := from; k != to; {
		if k < to {
			k++
		} else {
			k--
		}
		out = append(out, Batch{Stable: n - k, Canary: k})
	}
	return out
}

// SetCanary sends percent of env's requests to in by replica ratio (see
// CanaryReplicas); in nil or percent 0 puts the Service back on the
// serving release at once and scales it back to all replicas.
//
// With a sticky header, every pod of both versions is given the split
// (serve.StickyRoute): a request carrying the header goes to the version
// its value hashes to, exactly percent of the values on the new release
// whatever the replica ratio, forwarded by the pod the Service picked
// when that pod is the other version's.
func (t *Target) SetCanary(ctx context.Context, env string, in *deploy.Instance, percent float64, sticky string) error {
	svc, err := t.cs.CoreV1().Services(t.opt.Namespace).Get(ctx, t.opt.Name, metav1.GetOptions{})
	if err != nil {
		return t.wrap(err, "reading service "+t.opt.Name)
	}
	stable := svc.Annotations[AnnotationCanaryStable]
	if stable == "" {
		stable = svc.Spec.Selector[LabelDeployment]
	}
	if in == nil || percent <= 0 {
		return t.clearCanary(ctx, env, stable, svc.Annotations[AnnotationCanary])
	}
	if stable == "" || stable == "none" {
		return fmt.Errorf("kubernetes: service %s serves no release to split traffic with", t.opt.Name)
	}
	n := t.opt.Replicas
	k, note := CanaryReplicas(n, percent)
	if note != "" {
		t.logf("canary step %g%%: %s; rounded up to %d pod(s)", percent, note, k)
	}
	if err := t.patchService(ctx, map[string]any{
		"metadata": map[string]any{"annotations": map[string]any{AnnotationCanaryStable: stable, AnnotationCanary: in.ID}},
		"spec":     map[string]any{"selector": map[string]any{LabelDeployment: nil, deploy.LabelEnv: env}},
	}); err != nil {
		return err
	}
	// The pods get the step's sticky split before any replica moves, and
	// a pod that starts gets it before it is ready: a header's value only
	// ever moves to the new release. While the new release has no ready
	// pod, a serving pod answers what it cannot forward itself.
	if sticky != "" {
		if err := t.stickyRoute(ctx, env, stable, in.ID, sticky, percent); err != nil {
			return err
		}
	}
	if err := t.moveReplicas(ctx, env, stable, in.ID, k); err != nil {
		return err
	}
	t.logShare(ctx, env, in.ID, percent)
	return nil
}

// stickyRoute gives both versions' pods the sticky split at percent.
func (t *Target) stickyRoute(ctx context.Context, env, stable, canary, header string, percent float64) error {
	su, err := t.directService(ctx, env, stable)
	if err != nil {
		return err
	}
	cu, err := t.directService(ctx, env, canary)
	if err != nil {
		return err
	}
	r := &rolloutRoute{stable: stable, canary: canary, sticky: &serve.StickyRoute{Header: header, Percent: percent, Stable: su, Canary: cu}}
	if err := t.setRoute(ctx, env, r); err != nil {
		return fmt.Errorf("giving the pods the sticky split on %s: %w", header, err)
	}
	t.logf("canary step %g%%: requests with header %s go to the version their value hashes to (%g%% of the values on the new release), forwarded between pods through services %s and %s",
		percent, header, percent, DirectServiceName(stable), DirectServiceName(canary))
	return nil
}

// clearCanary puts the Service's selector back on Deployment stable (the
// traffic leaves the canary's pods with the endpoints update), scales the
// canary to zero, then stable back to all replicas.
func (t *Target) clearCanary(ctx context.Context, env, stable, canary string) error {
	if stable == "" || stable == "none" {
		return nil
	}
	// First the pods stop forwarding a sticky header's requests to the
	// canary that is about to go.
	if _, err := t.dropRoutes(ctx, env); err != nil {
		return err
	}
	if err := t.patchService(ctx, map[string]any{
		"metadata": map[string]any{"annotations": map[string]any{AnnotationCanaryStable: nil, AnnotationCanary: nil, AnnotationControl: nil}},
		"spec":     map[string]any{"selector": map[string]any{LabelDeployment: stable, deploy.LabelEnv: nil}},
	}); err != nil {
		return err
	}
	if canary == "" || canary == stable {
		return nil
	}
	t.logf("canary cleared: service %s selects deployment/%s only; scaling deployment/%s to 0 and deployment/%s back to %d", t.opt.Name, stable, canary, stable, t.opt.Replicas)
	if err := t.scale(ctx, canary, 0); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if err := t.scale(ctx, stable, t.opt.Replicas); err != nil {
		return err
	}
	return t.waitScaled(ctx, stable, t.opt.Replicas)
}

// moveReplicas runs Batches from the canary's current replicas to k: in
// each, the Deployment giving up a replica is scaled down first, and the
// batch ends when the other's new pod is ready (it may wait for the GPU
// the stopped pod frees).
func (t *Target) moveReplicas(ctx context.Context, env, stable, canary string, k int) error {
	d, err := t.deployments().Get(ctx, canary, metav1.GetOptions{})
	if err != nil {
		return t.wrap(err, "reading deployment "+canary)
	}
	n := t.opt.Replicas
	bs := Batches(n, int(deref(d.Spec.Replicas)), k)
	for _, b := range bs {
		t0 := time.Now()
		// Batches are numbered over the whole rollout: batch k of n puts
		// the k-th replica on the new release.
		what := fmt.Sprintf("batch %d of %d", b.Canary, n)
		first, firstN, second, secondN := stable, b.Stable, canary, b.Canary
		if b.Canary < int(deref(d.Spec.Replicas)) {
			what = fmt.Sprintf("batch back %d of %d", b.Stable, n)
			first, firstN, second, secondN = canary, b.Canary, stable, b.Stable
		}
		t.logf("%s: 1 of %d replicas down while the new one loads (%s %d, %s %d)", what, n, stable, b.Stable, canary, b.Canary)
		if err := t.scale(ctx, first, firstN); err != nil {
			return err
		}
		if err := t.scale(ctx, second, secondN); err != nil {
			return err
		}
		if err := t.waitScaled(ctx, second, secondN); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		d.Spec.Replicas = ptr(int32(b.Canary))
		t.logf("%s done after %s: %d of %d replicas on the new release", what, time.Since(t0).Round(time.Second), b.Canary, n)
	}
	return nil
}

// scale sets Deployment dep's replicas.
func (t *Target) scale(ctx context.Context, dep string, n int) error {
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"replicas": n}})
	_, err := t.cs.AppsV1().Deployments(t.opt.Namespace).Patch(ctx, dep, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return err
	}
	return t.wrap(err, fmt.Sprintf("scaling deployment %s to %d", dep, n))
}

// waitScaled waits until Deployment dep has n ready replicas and no
// others, within its progress deadline and a minute.
func (t *Target) waitScaled(ctx context.Context, dep string, n int) error {
	d, err := t.deployments().Get(ctx, dep, metav1.GetOptions{})
	if err != nil {
		return t.wrap(err, "reading deployment "+dep)
	}
	release := d.Spec.Template.Labels[deploy.LabelRelease]
	deadline := time.Now().Add(time.Duration(deref(d.Spec.ProgressDeadlineSeconds))*time.Second + time.Minute)
	for {
		st, err := t.Rollout(ctx, dep, release)
		if err != nil {
			return err
		}
		pods, err := t.Pods(ctx, "", dep, release)
		if err != nil {
			return err
		}
		// A new pod gets the rollout's route as soon as it listens,
		// before it is ready for the Service's traffic.
		if err := t.applyRoutes(ctx, ""); err != nil {
			return err
		}
		if st.Ready && len(pods) == n {
			return nil
		}
		if st.Stalled || time.Now().After(deadline) {
			return fmt.Errorf("deployment/%s (release %s) did not reach %d ready replicas: %s", dep, release, n, st.Reason)
		}
		if err := deploy.Sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

// logShare reports the share of ready pods the canary has: what the
// Service actually sends it.
func (t *Target) logShare(ctx context.Context, env, canary string, percent float64) {
	pods, err := t.Pods(ctx, env, "", "")
	if err != nil {
		return
	}
	var mine, all int
	for i := range pods {
		if PodReady(&pods[i]) && pods[i].DeletionTimestamp == nil {
			all++
			if pods[i].Labels[LabelDeployment] == canary {
				mine++
			}
		}
	}
	if all > 0 {
		t.logf("canary step %g%%: %d of %d ready pods run the new release: actual share %.0f%%", percent, mine, all, 100*float64(mine)/float64(all))
	}
}

func (t *Target) patchService(ctx context.Context, patch map[string]any) error {
	b, _ := json.Marshal(patch)
	_, err := t.cs.CoreV1().Services(t.opt.Namespace).Patch(ctx, t.opt.Name, types.MergePatchType, b, metav1.PatchOptions{})
	return t.wrap(err, "updating service "+t.opt.Name)
}

// Samples reads, through the API server's pod proxy, what every pod of env
// measured since this target's cursors (one per pod); since 0 starts them
// over (all each pod keeps). A pod that is gone took its samples with it.
// The returned cursor counts the calls; each sample's Upstream is its
// pod's Deployment (Instance.Upstream).
func (t *Target) Samples(ctx context.Context, env string, since uint64) ([]deploy.MeasuredSample, uint64, error) {
	// A pod that started or restarted since the step began gets the
	// rollout's route (a sticky split) now.
	if err := t.applyRoutes(ctx, env); err != nil {
		return nil, since, err
	}
	pods, err := t.Pods(ctx, env, "", "")
	if err != nil {
		return nil, since, err
	}
	t.mu.Lock()
	if since == 0 || t.cursors == nil {
		t.cursors = map[types.UID]podCursor{}
	}
	t.mu.Unlock()
	var out []deploy.MeasuredSample
	for i := range pods {
		p := &pods[i]
		if p.Status.PodIP == "" || p.Status.Phase != corev1.PodRunning {
			continue
		}
		page, err := t.podSamples(ctx, p)
		if err != nil {
			if PodReady(p) && p.DeletionTimestamp == nil {
				return nil, since, fmt.Errorf("environment %s: reading pod %s's measurements: %w", env, p.Name, err)
			}
			continue // loading or stopping: nothing to read yet, or any more
		}
		for _, s := range page.Samples {
			out = append(out, deploy.MeasuredSample{Upstream: p.Labels[LabelDeployment], Sample: s.Analysis()})
		}
	}
	t.mu.Lock()
	t.samplesCall++
	next := t.samplesCall
	t.mu.Unlock()
	return out, next, nil
}

// podCursor is where Samples stopped reading one pod: the last seq read
// in the ring named boot (measure.Samples.Boot). A container restart keeps
// the pod's UID but starts another ring, from seq 1.
type podCursor struct {
	boot string
	next uint64
}

// podSamples reads pod p's samples after its cursor and moves the cursor;
// a ring with another boot than the cursor's (the pod's container
// restarted) is read from 0.
func (t *Target) podSamples(ctx context.Context, p *corev1.Pod) (*measure.Samples, error) {
	t.mu.Lock()
	cur := t.cursors[p.UID]
	t.mu.Unlock()
	page, err := t.readPodSamples(ctx, p, cur.next)
	if err == nil && cur.next > 0 && page.Boot != cur.boot {
		t.logf("pod %s restarted (a new container): its measurements start over", p.Name)
		cur.next = 0
		page, err = t.readPodSamples(ctx, p, 0)
	}
	if err != nil {
		return nil, err
	}
	if page.Dropped > 0 && cur.next > 0 {
		t.logf("pod %s overwrote %d measurements before they were read; the analysis goes on with the rest", p.Name, page.Dropped)
	}
	t.mu.Lock()
	t.cursors[p.UID] = podCursor{boot: page.Boot, next: page.Next}
	t.mu.Unlock()
	return page, nil
}

// readPodSamples is pod p's answer of serve.SamplesPath after seq since.
func (t *Target) readPodSamples(ctx context.Context, p *corev1.Pod, since uint64) (*measure.Samples, error) {
	b, err := t.cs.CoreV1().Pods(t.opt.Namespace).ProxyGet("http", p.Name, strconv.Itoa(ServePort), serve.SamplesPath,
		map[string]string{"since": strconv.FormatUint(since, 10)}).DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	var page measure.Samples
	if err := json.Unmarshal(b, &page); err != nil {
		return nil, fmt.Errorf("answer of %s: %v", serve.SamplesPath, err)
	}
	return &page, nil
}

// Control is the operator's action for env's rollout: the Service's
// AnnotationControl ("" when none, or no Service yet).
func (t *Target) Control(ctx context.Context, env string) (string, error) {
	svc, err := t.cs.CoreV1().Services(t.opt.Namespace).Get(ctx, t.opt.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", t.wrap(err, "reading service "+t.opt.Name)
	}
	return svc.Annotations[AnnotationControl], nil
}

// SetControl asks env's running canary for action (promote, abort,
// resume) through the Service's annotation; the rollout's end clears it.
// Without a canary split on the Service it is refused.
func (t *Target) SetControl(ctx context.Context, env, action string) error {
	switch action {
	case "promote", "abort", "resume":
	default:
		return fmt.Errorf("rollout control %q: expected promote, abort or resume", action)
	}
	svc, err := t.cs.CoreV1().Services(t.opt.Namespace).Get(ctx, t.opt.Name, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return t.wrap(err, "reading service "+t.opt.Name)
	}
	if svc == nil || svc.Annotations[AnnotationCanary] == "" {
		return fmt.Errorf("no canary is running on %s (service %s in namespace %s splits no traffic)", env, t.opt.Name, t.opt.Namespace)
	}
	return t.patchService(ctx, map[string]any{"metadata": map[string]any{"annotations": map[string]any{AnnotationControl: action}}})
}

// SetShadow mirrors percent of env's requests to in: one replica of in's
// Deployment starts beside the serving ones (a shadow needs room for one
// more pod; with GPUs for the serving replicas only, it waits for one and
// fails at the progress deadline), its direct Service is created, and
// each serving pod mirrors that share of what it answers there, checking
// both answers with checks. in nil or percent 0 stops it: the pods stop
// mirroring, the direct Services go, and the replica is stopped (with its
// measurements, so the canary's analysis never counts mirrored requests).
func (t *Target) SetShadow(ctx context.Context, env string, in *deploy.Instance, percent float64, checks []suite.TextCheck) error {
	if in == nil || percent <= 0 {
		t.mu.Lock()
		r := t.route
		t.mu.Unlock()
		if _, err := t.dropRoutes(ctx, env); err != nil {
			return err
		}
		if r == nil || r.shadow == nil {
			return nil
		}
		if err := t.scale(ctx, r.canary, 0); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		}
		return t.waitScaled(ctx, r.canary, 0)
	}
	svc, err := t.cs.CoreV1().Services(t.opt.Namespace).Get(ctx, t.opt.Name, metav1.GetOptions{})
	if err != nil {
		return t.wrap(err, "reading service "+t.opt.Name)
	}
	stable := svc.Spec.Selector[LabelDeployment]
	if stable == "" || stable == "none" {
		return fmt.Errorf("kubernetes: service %s serves no single release to mirror (selector %v)", t.opt.Name, svc.Spec.Selector)
	}
	t.logf("shadow: starting 1 replica of deployment/%s beside the %d of deployment/%s; the Service keeps sending clients to deployment/%s only",
		in.ID, t.opt.Replicas, stable, stable)
	if err := t.scale(ctx, in.ID, 1); err != nil {
		return err
	}
	if err := t.waitScaled(ctx, in.ID, 1); err != nil {
		return fmt.Errorf("the shadow's replica of release %s: %w (a shadow runs one pod more than the environment's %d replicas: without room for it, deploy without shadow)",
			in.Release, err, t.opt.Replicas)
	}
	cu, err := t.directService(ctx, env, in.ID)
	if err != nil {
		return err
	}
	r := &rolloutRoute{stable: stable, canary: in.ID, shadow: &serve.ShadowRoute{Upstream: cu, Percent: percent, Checks: checks}}
	if err := t.setRoute(ctx, env, r); err != nil {
		return fmt.Errorf("telling deployment/%s's pods to mirror: %w", stable, err)
	}
	t.logf("shadow: every pod of deployment/%s mirrors %g%% of what it answers to service %s", stable, percent, DirectServiceName(in.ID))
	return nil
}

// ShadowReport is the serving pods' mirror reports, merged (counts
// summed; latency percentiles across pods approximate, see shadow.Merge).
func (t *Target) ShadowReport(ctx context.Context, env string) (*shadow.Report, error) {
	return t.shadowReport(ctx, env)
}

var (
	_ deploy.Splitter     = (*Target)(nil)
	_ deploy.EngineReader = (*Target)(nil)
)

// fillUp scales Deployment d to the environment's replicas when it has
// fewer (the canary at its last step, or a release a canary scaled down),
// taking them from the Deployment the Service also sends to (the canary's
// other side) batch by batch, so no more pods run than there are replicas.
func (t *Target) fillUp(ctx context.Context, env string, d *appsv1.Deployment) error {
	n := t.opt.Replicas
	have := int(deref(d.Spec.Replicas))
	if have >= n {
		return nil
	}
	svc, err := t.cs.CoreV1().Services(t.opt.Namespace).Get(ctx, t.opt.Name, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return t.wrap(err, "reading service "+t.opt.Name)
	}
	other := ""
	if svc != nil {
		other = svc.Annotations[AnnotationCanaryStable]
		if other == d.Name {
			other = svc.Annotations[AnnotationCanary]
		}
		if other == "" {
			other = svc.Spec.Selector[LabelDeployment]
		}
	}
	if other == "" || other == "none" || other == d.Name {
		t.logf("scaling deployment/%s from %d to %d replicas", d.Name, have, n)
		if err := t.scale(ctx, d.Name, n); err != nil {
			return err
		}
		return t.waitScaled(ctx, d.Name, n)
	}
	// Both sides serve while replicas move; Switch then selects d only.
	if err := t.patchService(ctx, map[string]any{
		"spec": map[string]any{"selector": map[string]any{LabelDeployment: nil, deploy.LabelEnv: env}},
	}); err != nil {
		return err
	}
	// Seen from d, other is the stable side: Batches' canary is d.
	return t.moveReplicas(ctx, env, other, d.Name, n)
}
