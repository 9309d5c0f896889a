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
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/registryauth"
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
	// svc is the local listener of the service proxy (ServiceURL).
	svc net.Listener
	// cursors are Samples' per pod; samplesCall the cursor it returns.
	cursors     map[types.UID]podCursor
	samplesCall uint64
	// route is the running rollout's route for the pods (route.go).
	route *rolloutRoute
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

// Close stops the local service proxy (ServiceURL).
func (t *Target) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.svc != nil {
		t.svc.Close()
	}
	t.svc = nil
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
		err = fmt.Errorf("%w: kubernetes API server %s does not answer (%s): %v", deploy.ErrUnreachable, t.host, what, err)
		if h := loopbackHost(t.host); h != "" {
			return &LoopbackServerError{Host: h, Err: err}
		}
		return err
	}
	return fmt.Errorf("kubernetes %s: %s: %w", t.host, what, err)
}

// LoopbackServerError is an API server that does not answer at a loopback
// address (Host): from inside a container (a Dagger function, a CI job's
// service container) that address is the container itself, and the
// address the container reaches the API server at must be given instead
// (Options.Server). It wraps the deploy.ErrUnreachable error.
type LoopbackServerError struct {
	Host string
	Err  error
}

func (e *LoopbackServerError) Error() string {
	return fmt.Sprintf("%v; %s is a loopback address: inside a container it is the container itself, so give the address the container reaches the API server at", e.Err, e.Host)
}

func (e *LoopbackServerError) Unwrap() error { return e.Err }

// loopbackHost is the host of the API server's URL when it is a loopback
// address, else "".
func loopbackHost(server string) string {
	u, err := url.Parse(server)
	if err != nil {
		return ""
	}
	h := u.Hostname()
	if ip := net.ParseIP(h); (ip == nil || !ip.IsLoopback()) && h != "localhost" {
		return ""
	}
	return h
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

var (
	_ deploy.Target  = (*Target)(nil)
	_ deploy.Planner = (*Target)(nil)
	_ deploy.Pruner  = (*Target)(nil)
)
