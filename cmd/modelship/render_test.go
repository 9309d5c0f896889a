package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeRenderConfig(t *testing.T, envs string) string {
	t.Helper()
	dir := t.TempDir()
	model, _ := filepath.Abs("../../testdata/models/good")
	cfg := "model: {path: " + model + "}\nserving: {engine: sim}\nenvironments:\n" + envs
	p := filepath.Join(dir, "modelship.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Render needs no cluster when pods use no GPU and the image is given: a
// GitOps pipeline can run it anywhere.
func TestRenderOffline(t *testing.T) {
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "none"))
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfg := writeRenderConfig(t, "  prod:\n    target: kubernetes\n    strategy: blue-green\n    kubernetes: {namespace: inference, name: llm, replicas: 2}\n")
	code, out, errs := runCLI(t, "render", "--env", "prod", "--config", cfg, "--image", "registry.example.com/llm:7", "--git-sha", "0123abc")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"kind: Deployment", "name: llm-2", "namespace: inference", "replicas: 2", "image: registry.example.com/llm:7",
		"path: /ready", "preStop:", "modelship.git-sha: 0123abc", "modelship.model-digest: sha256:", "---\napiVersion: v1\nkind: Service",
		"modelship.deployment: llm-2", "modelship.strategy: blue-green"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// With serving.api-key, the rendered pods read it from the Secret
// llm-serving, and nothing rendered holds its value (render resolves no
// secret at all: the variable is not even set here).
func TestRenderServingSecrets(t *testing.T) {
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "none"))
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfg := writeRenderConfig(t, "  prod:\n    target: kubernetes\n    kubernetes: {name: llm}\n    serving: {api-key: env:UNSET_KEY_VAR}\n")
	code, out, errs := runCLI(t, "render", "--env", "prod", "--config", cfg, "--image", "registry.example.com/llm:7")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want := "- name: VLLM_API_KEY\n          valueFrom:\n            secretKeyRef:\n              key: VLLM_API_KEY\n              name: llm-serving\n"
	if !strings.Contains(out, want) {
		t.Errorf("output lacks\n%s\n%s", want, out)
	}
	if !strings.Contains(errs, "from Secret llm-serving") {
		t.Errorf("no note about the Secret: %s", errs)
	}
}

func TestRenderErrors(t *testing.T) {
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "none"))
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfg := writeRenderConfig(t, "  staging: {}\n  k: {target: kubernetes}\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"render", "--config", cfg}, "--env NAME is required"},
		{[]string{"render", "--config", cfg, "--env", "nope"}, `has no environment "nope"`},
		{[]string{"render", "--config", cfg, "--env", "staging", "--image", "x:1"}, "render describes Kubernetes objects only"},
		{[]string{"render", "--config", cfg, "--env", "k"}, "--image REF is required"},
		{[]string{"render", "--config", cfg, "--env", "k", "--image", "x:1", "--kube-server", "ftp://h"}, `--kube-server "ftp://h": expected the API server's URL`},
		{[]string{"render", "--config", cfg, "--env", "k", "--image", "x:1", "--strategy", "recreate"}, `strategy "recreate": expected rolling or blue-green`},
	} {
		code, _, errs := runCLI(t, tc.args...)
		if code != exitUsage || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want %d and %q", tc.args, code, errs, exitUsage, tc.want)
		}
	}
	if code, _, errs := runCLI(t, "render", "--help"); code != exitOK || !strings.Contains(errs, "--image") || !strings.Contains(errs, "GitOps") {
		t.Errorf("--help: exit %d\n%s", code, errs)
	}
}

// render --rbac prints the deployer's least privilege for the environment:
// namespaced only without GPUs, with a ClusterRole to read nodes and pods
// when pods use GPUs.
func TestRenderRBAC(t *testing.T) {
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "none"))
	for _, tc := range []struct {
		gpus    string
		cluster bool
	}{{"0", false}, {"1", true}} {
		cfg := writeRenderConfig(t, "  prod:\n    target: kubernetes\n    kubernetes: {namespace: inference, name: llm, gpus: "+tc.gpus+"}\n")
		code, out, errs := runCLI(t, "render", "--env", "prod", "--config", cfg, "--rbac")
		if code != exitOK {
			t.Fatalf("gpus %s: exit %d: %s", tc.gpus, code, errs)
		}
		for _, want := range []string{"kind: ServiceAccount", "name: modelship-deployer", "namespace: inference", "kind: Role\n", "kind: RoleBinding",
			"- services/proxy", "- pods/proxy", "- leases", "- deployments"} {
			if !strings.Contains(out, want) {
				t.Errorf("gpus %s: output lacks %q:\n%s", tc.gpus, want, out)
			}
		}
		if got := strings.Contains(out, "kind: ClusterRole\n") && strings.Contains(out, "- nodes"); got != tc.cluster {
			t.Errorf("gpus %s: ClusterRole reading nodes rendered = %v, want %v:\n%s", tc.gpus, got, tc.cluster, out)
		}
		if strings.Contains(out, "kind: Deployment") {
			t.Errorf("gpus %s: --rbac printed the workload too", tc.gpus)
		}
	}
}
