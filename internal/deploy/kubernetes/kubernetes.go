// Package kubernetes is the deploy target for a Kubernetes cluster, reached
// with client-go through a kubeconfig (the given file, else KUBECONFIG, else
// ~/.kube/config) or, inside a pod, the in-cluster service account.
//
// Per environment, in its namespace, with NAME the environment's
// kubernetes.name:
//
//   - Service NAME (ClusterIP, port service-port → the pods' 8000): the
//     stable endpoint. Its selector names one Deployment; its annotation
//     modelship.serving-release names the release it serves.
//   - Deployment NAME for rolling updates: one Deployment whose pod template
//     changes per release (maxSurge/maxUnavailable chosen from the free
//     nvidia.com/gpu capacity of the nodes), or NAME-RELEASE per release
//     for blue-green: the Service's selector is switched to the new one
//     only once every replica answers /ready, and the old one is kept until
//     verify passed.
//   - Pods run the serving image's entrypoint (`modelship serve`), with a
//     startup probe on /health sized from the checkpoint's load budget, a
//     readiness probe on /ready (health, the served name in /v1/models, one
//     generation), a liveness probe on /health, and a preStop sleep run by
//     the kubelet followed by serve's own drain on SIGTERM.
//   - ConfigMap NAME-release-RELEASE per release: its annotations hold the
//     release's facts and outcome (the history), as the Deployment's and
//     pods' annotations do while it runs; those of releases beyond the
//     environment's keep-releases are deleted after each deploy (Prune).
//   - While a deploy runs, Lease NAME-lock: created atomically, so two
//     deploys cannot both hold it.
//
// Readiness is the rollout's: a release is ready when the Deployment
// controller has observed its spec (observedGeneration == generation) and
// all its replicas are updated and available; a rollout past its progress
// deadline is reported with the pod events that explain it and is never
// taken for a success.
package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/registryauth"
	"github.com/modelship/modelship/serving"
)

// Options configure a Target (environments.ENV.kubernetes).
type Options struct {
	// Kubeconfig is a kubeconfig file; "" uses KUBECONFIG, ~/.kube/config,
	// or the in-cluster service account.
	Kubeconfig string
	// Context in the kubeconfig; "" uses its current context.
	Context string
	// Server, when set, is the API server's URL instead of the kubeconfig's
	// (a container reaching a cluster whose kubeconfig names 127.0.0.1).
	Server string
	// Namespace and Name of the objects (Service NAME, Deployment NAME...).
	Namespace, Name string
	// Replicas of a release.
	Replicas int
	// GPUs per pod (nvidia.com/gpu).
	GPUs         int
	NodeSelector map[string]string
	Tolerations  []corev1.Toleration
	// ServicePort is the Service's port.
	ServicePort int
	// ImagePullPolicy of the serving container (default IfNotPresent).
	ImagePullPolicy corev1.PullPolicy
	// RuntimeClassName of the pods ("" the node's default runtime).
	RuntimeClassName string
	// Out receives plain-language notes (the surge choice).
	Out io.Writer
	// SwitchTimeout bounds a switch back by rolling update (default: the
	// progress deadline of the release switched to, plus a minute).
	SwitchTimeout time.Duration
	// Config, when set, is used instead of loading a kubeconfig (tests).
	Config *rest.Config
	// Credentials for the image's registry become an image pull secret
	// (NAME-registry, .dockerconfigjson) that the pods name; nil: none.
	Credentials *registryauth.Store
}

// Target deploys to one namespace of a Kubernetes cluster.
type Target struct {
	cs   kubernetes.Interface
	cfg  *rest.Config
	opt  Options
	host string

	mu sync.Mutex
	// surge and unavailable chosen by Plan for the next rolling update.
	surge, unavailable int
	planned            bool
	// local serves the instances' readiness and the service proxy.
	inst, svc net.Listener
}

// New loads the kubeconfig (or the in-cluster config) and makes a client;
// nothing is sent until the first call.
func New(opt Options) (*Target, error) {
	if opt.Namespace == "" {
		opt.Namespace = "default"
	}
	if opt.Name == "" {
		return nil, errors.New("kubernetes target: a name for the Service and Deployment is required")
	}
	if opt.Replicas <= 0 {
		opt.Replicas = 1
	}
	if opt.ServicePort == 0 {
		opt.ServicePort = 80
	}
	cfg := opt.Config
	if cfg == nil {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if opt.Kubeconfig != "" {
			rules.ExplicitPath = opt.Kubeconfig
		}
		overrides := &clientcmd.ConfigOverrides{CurrentContext: opt.Context}
		overrides.ClusterInfo.Server = opt.Server
		cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
		var err error
		if cfg, err = cc.ClientConfig(); err != nil {
			where := "KUBECONFIG, ~/.kube/config or the in-cluster service account"
			if opt.Kubeconfig != "" {
				where = opt.Kubeconfig
			}
			return nil, fmt.Errorf("kubernetes: loading the cluster's credentials from %s: %w", where, err)
		}
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "modelship"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: %w", err)
	}
	return &Target{cs: cs, cfg: cfg, opt: opt, host: cfg.Host}, nil
}

// Client is the clientset, for tests and tools.
func (t *Target) Client() kubernetes.Interface { return t.cs }

// Options are the target's settings, defaults filled in.
func (t *Target) Options() Options { return t.opt }

// Describe names the cluster and namespace.
func (t *Target) Describe() string {
	return fmt.Sprintf("kubernetes %s namespace %s", t.host, t.opt.Namespace)
}

// Close stops the local listeners.
func (t *Target) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range []net.Listener{t.inst, t.svc} {
		if l != nil {
			l.Close()
		}
	}
	t.inst, t.svc = nil, nil
	return nil
}

func (t *Target) logf(format string, a ...any) {
	if t.opt.Out != nil {
		fmt.Fprintf(t.opt.Out, format+"\n", a...)
	}
}

// wrap turns connection failures into deploy.ErrUnreachable errors.
func (t *Target) wrap(err error, what string) error {
	if err == nil {
		return nil
	}
	var op *net.OpError
	if errors.As(err, &op) || errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%w: kubernetes API server %s does not answer (%s): %v%s", deploy.ErrUnreachable, t.host, what, err, loopbackHint(t.host))
	}
	return fmt.Errorf("kubernetes %s: %s: %w", t.host, what, err)
}

// loopbackHint explains an unreachable API server whose address is a
// loopback one: from inside a container (a Dagger function, a CI job's
// service container) that address is the container itself.
func loopbackHint(host string) string {
	u, err := url.Parse(host)
	if err != nil {
		return ""
	}
	h := u.Hostname()
	if ip := net.ParseIP(h); (ip == nil || !ip.IsLoopback()) && h != "localhost" {
		return ""
	}
	return fmt.Sprintf("; %s is a loopback address: inside a container it is the container itself, so give the address the container reaches the API server at (modelship --kube-server, or kubeServer of the Dagger functions)", h)
}

func (t *Target) deployments() typedDeployments {
	return t.cs.AppsV1().Deployments(t.opt.Namespace)
}

type typedDeployments = interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*appsv1.Deployment, error)
	Create(ctx context.Context, d *appsv1.Deployment, opts metav1.CreateOptions) (*appsv1.Deployment, error)
	Update(ctx context.Context, d *appsv1.Deployment, opts metav1.UpdateOptions) (*appsv1.Deployment, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
}

// ---- Plan -----------------------------------------------------------------

// FreeGPUs counts the nvidia.com/gpu the pods of matching nodes (ready,
// schedulable, matching the node selector) do not request.
func (t *Target) FreeGPUs(ctx context.Context) (free, total int64, err error) {
	nodes, err := t.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(t.opt.NodeSelector).String()})
	if err != nil {
		return 0, 0, t.wrap(err, "listing nodes")
	}
	for _, n := range nodes.Items {
		if n.Spec.Unschedulable || !nodeReady(&n) {
			continue
		}
		q, ok := n.Status.Allocatable[GPUResource]
		if !ok || q.Value() == 0 {
			continue
		}
		total += q.Value()
		pods, err := t.cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + n.Name})
		if err != nil {
			return 0, 0, t.wrap(err, "listing pods on "+n.Name)
		}
		used := int64(0)
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
				continue
			}
			for _, c := range p.Spec.Containers {
				if r, ok := c.Resources.Requests[GPUResource]; ok {
					used += r.Value()
				} else if l, ok := c.Resources.Limits[GPUResource]; ok {
					used += l.Value()
				}
			}
		}
		free += max(0, q.Value()-used)
	}
	return free, total, nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Plan chooses the strategy on the cluster (deploy.Planner): auto is a
// rolling update; maxSurge/maxUnavailable come from the free GPUs; blue-green
// needs room for a second full set of replicas. The cluster's scheduler
// places pods, so nothing is fitted on this host's GPUs.
func (t *Target) Plan(ctx context.Context, p deploy.Placement) (*deploy.Plan, error) {
	strategy := p.Strategy
	if strategy == "" || strategy == deploy.Auto {
		strategy = deploy.Rolling
	}
	if !slices.Contains([]string{deploy.Rolling, deploy.BlueGreen, deploy.Recreate}, strategy) {
		return nil, fmt.Errorf("strategy %q: expected auto, rolling, blue-green or recreate", strategy)
	}
	per, n := int64(t.opt.GPUs), int64(t.opt.Replicas)
	var free, total int64
	if per > 0 {
		var err error
		if free, total, err = t.FreeGPUs(ctx); err != nil {
			return nil, err
		}
	}
	plan := &deploy.Plan{Strategy: strategy}
	switch strategy {
	case deploy.BlueGreen:
		if per > 0 && free < per*n {
			return nil, fmt.Errorf("%w: blue-green runs a second set of %d replicas × %d GPU (%s) beside the serving one, and the matching nodes have %d of %d free; use strategy rolling",
				deploy.ErrNoFit, n, per, GPUResource, free, total)
		}
		plan.Why = fmt.Sprintf("blue-green: a second Deployment of %d replicas, the Service switched once all are ready", n)
		if per > 0 {
			plan.Why += fmt.Sprintf(" (%d of %d GPUs free, %d needed)", free, total, per*n)
		}
	case deploy.Recreate:
		plan.Why = "recreate: every replica stops before the new ones start (downtime until they are ready)"
	default:
		surge, unav := 1, 0
		switch {
		case per == 0:
			plan.Why = "rolling update: pods use no GPU, so maxSurge 1, maxUnavailable 0: every old pod serves until a new one is ready"
		case free >= per:
			surge = int(min(free/per, n))
			plan.Why = fmt.Sprintf("rolling update: %d of %d GPUs free and a pod needs %d, so maxSurge %d, maxUnavailable 0: every old pod serves until a new one is ready",
				free, total, per, surge)
		default:
			surge, unav = 0, 1
			plan.Why = fmt.Sprintf("rolling update: NO SPARE GPU (%d of %d free, a pod needs %d), so maxSurge 0, maxUnavailable 1: one replica at a time stops before its replacement starts",
				free, total, per)
			if n == 1 {
				plan.Why += "; with 1 replica the service is DOWN from the moment the old pod stops until the new one is ready"
			} else {
				plan.Why += fmt.Sprintf("; capacity drops to %d of %d replicas during the update", n-1, n)
			}
		}
		t.mu.Lock()
		t.surge, t.unavailable, t.planned = surge, unav, true
		t.mu.Unlock()
	}
	return plan, nil
}

// Surge returns the maxSurge and maxUnavailable the last Plan chose.
func (t *Target) Surge() (surge, unavailable int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.surge, t.unavailable
}

func (t *Target) rollout(ctx context.Context) (int, int) {
	t.mu.Lock()
	planned, s, u := t.planned, t.surge, t.unavailable
	t.mu.Unlock()
	if planned {
		return s, u
	}
	p, err := t.Plan(ctx, deploy.Placement{Strategy: deploy.Rolling})
	if err != nil {
		return 0, 1 // the safe choice when capacity is unknown
	}
	_ = p
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.surge, t.unavailable
}

// ---- Image ----------------------------------------------------------------

// Image resolves ref against the images the nodes report: when a node
// holds it, ID is its content (manifest) digest and RepoDigest the
// repo@digest name the runtime knows it by (same repository preferred), so a
// rollback runs exactly the same content. An image no node holds yet is
// left for the kubelet to pull (ID empty). A bare "sha256:..." (a rollback
// by content) must be on a node.
func (t *Target) Image(ctx context.Context, ref string) (*deploy.ImageInfo, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" || strings.ContainsAny(ref, " \t\n") {
		return nil, fmt.Errorf("image reference %q is not valid: expected NAME[:TAG] or NAME@sha256:DIGEST", ref)
	}
	info := &deploy.ImageInfo{Ref: ref}
	byDigest := strings.HasPrefix(ref, "sha256:")
	nodes, err := t.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if apierrors.IsForbidden(err) {
		// Least privilege (see RBAC): no cluster-wide rights without GPU
		// accounting. The release records and the kubelet's pull serve.
		t.logf("image %s: nodes cannot be listed with these credentials (no cluster-wide rights); the kubelet pulls it where it is missing", ref)
		nodes, err = &corev1.NodeList{}, nil
	}
	if err != nil {
		return nil, t.wrap(err, "listing nodes")
	}
	want, repo := Normalize(ref), repoOf(Normalize(ref))
	for _, n := range nodes.Items {
		for _, img := range n.Status.Images {
			match := false
			for _, name := range img.Names {
				if name == want || (byDigest && strings.HasSuffix(name, "@"+ref)) {
					match = true
				}
			}
			if !match {
				continue
			}
			for _, name := range img.Names {
				i := strings.Index(name, "@sha256:")
				if i < 0 {
					continue
				}
				// Prefer a name in ref's repository.
				if info.RepoDigest == "" || (!byDigest && name[:i] == repo) {
					info.RepoDigest, info.ID = name, name[i+1:]
				}
			}
			if info.ID != "" {
				return info, nil
			}
		}
	}
	if byDigest {
		return t.recordedImage(ctx, ref)
	}
	if i := strings.Index(ref, "@sha256:"); i >= 0 {
		info.RepoDigest, info.ID = ref, ref[i+1:]
	}
	return info, nil
}

// recordedImage finds the content digest id in the release records: the
// release deployed it from a repository, and repo@id names exactly that
// content whatever the nodes report (a kubelet lists a newly pulled image
// only at its next status update, and at most 50 images per node).
func (t *Target) recordedImage(ctx context.Context, id string) (*deploy.ImageInfo, error) {
	sel := labels.SelectorFromSet(map[string]string{LabelInstance: t.opt.Name, LabelRole: "record"})
	list, err := t.cs.CoreV1().ConfigMaps(t.opt.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, t.wrap(err, "listing the release records")
	}
	for _, cm := range list.Items {
		r, err := deploy.ReleaseFromLabels(cm.Annotations)
		if err != nil || r.ImageID != id || r.Image == "" {
			continue
		}
		pinned := repoOf(Normalize(r.Image)) + "@" + id
		t.logf("image %s: on no node's reported list yet; release %s's record pins it as %s (pulled where it is missing)", id, r.ID, pinned)
		return &deploy.ImageInfo{Ref: id, ID: id, RepoDigest: pinned}, nil
	}
	return nil, fmt.Errorf("image %s is on no node of the cluster and in no release record of %s in namespace %s; roll back by reference (repo@sha256:...) instead", id, t.opt.Name, t.opt.Namespace)
}

// repoOf strips the tag or digest of a normalized name.
func repoOf(name string) string {
	if i := strings.Index(name, "@"); i >= 0 {
		return name[:i]
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		return name[:i]
	}
	return name
}

// Normalize is how the container runtime names an image: docker.io/ and
// library/ added, :latest when untagged.
func Normalize(ref string) string {
	name := ref
	first, _, found := strings.Cut(ref, "/")
	if !found || (!strings.ContainsAny(first, ".:") && first != "localhost") {
		if !found {
			name = "library/" + name
		}
		name = "docker.io/" + name
	}
	last := name[strings.LastIndex(name, "/")+1:]
	if !strings.Contains(last, ":") && !strings.Contains(name, "@") {
		name += ":latest"
	}
	return name
}

// imageFor is what a release's container runs: the image's repository at
// the content digest the nodes reported (exactly what was deployed, even
// if the tag moves), else the reference as given.
func (t *Target) imageFor(ctx context.Context, r *deploy.Release) string {
	if strings.HasPrefix(r.ImageID, "sha256:") && !strings.Contains(r.Image, "@") {
		if info, err := t.Image(ctx, r.ImageID); err == nil && info.RepoDigest != "" &&
			repoOf(info.RepoDigest) == repoOf(Normalize(r.Image)) {
			return info.RepoDigest
		}
	}
	return r.Image
}

// ---- Lock -----------------------------------------------------------------

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

// ---- Router, Start, Instance ---------------------------------------------

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
// (blue-green), or updates the pod template of NAME (rolling: the rollout
// starts now), and writes its record. The instance's URL answers /ready
// with the rollout's state.
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
	return t.instance(r.Env, r.ID, want.Name)
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

func (t *Target) instance(env, release, dep string) (*deploy.Instance, error) {
	base, err := t.localURL()
	if err != nil {
		return nil, err
	}
	return &deploy.Instance{Release: release, Env: env, ID: dep, Name: "deployment/" + dep + " (release " + release + ")",
		URL: base + "/instances/" + dep + "/" + release, Upstream: dep}, nil
}

// Instance finds a release: its own Deployment (blue-green), or the
// Deployment NAME when the release is its pod template or one of its
// ReplicaSets; nil when it is gone.
func (t *Target) Instance(ctx context.Context, env, release string) (*deploy.Instance, error) {
	bg := DeploymentName(t.opt.Name, deploy.BlueGreen, release)
	if _, err := t.deployments().Get(ctx, bg, metav1.GetOptions{}); err == nil {
		return t.instance(env, release, bg)
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
		return t.instance(env, release, d.Name)
	}
	rs, err := t.replicaSet(ctx, d.Name, release)
	if err != nil || rs == nil {
		return nil, err
	}
	return t.instance(env, release, d.Name)
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

// ---- Rollout state --------------------------------------------------------

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
		if pods, err := t.pods(ctx, dep, release); err == nil {
			for _, p := range pods {
				if podReady(&p) && p.DeletionTimestamp == nil {
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

// pods of a release in Deployment dep.
func (t *Target) pods(ctx context.Context, dep, release string) ([]corev1.Pod, error) {
	set := map[string]string{LabelInstance: t.opt.Name, LabelDeployment: dep}
	if release != "" {
		set[deploy.LabelRelease] = release
	}
	list, err := t.cs.CoreV1().Pods(t.opt.Namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(set).String()})
	if err != nil {
		return nil, t.wrap(err, "listing pods of "+dep)
	}
	return list.Items, nil
}

// explain lists, for the release's pods that are not ready, their most
// recent warning events ("Readiness probe failed: ...") and, when stalled,
// their last log lines.
func (t *Target) explain(ctx context.Context, dep, release string, logs bool) []string {
	pods, err := t.pods(ctx, dep, release)
	if err != nil {
		return []string{"(pods unavailable: " + err.Error() + ")"}
	}
	var out []string
	for _, p := range pods {
		if podReady(&p) || p.DeletionTimestamp != nil {
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

func podReady(p *corev1.Pod) bool {
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
	pods, err := t.pods(ctx, in.ID, in.Release)
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

// ---- Local endpoints ------------------------------------------------------

// localURL starts (once) the listener serving instances' /ready from the
// rollout state, and returns its base URL.
func (t *Target) localURL() (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.inst == nil {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("kubernetes target: local readiness endpoint: %w", err)
		}
		t.inst = l
		mux := http.NewServeMux()
		mux.HandleFunc("GET /instances/{dep}/{release}/ready", t.serveReady)
		go http.Serve(l, mux)
	}
	return "http://" + t.inst.Addr().String(), nil
}

func (t *Target) serveReady(w http.ResponseWriter, r *http.Request) {
	st, err := t.Rollout(r.Context(), r.PathValue("dep"), r.PathValue("release"))
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		json.NewEncoder(w).Encode(map[string]any{"ready": false, "check": "rollout", "reason": err.Error()})
		return
	}
	if !st.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(map[string]any{"ready": st.Ready, "check": "rollout", "reason": st.Reason})
}

// ServiceURL is a local base URL (http://127.0.0.1:PORT) that reaches the
// environment's Service through the API server's service proxy, with this
// target's credentials: how verify reaches the endpoint when the
// environment has no url of its own.
func (t *Target) ServiceURL() (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.svc == nil {
		rt, err := rest.TransportFor(t.cfg)
		if err != nil {
			return "", fmt.Errorf("kubernetes target: %w", err)
		}
		api, err := url.Parse(t.cfg.Host)
		if err != nil {
			return "", fmt.Errorf("kubernetes target: API server %q: %w", t.cfg.Host, err)
		}
		prefix := strings.TrimRight(api.Path, "/") + fmt.Sprintf("/api/v1/namespaces/%s/services/http:%s:%d/proxy", t.opt.Namespace, t.opt.Name, t.opt.ServicePort)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("kubernetes target: local service proxy: %w", err)
		}
		t.svc = l
		proxy := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.Out.URL.Scheme, pr.Out.URL.Host = api.Scheme, api.Host
				pr.Out.URL.Path = prefix + pr.In.URL.Path
				pr.Out.URL.RawPath = ""
				pr.Out.Host = api.Host
				// The API server takes Authorization for itself (and
				// drops it); the endpoint's API key travels as the
				// api-key header, which modelship serve also accepts.
				if a := pr.Out.Header.Get("Authorization"); a != "" {
					pr.Out.Header.Del("Authorization")
					if key, ok := serving.BearerToken(a); ok {
						pr.Out.Header.Set(serving.HeaderAPIKey, key)
					}
				}
			},
			Transport:     rt,
			FlushInterval: -1,
		}
		go http.Serve(l, proxy)
	}
	return "http://" + t.svc.Addr().String(), nil
}

// ---- Switch, drain, stop, remove -----------------------------------------

// Switch points the Service at in's Deployment once all its replicas are
// ready. For a rolling release that is no longer the Deployment's template
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
	st, err := t.Rollout(ctx, in.ID, in.Release)
	if err != nil {
		return err
	}
	if !st.Ready {
		return fmt.Errorf("switching %s to release %s: not ready: %s", env, in.Release, st.Reason)
	}
	svcs := t.cs.CoreV1().Services(t.opt.Namespace)
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{AnnotationServing: in.Release}},
		"spec":     map[string]any{"selector": selector(t.opt.Name, in.ID)},
	})
	if _, err := svcs.Patch(ctx, t.opt.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return t.wrap(err, "switching service "+t.opt.Name)
	}
	// Wait until the endpoints list only in's pods, so "switched" means the
	// Service's endpoints say so.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, other, err := t.endpointsOnly(ctx, in.ID)
		if err != nil {
			return err
		}
		if ok && other == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("switching %s to release %s: the Service's endpoints did not follow within 30s", env, in.Release)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// endpointsOnly reports whether the Service has a ready endpoint of dep's
// pods, and how many endpoints belong to other pods.
func (t *Target) endpointsOnly(ctx context.Context, dep string) (has bool, other int, err error) {
	pods, err := t.pods(ctx, dep, "")
	if err != nil {
		return false, 0, err
	}
	mine := map[string]bool{}
	for _, p := range pods {
		mine[p.Name] = true
	}
	slices, err := t.cs.DiscoveryV1().EndpointSlices(t.opt.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + t.opt.Name})
	if err != nil {
		return false, 0, t.wrap(err, "listing endpoints of "+t.opt.Name)
	}
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			name := ""
			if e.TargetRef != nil {
				name = e.TargetRef.Name
			}
			switch {
			case mine[name] && e.Conditions.Ready != nil && *e.Conditions.Ready:
				has = true
			case !mine[name]:
				other++
			}
		}
	}
	return has, other, nil
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
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
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
			_, other, err := t.endpointsOf(ctx, in)
			if err != nil {
				return err
			}
			done, what = other == 0, "its pods to leave the Service's endpoints"
		} else {
			pods, err := t.pods(ctx, in.ID, in.Release)
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
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
}

// endpointsOf counts the Service endpoints that are pods of in's release.
func (t *Target) endpointsOf(ctx context.Context, in *deploy.Instance) (int, int, error) {
	pods, err := t.pods(ctx, in.ID, in.Release)
	if err != nil {
		return 0, 0, err
	}
	mine := map[string]bool{}
	for _, p := range pods {
		mine[p.Name] = true
	}
	slices, err := t.cs.DiscoveryV1().EndpointSlices(t.opt.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + t.opt.Name})
	if err != nil {
		return 0, 0, t.wrap(err, "listing endpoints of "+t.opt.Name)
	}
	n := 0
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			if e.TargetRef != nil && mine[e.TargetRef.Name] {
				n++
			}
		}
	}
	return 0, n, nil
}

// Stop scales the release's Deployment to zero (kept for Resume) when the
// release is its current template, and waits for its pods to terminate;
// a rolling release already replaced needs nothing.
func (t *Target) Stop(ctx context.Context, in *deploy.Instance) error {
	d, err := t.deployments().Get(ctx, in.ID, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return t.wrap(err, "reading deployment "+in.ID)
	}
	if d.Spec.Template.Labels[deploy.LabelRelease] != in.Release {
		return nil
	}
	if err := t.update(ctx, d, func(x *appsv1.Deployment) { x.Spec.Replicas = ptr(int32(0)) }); err != nil {
		return err
	}
	deadline := time.Now().Add(time.Duration(PreStopSeconds+drainSeconds)*time.Second + 30*time.Second)
	for time.Now().Before(deadline) {
		pods, err := t.pods(ctx, in.ID, in.Release)
		if err != nil {
			return err
		}
		if len(pods) == 0 {
			return nil
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
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
	return t.instance(in.Env, in.Release, in.ID)
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
	d, err := t.deployments().Get(ctx, in.ID, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return t.wrap(err, "reading deployment "+in.ID)
	}
	if d.Spec.Template.Labels[deploy.LabelRelease] != in.Release {
		return nil
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

// ---- Records --------------------------------------------------------------

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

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

var (
	_ deploy.Target  = (*Target)(nil)
	_ deploy.Planner = (*Target)(nil)
	_ deploy.Pruner  = (*Target)(nil)
)

// servingSecret writes the serving container's secrets (the API key, the
// Hugging Face token) into the Secret NAME-serving, which the pods read
// through secretKeyRef, and names them in w. The Secret is replaced as a
// whole, so a key the config no longer gives is gone; running pods keep
// the values they started with.
func (t *Target) servingSecret(ctx context.Context, w *Workload, secrets map[string]string) error {
	if len(secrets) == 0 {
		return nil
	}
	name := ServingSecretName(t.opt.Name)
	data := map[string][]byte{}
	for k, v := range secrets {
		data[k] = []byte(v)
	}
	if err := t.writeSecret(ctx, name, corev1.SecretTypeOpaque, data); err != nil {
		return t.wrap(err, "writing the serving secret "+name)
	}
	w.SecretName, w.SecretEnv = name, slices.Sorted(maps.Keys(secrets))
	return nil
}

// writeSecret creates or replaces the Secret name.
func (t *Target) writeSecret(ctx context.Context, name string, typ corev1.SecretType, data map[string][]byte) error {
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: t.opt.Namespace,
			Labels: map[string]string{LabelName: "modelship", LabelInstance: t.opt.Name, LabelManagedBy: "modelship"}},
		Type: typ, Data: data,
	}
	secrets := t.cs.CoreV1().Secrets(t.opt.Namespace)
	_, err := secrets.Update(ctx, sec, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		_, err = secrets.Create(ctx, sec, metav1.CreateOptions{})
	}
	return err
}

// pullSecret creates or updates the image pull secret NAME-registry with
// the credentials for w's image, when there are some, and names it in w.
// Only that registry's login goes into the cluster.
func (t *Target) pullSecret(ctx context.Context, w *Workload) error {
	cred, ok := t.opt.Credentials.For(w.Image)
	if !ok {
		return nil
	}
	name := t.opt.Name + "-registry"
	data := map[string][]byte{corev1.DockerConfigJsonKey: cred.DockerConfigJSON()}
	if err := t.writeSecret(ctx, name, corev1.SecretTypeDockerConfigJson, data); err != nil {
		return t.wrap(err, "writing the image pull secret "+name+" (registry "+cred.Registry+")")
	}
	w.PullSecret = name
	return nil
}
