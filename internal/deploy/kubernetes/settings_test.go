package kubernetes_test

import (
	"context"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/kubernetes"
	"github.com/modelship/modelship/internal/registryauth"
	"github.com/modelship/modelship/internal/testenv"
	"github.com/modelship/modelship/serving"
)

// TestSettingsReachTheEngine: on the real cluster, a release's serving
// settings are its pods' engine command line, exactly the contract's argv,
// and tensor parallelism mounts a memory-backed /dev/shm.
func TestSettingsReachTheEngine(t *testing.T) {
	images(t)
	e := newEnv(t, 1)
	req := e.request(good, "")
	req.Settings = serving.Settings{MaxModelLen: 1024, TensorParallelSize: 2, Dtype: "bfloat16", EngineArgs: []string{"--enforce-eager"}}
	if _, err := e.d.Deploy(context.Background(), req); err != nil {
		t.Fatalf("deploy: %v", err)
	}
	want := req.Settings.Argv(serving.ModelDir, []string{"current"}, "127.0.0.1", serving.EnginePort)
	if got := testenv.GetVersion(t, e.clusterIP(t)).EngineArgv; !reflect.DeepEqual(got, want) {
		t.Errorf("engine argv in the pod =\n %q\nwant the contract's\n %q", got, want)
	}
	d, err := e.target.Client().AppsV1().Deployments(e.ns).Get(context.Background(), "llm", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := d.Spec.Template.Spec
	shm := false
	for i, v := range pod.Volumes {
		if v.EmptyDir != nil && v.EmptyDir.Medium == "Memory" && i < len(pod.Containers[0].VolumeMounts) &&
			pod.Containers[0].VolumeMounts[i].Name == v.Name && pod.Containers[0].VolumeMounts[i].MountPath == "/dev/shm" {
			shm = true
		}
	}
	if !shm {
		t.Errorf("tensor-parallel-size 2: volumes %+v mounts %+v, want a memory emptyDir at /dev/shm", pod.Volumes, pod.Containers[0].VolumeMounts)
	}
}

// TestImagePullSecret: with credentials for the image's registry, the
// deploy writes them to an image pull secret that the pods name; only
// that registry's login goes into the cluster.
func TestImagePullSecret(t *testing.T) {
	images(t)
	e := newEnv(t, 1)
	o := e.target.Options()
	o.Credentials = new(registryauth.Store).
		With(registryauth.Credential{Registry: "docker.io", Username: "ci", Password: "pw"}).
		With(registryauth.Credential{Registry: "ghcr.io", Username: "other", Password: "x"})
	tg, err := kubernetes.New(o)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	e.d.Target = tg
	if _, err := e.d.Deploy(context.Background(), e.request(good, "")); err != nil {
		t.Fatalf("deploy: %v", err)
	}
	sec, err := tg.Client().CoreV1().Secrets(e.ns).Get(context.Background(), "llm-registry", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(sec.Data[corev1.DockerConfigJsonKey])
	if sec.Type != corev1.SecretTypeDockerConfigJson || !strings.Contains(cfg, "index.docker.io") || strings.Contains(cfg, "ghcr.io") {
		t.Errorf("pull secret %s: %s", sec.Type, cfg)
	}
	d, err := tg.Client().AppsV1().Deployments(e.ns).Get(context.Background(), "llm", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ps := d.Spec.Template.Spec.ImagePullSecrets; len(ps) != 1 || ps[0].Name != "llm-registry" {
		t.Errorf("pods' imagePullSecrets = %v", ps)
	}
}

// TestServingSecrets: the API key and the Hugging Face token go into the
// Secret llm-serving, which the pods read through secretKeyRef (the pod
// spec holds no value); the endpoint then answers /v1/ routes only with the
// key, also through the API server's service proxy, where verify sends it.
func TestServingSecrets(t *testing.T) {
	images(t)
	e := newEnv(t, 1)
	const key, token = "sk-k8s-40a9e3", "hf_k8s_77d0"
	e.d.Verifier.(*deploy.Checks).APIKey = key
	req := e.request(good, "")
	req.Secrets = map[string]string{serving.EnvAPIKey: key, serving.EnvHFToken: token}
	if _, err := e.d.Deploy(context.Background(), req); err != nil {
		t.Fatalf("deploy (verify sends the key through the API server): %v", err)
	}
	ctx := context.Background()
	sec, err := e.target.Client().CoreV1().Secrets(e.ns).Get(ctx, "llm-serving", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(sec.Data[serving.EnvAPIKey]) != key || string(sec.Data[serving.EnvHFToken]) != token {
		t.Errorf("secret llm-serving holds keys %v", slices.Collect(maps.Keys(sec.Data)))
	}
	d, err := e.target.Client().AppsV1().Deployments(e.ns).Get(ctx, "llm", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	refs := map[string]bool{}
	for _, v := range d.Spec.Template.Spec.Containers[0].Env {
		if v.Value != "" && (strings.Contains(v.Value, key) || strings.Contains(v.Value, token)) {
			t.Errorf("the pod spec holds a secret's value in %s", v.Name)
		}
		if r := v.ValueFrom; r != nil && r.SecretKeyRef != nil && r.SecretKeyRef.Name == "llm-serving" && r.SecretKeyRef.Key == v.Name {
			refs[v.Name] = true
		}
	}
	if !refs[serving.EnvAPIKey] || !refs[serving.EnvHFToken] {
		t.Errorf("secretKeyRef env: %v, want %s and %s", refs, serving.EnvAPIKey, serving.EnvHFToken)
	}
	testenv.CheckAPIKey(t, e.verify, key)
}
