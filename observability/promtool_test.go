package observability

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/kubernetes"
	"github.com/modelship/modelship/internal/testenv"
)

// binary finds a Prometheus program: the path in env, else name on PATH,
// else Debian's /usr/bin/name. When it is missing the test is skipped with
// the script that installs it (a failure under CI=true).
func binary(t *testing.T, env, name string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			testenv.Unavailable(t, fmt.Sprintf("%s=%s: %v", env, p, err))
		}
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/" + name); err == nil {
		return "/usr/bin/" + name
	}
	testenv.Unavailable(t, fmt.Sprintf("%s is not on PATH nor at /usr/bin/%s; install it with .ci/deps/prometheus.sh (apt-get install prometheus) or set %s", name, name, env))
	return ""
}

// TestPromtool runs Prometheus's own checks: the scrape configuration of
// the compose project with its rule files, the rules, and their unit tests
// (every alert firing in one case and not in another).
func TestPromtool(t *testing.T) {
	promtool := binary(t, "MODELSHIP_PROMTOOL_BIN", "promtool")
	for _, args := range [][]string{
		{"check", "config", "prometheus.yml"},
		{"check", "rules", "rules/modelship.rules.yml"},
		{"test", "rules", "rules/modelship.rules.test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "prometheus"
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			continue
		}
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
	}
}

// scrapeFile is a Prometheus configuration, as far as the tests read it.
type scrapeFile struct {
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		HonorLabels   bool   `yaml:"honor_labels"`
		KubernetesSD  []any  `yaml:"kubernetes_sd_configs"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
		Relabel []struct {
			SourceLabels []string `yaml:"source_labels"`
			Regex        string   `yaml:"regex"`
			Action       string   `yaml:"action"`
			TargetLabel  string   `yaml:"target_label"`
		} `yaml:"relabel_configs"`
	} `yaml:"scrape_configs"`
}

// podLabel is the meta label kubernetes_sd gives a pod label.
func podLabel(name string) string {
	return "__meta_kubernetes_pod_label_" + strings.NewReplacer(".", "_", "/", "_", "-", "_").Replace(name)
}

// TestKubernetesScrapeConfig: Debian's promtool is built without
// Kubernetes service discovery, so the Kubernetes variant is read here:
// its serving job keeps the pods the Kubernetes target labels
// (app.kubernetes.io/name=modelship) on their container port "http", and
// labels their series with the pod's environment and release.
func TestKubernetesScrapeConfig(t *testing.T) {
	b, err := os.ReadFile("prometheus/prometheus-kubernetes.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f scrapeFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.RuleFiles) != 1 || f.RuleFiles[0] != "rules/modelship.rules.yml" {
		t.Errorf("rule_files = %v, want rules/modelship.rules.yml", f.RuleFiles)
	}
	want := map[string]string{ // source label -> regex (keep) or target label
		podLabel(kubernetes.LabelName):              "modelship",
		"__meta_kubernetes_pod_container_port_name": "http",
		podLabel(deploy.LabelEnv):                   "env",
		podLabel(deploy.LabelRelease):               "release",
	}
	var serving, push bool
	for _, sc := range f.ScrapeConfigs {
		switch sc.JobName {
		case "modelship-serving":
			serving = len(sc.KubernetesSD) == 1 && sc.HonorLabels
			for _, r := range sc.Relabel {
				if len(r.SourceLabels) == 1 && (r.Action == "keep" && want[r.SourceLabels[0]] == r.Regex || r.TargetLabel != "" && want[r.SourceLabels[0]] == r.TargetLabel) {
					delete(want, r.SourceLabels[0])
				}
			}
		case "pushgateway":
			push = sc.HonorLabels
		}
	}
	if !serving {
		t.Error("no modelship-serving job with one kubernetes_sd_configs and honor_labels: true")
	}
	if !push {
		t.Error("no pushgateway job with honor_labels: true")
	}
	for src, v := range want {
		t.Errorf("modelship-serving: no relabel rule from %s (%s)", src, v)
	}
}
