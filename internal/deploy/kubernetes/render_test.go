package kubernetes

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/serving"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestRenderGolden pins the manifests render prints: probes sized from the
// checkpoint, the preStop drain, the release's facts as annotations, the
// Service selecting the release's Deployment.
func TestRenderGolden(t *testing.T) {
	now := time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC)
	o := Options{Namespace: "inference", Name: "llm", Replicas: 2, GPUs: 1, ServicePort: 80,
		NodeSelector: map[string]string{"nvidia.com/gpu.present": "true"},
		Tolerations:  []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}}
	for _, tc := range []struct {
		file     string
		strategy string
		surge    int
		settings serving.Settings
		runtime  string
		engine   string
	}{
		// The simulator's pods run as a non-root user; vLLM's as root.
		{"render-rolling.golden.yaml", deploy.Rolling, 0, serving.Settings{}, "", serving.EngineSim},
		{"render-blue-green.golden.yaml", deploy.BlueGreen, 1, serving.Settings{}, "", serving.EngineVLLM},
		// Tensor parallel: the settings in the container's environment
		// and a memory-backed /dev/shm.
		{"render-tensor-parallel.golden.yaml", deploy.Rolling, 0, serving.Settings{TensorParallelSize: 2, MaxModelLen: 8192,
			GPUMemoryUtilization: 0.9, Dtype: "bfloat16", EngineArgs: []string{"--enforce-eager"}}, "nvidia", serving.EngineVLLM},
	} {
		t.Run(tc.strategy, func(t *testing.T) {
			o := o
			o.RuntimeClassName = tc.runtime
			w := Render(o, Manifest{Env: "production", Image: "registry.example.com/llm:1.2", GitSHA: "0123abc", ServedName: "current",
				ModelDigest: "sha256:0f0f", Strategy: tc.strategy, WeightBytes: 14 << 30, DeployedBy: "alice@ci", Now: now,
				MaxSurge: tc.surge, MaxUnavailable: 1 - tc.surge, Settings: tc.settings, Engine: tc.engine}, 0x3fa9)
			got, err := YAML(w.Objects())
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.file)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("render differs from %s (go test -update rewrites it):\n%s", path, got)
			}
		})
	}
}

func TestProgressDeadline(t *testing.T) {
	for _, tc := range []struct {
		budget time.Duration
		want   int32
	}{{20 * time.Second, 18}, {60 * time.Second, 54}, {8 * time.Second, 10}, {480 * time.Second, 432}} {
		if got := ProgressDeadline(tc.budget); got != tc.want {
			t.Errorf("ProgressDeadline(%s) = %d, want %d", tc.budget, got, tc.want)
		}
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"vllm":                       "docker.io/library/vllm:latest",
		"modelship-test/good:1":      "docker.io/modelship-test/good:1",
		"registry.example.com/llm:1": "registry.example.com/llm:1",
		"localhost:5000/llm":         "localhost:5000/llm:latest",
		"ghcr.io/a/b@sha256:abcd":    "ghcr.io/a/b@sha256:abcd",
		"registry.example.com:443/x": "registry.example.com:443/x:latest",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
	if got := repoOf("registry.example.com:443/x:1"); got != "registry.example.com:443/x" {
		t.Errorf("repoOf = %q", got)
	}
	if got := squeeze([]string{"a", "a", "b", "a"}); len(got) != 3 || got[0] != "a (2 times)" {
		t.Errorf("squeeze = %q", got)
	}
}
