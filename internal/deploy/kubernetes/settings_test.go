package kubernetes_test

import (
	"context"
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
