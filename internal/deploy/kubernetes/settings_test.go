package kubernetes_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	if len(pod.Volumes) != 1 || pod.Volumes[0].EmptyDir == nil || pod.Volumes[0].EmptyDir.Medium != "Memory" ||
		len(pod.Containers[0].VolumeMounts) != 1 || pod.Containers[0].VolumeMounts[0].MountPath != "/dev/shm" {
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
