package config

import (
	"strings"
	"testing"
)

func TestKubernetesEnvironment(t *testing.T) {
	c, err := Parse("m.yaml", []byte(`model: {path: /m}
environments:
  gpu-prod:
    target: kubernetes
    strategy: rolling
    kubernetes:
      namespace: inference
      replicas: 3
      gpus: 1
      node-selector: {nvidia.com/gpu.present: "true"}
      tolerations:
        - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}
        - {key: dedicated, value: inference, effect: NoExecute, toleration-seconds: 60}
`))
	if err != nil {
		t.Fatal(err)
	}
	e := c.Environments["gpu-prod"]
	k := e.Kubernetes
	if k.Name != "modelship-gpu-prod" || k.ServicePort != 80 || k.ImagePullPolicy != "IfNotPresent" || k.Replicas != 3 {
		t.Errorf("defaults: %+v", k)
	}
	if e.URL != "" || e.Port != 0 {
		t.Errorf("a kubernetes environment without url is verified through the API server, got url %q port %d", e.URL, e.Port)
	}
	if len(k.Tolerations) != 2 || k.Tolerations[1].Operator != "Equal" || *k.Tolerations[1].TolerationSeconds != 60 {
		t.Errorf("tolerations: %+v", k.Tolerations)
	}
}

func TestKubernetesErrors(t *testing.T) {
	env := func(body string) string {
		return "model: {path: /m}\nenvironments:\n  k:\n    target: kubernetes\n    kubernetes:\n" + body
	}
	parseErrors(t, []parseError{
		{"name too long", env("      name: " + strings.Repeat("a", 43) + "\n"), []string{"m.yaml:6:13:", "environments.k.kubernetes.name", "up to 42 characters"}},
		{"name upper", env("      name: Model\n"), []string{"kubernetes.name", `got "Model"`}},
		{"namespace", env("      namespace: my_ns\n"), []string{"m.yaml:6:18:", "kubernetes.namespace", "expected a namespace name"}},
		{"node selector key", env("      node-selector: {'bad key': x}\n"), []string{"kubernetes.node-selector.bad key", "expected a label key"}},
		{"node selector value", env("      node-selector: {gpu: 'a b'}\n"), []string{"kubernetes.node-selector.gpu", "expected a label value"}},
		{"pull policy", env("      image-pull-policy: sometimes\n"), []string{"m.yaml:6:26:", "kubernetes.image-pull-policy", `"Always", "IfNotPresent" or "Never"`}},
		{"operator", env("      tolerations: [{key: a, operator: Maybe}]\n"), []string{"kubernetes.tolerations[0].operator", `got "Maybe"`}},
		{"exists with value", env("      tolerations: [{key: a, operator: Exists, value: x}]\n"), []string{"tolerations[0].value", "must be empty with operator Exists"}},
		{"equal without key", env("      tolerations: [{value: x}]\n"), []string{"tolerations[0].key", "required with operator Equal"}},
		{"effect", env("      tolerations: [{key: a, effect: NoRun}]\n"), []string{"tolerations[0].effect", `got "NoRun"`}},
		{"seconds without NoExecute", env("      tolerations: [{key: a, effect: NoSchedule, toleration-seconds: 5}]\n"), []string{"tolerations[0].toleration-seconds", "only applies to effect NoExecute"}},
		{"negative seconds", env("      tolerations: [{key: a, effect: NoExecute, toleration-seconds: -1}]\n"), []string{"toleration-seconds", "expected 0 or more"}},
		{"unknown key", env("      tolerations: [{key: a, effects: NoExecute}]\n"), []string{"unknown key \"effects\""}},
		{"replicas", env("      replicas: -1\n"), []string{"kubernetes.replicas", "expected 1 or more"}},
		{"bad url", "model: {path: /m}\nenvironments:\n  k: {target: kubernetes, url: 'ftp://x'}\n", []string{"environments.k.url", "expected an http(s) URL"}},
	})
}
