package kubernetes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/serving"
)

// Label keys of the objects the target creates. The release's facts (image,
// digests, git SHA, who, when, outcome) are annotations under deploy's
// "modelship.*" keys: label values cannot hold an image reference.
const (
	LabelName       = "app.kubernetes.io/name"       // always "modelship"
	LabelInstance   = "app.kubernetes.io/instance"   // Options.Name
	LabelManagedBy  = "app.kubernetes.io/managed-by" // "modelship"
	LabelDeployment = "modelship.deployment"         // the Deployment a pod belongs to
	LabelRole       = "modelship.role"               // record, lock
	// AnnotationServing on the Service names the release it sends traffic to.
	AnnotationServing = "modelship.serving-release"
	// AnnotationHolder on the lock Lease is the JSON deploy.Holder.
	AnnotationHolder = "modelship.lock-holder"

	// ServePort is the port `modelship serve` listens on in the container.
	ServePort = serving.Port
	// GPUResource is the extended resource GPUs are requested as.
	GPUResource corev1.ResourceName = "nvidia.com/gpu"

	// PreStopSeconds is how long the pre-stop hook holds the pod before the
	// kubelet sends SIGTERM, so the endpoint removal reaches every
	// kube-proxy before `modelship serve` stops accepting connections. The
	// hook is PreStopCommand: meanwhile every response says "Connection:
	// close", so clients leave their keep-alive connections to this pod
	// instead of having one closed under a request.
	PreStopSeconds = 5
	// drainSeconds is serve's drain (30s) + engine stop (15s) + margin.
	drainSeconds = 30 + 15 + 10
)

// PreStopCommand is the serving container's pre-stop hook: `modelship
// drain`, run in the container (no shell needed), drains serve through its
// admin unix socket. The drain is on no port: nothing on the network can
// take a replica out of its Service.
var PreStopCommand = []string{serving.BinaryPath, "drain", "--wait", fmt.Sprintf("%ds", PreStopSeconds)}

// Workload is everything Render needs to describe one release.
type Workload struct {
	Options
	Env     string // environment name
	Release *deploy.Release
	// Image is the reference the container runs (a repo@sha256 digest
	// when the cluster knows it, else the tag).
	Image string
	// ContainerEnv is KEY=VALUE for the serving container.
	ContainerEnv []string
	// LoadBudget sizes the startup probe and the progress deadline.
	LoadBudget time.Duration
	// MaxSurge and MaxUnavailable for rolling updates (as counts).
	MaxSurge, MaxUnavailable int
	// SharedMemory mounts a memory-backed emptyDir at /dev/shm (tensor
	// parallelism: the container runtime's 64 MiB default is too small).
	SharedMemory bool
	// PullSecret names the image pull secret the pods use ("" none).
	PullSecret string
	// SecretEnv are the serving container's variables read from the
	// Secret SecretName (secretKeyRef, the key is the variable's name):
	// the API key and the Hugging Face token, never written in the pod spec.
	SecretName string
	SecretEnv  []string
	// NonRoot runs the pods as NonRootUser (NonRootEngine).
	NonRoot bool
}

// NonRootUser is the user (and group) the pods of engines that allow it
// run as: nobody's conventional id in distroless images.
const NonRootUser = 65532

// NonRootEngine reports whether engine runs as a non-root user: the
// simulator and Ollama do (serve and the engine write only under /tmp);
// vLLM's image runs as root (its caches live under /root), so its pods
// keep root, still with no capabilities and no privilege escalation.
func NonRootEngine(engine string) bool {
	return engine == serving.EngineSim || engine == serving.EngineOllama
}

// securityContexts: every pod under the runtime's default seccomp profile,
// every container with no Linux capability and no privilege escalation,
// and the pods of engines that allow it as NonRootUser.
func (w *Workload) securityContexts() (*corev1.PodSecurityContext, *corev1.SecurityContext) {
	pod := &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
	if w.NonRoot {
		id := int64(NonRootUser)
		pod.RunAsNonRoot, pod.RunAsUser, pod.RunAsGroup, pod.FSGroup = ptr(true), &id, &id, &id
	}
	return pod, &corev1.SecurityContext{AllowPrivilegeEscalation: ptr(false),
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
}

// DeploymentName is the Deployment a release of strategy runs in: the one
// Deployment NAME for rolling (and recreate) updates, NAME-RELEASE for
// blue-green and canary, where two Deployments live side by side.
func DeploymentName(name, strategy, release string) string {
	if strategy == deploy.BlueGreen || strategy == deploy.Canary {
		return name + "-" + release
	}
	return name
}

func recordName(name, release string) string { return name + "-release-" + release }
func lockName(name string) string            { return name + "-lock" }

func (w *Workload) labels(dep string) map[string]string {
	return map[string]string{
		LabelName: "modelship", LabelInstance: w.Name, LabelManagedBy: "modelship",
		LabelDeployment: dep, deploy.LabelEnv: w.Env, deploy.LabelRelease: w.Release.ID,
	}
}

// selector is what a Deployment's (and the Service's) selector holds:
// the instance and the Deployment, never the release (a rolling update has
// pods of two releases under one selector).
func selector(name, dep string) map[string]string {
	return map[string]string{LabelInstance: name, LabelDeployment: dep}
}

// ProgressDeadline is a little under the load budget, so the Deployment
// controller's verdict (with its reason) arrives while the deploy still
// waits; the startup probe allows the whole budget.
func ProgressDeadline(budget time.Duration) int32 {
	margin := max(2*time.Second, budget/10)
	return int32(max(10, math.Ceil((budget - margin).Seconds())))
}

// Deployment renders the release's Deployment.
func (w *Workload) Deployment() *appsv1.Deployment {
	r := w.Release
	dep := DeploymentName(w.Name, r.Strategy, r.ID)
	labels := w.labels(dep)
	// The release's facts; its outcome lives in its record (ConfigMap).
	ann := r.Labels()
	delete(ann, deploy.LabelOutcome)
	delete(ann, deploy.LabelReason)
	delete(ann, deploy.LabelFinished)
	budget := w.LoadBudget
	if budget <= 0 {
		budget = deploy.BaseLoadBudget
	}
	const startupPeriod = 2
	startupFailures := int32(math.Ceil(budget.Seconds() / startupPeriod))
	var env []corev1.EnvVar
	for _, kv := range w.ContainerEnv {
		k, v, _ := strings.Cut(kv, "=")
		// An empty serving setting is kept: it clears what the image baked.
		if _, setting := serving.EnvNames()[k]; v == "" && !setting && k != serving.EnvServedAliases {
			continue
		}
		env = append(env, corev1.EnvVar{Name: k, Value: v})
	}
	for _, k := range w.SecretEnv {
		env = append(env, corev1.EnvVar{Name: k, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: w.SecretName}, Key: k}}})
	}
	res := corev1.ResourceRequirements{}
	if w.GPUs > 0 {
		q := *resource.NewQuantity(int64(w.GPUs), resource.DecimalSI)
		res.Limits = corev1.ResourceList{GPUResource: q}
		res.Requests = corev1.ResourceList{GPUResource: q}
	}
	httpGet := func(path string) corev1.ProbeHandler {
		return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http")}}
	}
	strategy := appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType}
	if r.Strategy == deploy.Recreate {
		strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	} else {
		if w.MaxSurge <= 0 && w.MaxUnavailable <= 0 {
			w.MaxSurge = 1 // the API server refuses 0 and 0
		}
		surge, unav := intstr.FromInt32(int32(w.MaxSurge)), intstr.FromInt32(int32(w.MaxUnavailable))
		strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unav}
	}
	replicas := int32(w.Replicas)
	grace := int64(PreStopSeconds + drainSeconds)
	pull := w.ImagePullPolicy
	if pull == "" {
		pull = corev1.PullIfNotPresent
	}
	var volumes []corev1.Volume
	var mounts []corev1.VolumeMount
	if w.SharedMemory {
		volumes = append(volumes, corev1.Volume{Name: "dshm", VolumeSource: corev1.VolumeSource{
			EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}})
		mounts = append(mounts, corev1.VolumeMount{Name: "dshm", MountPath: "/dev/shm"})
	}
	if w.NonRoot {
		// serve's admin socket and the engine's scratch (Ollama's models)
		// live under /tmp, which an image may not let a non-root user
		// write: a pod-private emptyDir is.
		volumes = append(volumes, corev1.Volume{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		mounts = append(mounts, corev1.VolumeMount{Name: "tmp", MountPath: "/tmp"})
	}
	podSec, ctrSec := w.securityContexts()
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: dep, Namespace: w.Namespace, Labels: labels, Annotations: ann},
		Spec: appsv1.DeploymentSpec{
			Replicas:                &replicas,
			Selector:                &metav1.LabelSelector{MatchLabels: selector(w.Name, dep)},
			Strategy:                strategy,
			ProgressDeadlineSeconds: ptr(ProgressDeadline(budget)),
			RevisionHistoryLimit:    ptr(int32(10)),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: maps.Clone(ann)},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: &grace,
					NodeSelector:                  w.NodeSelector,
					Tolerations:                   w.Tolerations,
					EnableServiceLinks:            ptr(false),
					AutomountServiceAccountToken:  ptr(false),
					Volumes:                       volumes,
					RuntimeClassName:              runtimeClass(w.RuntimeClassName),
					ImagePullSecrets:              pullSecrets(w.PullSecret),
					SecurityContext:               podSec,
					Containers: []corev1.Container{{
						Name:            "serve",
						Image:           w.Image,
						ImagePullPolicy: pull,
						Env:             env,
						VolumeMounts:    mounts,
						Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: ServePort, Protocol: corev1.ProtocolTCP}},
						Resources:       res,
						// The engine answers /health once the weights are
						// loaded: until then only the startup probe runs,
						// for the whole load budget.
						StartupProbe: &corev1.Probe{ProbeHandler: httpGet("/health"), PeriodSeconds: startupPeriod,
							TimeoutSeconds: 5, FailureThreshold: startupFailures},
						// /ready: health, the served name in /v1/models and
						// one generation; only then does the pod get traffic.
						ReadinessProbe: &corev1.Probe{ProbeHandler: httpGet("/ready"), PeriodSeconds: 2,
							TimeoutSeconds: 10, FailureThreshold: 2, SuccessThreshold: 1},
						LivenessProbe: &corev1.Probe{ProbeHandler: httpGet("/health"), PeriodSeconds: 10,
							TimeoutSeconds: 5, FailureThreshold: 3},
						Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{
							Exec: &corev1.ExecAction{Command: PreStopCommand}}},
						TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
						SecurityContext:          ctrSec,
					}},
				},
			},
		},
	}
}

// Service renders the environment's Service, selecting the Deployment dep
// ("" selects nothing yet).
func (w *Workload) Service(dep, serving string) *corev1.Service {
	return ServiceFor(w.Options, w.Env, dep, serving)
}

// ServiceFor renders the Service of an environment.
func ServiceFor(o Options, env, dep, serving string) *corev1.Service {
	if dep == "" {
		dep = "none"
	}
	s := &corev1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace,
			Labels: map[string]string{LabelName: "modelship", LabelInstance: o.Name, LabelManagedBy: "modelship", deploy.LabelEnv: env}},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: selector(o.Name, dep),
			Ports: []corev1.ServicePort{{Name: "http", Port: int32(o.ServicePort), TargetPort: intstr.FromString("http"),
				Protocol: corev1.ProtocolTCP}},
		},
	}
	if serving != "" {
		s.Annotations = map[string]string{AnnotationServing: serving}
	}
	return s
}

// YAML writes objects as one YAML stream ("---" between documents),
// without the empty status and null creationTimestamp the API types carry.
func YAML(objs ...any) ([]byte, error) {
	var b bytes.Buffer
	for i, o := range objs {
		j, err := json.Marshal(o)
		if err != nil {
			return nil, fmt.Errorf("rendering YAML: %w", err)
		}
		var m map[string]any
		if err := json.Unmarshal(j, &m); err != nil {
			return nil, fmt.Errorf("rendering YAML: %w", err)
		}
		delete(m, "status")
		if md, ok := m["metadata"].(map[string]any); ok {
			delete(md, "creationTimestamp")
		}
		if spec, ok := m["spec"].(map[string]any); ok {
			if tpl, ok := spec["template"].(map[string]any); ok {
				if md, ok := tpl["metadata"].(map[string]any); ok {
					delete(md, "creationTimestamp")
				}
			}
		}
		y, err := yaml.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("rendering YAML: %w", err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(y)
	}
	return b.Bytes(), nil
}

func ptr[T any](v T) *T { return &v }

// Manifest is what `modelship render` describes: one release of an
// environment, as a deploy would apply it.
type Manifest struct {
	Env, Image, GitSHA, ServedName, ModelDigest string
	// Aliases are further served names.
	Aliases []string
	// ImageID is the image's content digest when known.
	ImageID string
	// Strategy: rolling (default) or blue-green.
	Strategy string
	// WeightBytes and ReadyTimeout size the load budget (deploy.LoadBudget).
	WeightBytes  int64
	ReadyTimeout time.Duration
	DeployedBy   string
	Now          time.Time
	// MaxSurge and MaxUnavailable of a rolling update.
	MaxSurge, MaxUnavailable int
	// Settings are the environment's serving settings.
	Settings serving.Settings
	// SecretEnv names the serving secrets the pods read from the Secret
	// ServingSecretName (created by a deploy, or by whoever applies the
	// rendered objects): serving.EnvAPIKey, serving.EnvHFToken.
	SecretEnv []string
	// Engine is the serving engine (NonRootEngine).
	Engine string
}

// ServingSecretName is the Secret that holds instance name's serving
// secrets (the API key, the Hugging Face token).
func ServingSecretName(name string) string { return name + "-serving" }

// Render builds the Deployment and the Service (selecting it) that a deploy
// of m applies, with a fresh release id.
func Render(o Options, m Manifest, rand uint16) *Workload {
	if m.Strategy == "" || m.Strategy == deploy.Auto {
		m.Strategy = deploy.Rolling
	}
	if m.Now.IsZero() {
		m.Now = time.Now()
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	rel := &deploy.Release{ID: deploy.NewReleaseID(m.Now, rand), Env: m.Env, Image: m.Image, ImageID: m.ImageID,
		ModelDigest: m.ModelDigest, GitSHA: m.GitSHA, DeployedBy: m.DeployedBy, DeployedAt: m.Now.UTC(),
		Strategy: m.Strategy, Outcome: deploy.InProgress}
	w := &Workload{Options: o, Env: m.Env, Release: rel, Image: m.Image,
		ContainerEnv: deploy.ReleaseEnv(rel, append([]string{m.ServedName}, m.Aliases...), m.Settings), LoadBudget: deploy.LoadBudget(m.WeightBytes, m.ReadyTimeout),
		MaxSurge: m.MaxSurge, MaxUnavailable: m.MaxUnavailable, SharedMemory: m.Settings.NeedsSharedMemory(), NonRoot: NonRootEngine(m.Engine)}
	if len(m.SecretEnv) > 0 {
		w.SecretName, w.SecretEnv = ServingSecretName(o.Name), m.SecretEnv
	}
	return w
}

// Objects are the release's Deployment and the Service switched to it.
func (w *Workload) Objects() (*appsv1.Deployment, *corev1.Service) {
	d := w.Deployment()
	return d, w.Service(d.Name, w.Release.ID)
}

func pullSecrets(name string) []corev1.LocalObjectReference {
	if name == "" {
		return nil
	}
	return []corev1.LocalObjectReference{{Name: name}}
}

func runtimeClass(name string) *string {
	if name == "" {
		return nil
	}
	return &name
}
