package observability

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/docker"
	"github.com/modelship/modelship/internal/deploy/kubernetes"
	"github.com/modelship/modelship/serving"
)

// loadLogYAML parses one of the log shippers' configurations.
func loadLogYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s does not parse: %v", path, err)
	}
	return m
}

// at walks m along keys (string keys of maps, int indexes of lists).
func at(t *testing.T, m any, keys ...any) any {
	t.Helper()
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			mm, ok := m.(map[string]any)
			if !ok {
				t.Fatalf("%v: not a map at %q", m, k)
			}
			m = mm[k]
		case int:
			l, ok := m.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("%v: no item %d", m, k)
			}
			m = l[k]
		}
	}
	return m
}

// dockerRoles are the values of modelship.role the docker target gives a
// release's and the gateway's containers: its unexported roleRelease and
// roleGateway constants, read from its source.
func dockerRoles(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join("..", "internal", "deploy", "docker", "docker.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var roles []string
	ast.Inspect(f, func(n ast.Node) bool {
		if s, ok := n.(*ast.ValueSpec); ok && len(s.Names) == 1 && (s.Names[0].Name == "roleRelease" || s.Names[0].Name == "roleGateway") {
			v, err := strconv.Unquote(s.Values[0].(*ast.BasicLit).Value)
			if err != nil {
				t.Fatal(err)
			}
			roles = append(roles, v)
		}
		return true
	})
	if len(roles) != 2 {
		t.Fatalf("found roles %q in the docker target's source, want roleRelease and roleGateway", roles)
	}
	slices.Sort(roles)
	return roles
}

// equalsConditions are the field=value pairs of a Filebeat condition's
// "equals" under and/or.
func equalsConditions(c any) map[string][]string {
	out := map[string][]string{}
	var walk func(any)
	walk = func(c any) {
		switch c := c.(type) {
		case map[string]any:
			for k, v := range c {
				if k == "equals" {
					for f, val := range v.(map[string]any) {
						out[f] = append(out[f], val.(string))
					}
					continue
				}
				walk(v)
			}
		case []any:
			for _, x := range c {
				walk(x)
			}
		}
	}
	walk(c)
	for _, v := range out {
		slices.Sort(v)
	}
	return out
}

// autodiscoverTemplate is the first template of the Filebeat configuration
// path's autodiscover provider, which must be of type provider with
// labels.dedot dedot, and the field=value pairs of its condition.
func autodiscoverTemplate(t *testing.T, path, provider string, dedot bool) (any, map[string][]string) {
	t.Helper()
	p := at(t, loadLogYAML(t, path), "filebeat.autodiscover", "providers", 0)
	if at(t, p, "type") != provider || at(t, p, "labels.dedot") != dedot {
		t.Fatalf("provider %v: want type %s, labels.dedot %v", p, provider, dedot)
	}
	tpl := at(t, p, "templates", 0)
	return tpl, equalsConditions(at(t, tpl, "condition"))
}

// Filebeat on Docker picks up exactly the containers the docker target
// labels as a release or the gateway, and parses their JSON lines.
func TestFilebeatDocker(t *testing.T) {
	// labels.dedot false: the field names keep the labels' dots.
	tpl, got := autodiscoverTemplate(t, "filebeat/filebeat.docker.yml", "docker", false)
	field := "docker.container.labels." + docker.LabelRole
	if roles := dockerRoles(t); len(got) != 1 || !slices.Equal(got[field], roles) {
		t.Errorf("condition on %v, want %s in %q", got, field, roles)
	}
	checkFilestream(t, at(t, tpl, "config", 0), "${data.docker.container.id}")
}

// checkFilestream checks an input reads the container's file and decodes
// its ndjson to the top level.
func checkFilestream(t *testing.T, in any, id string) {
	t.Helper()
	if at(t, in, "type") != "filestream" || !strings.Contains(at(t, in, "paths", 0).(string), id) {
		t.Errorf("input %v: want a filestream of the container %s", in, id)
	}
	parsers := at(t, in, "parsers").([]any)
	if len(parsers) != 2 || at(t, parsers[0], "container") == nil {
		t.Fatalf("parsers %v: want container, then ndjson", parsers)
	}
	nd := at(t, parsers[1], "ndjson")
	if at(t, nd, "target") != "" || at(t, nd, "overwrite_keys") != true || at(t, nd, "expand_keys") != true {
		t.Errorf("ndjson %v: want target \"\", overwrite_keys and expand_keys (ECS fields at the top level)", nd)
	}
}

// Filebeat on Kubernetes picks up the pods the kubernetes target renders.
func TestFilebeatKubernetes(t *testing.T) {
	tpl, got := autodiscoverTemplate(t, "filebeat/filebeat.kubernetes.yml", "kubernetes", true)
	w := kubernetes.Render(kubernetes.Options{Namespace: "inference", Name: "llm", Replicas: 1},
		kubernetes.Manifest{Env: "production", Image: "registry.example.com/llm:1.2", ServedName: "current", ModelDigest: "sha256:0f0f",
			Strategy: deploy.BlueGreen, Now: time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC), Engine: serving.EngineVLLM}, 1)
	pod := w.Deployment().Spec.Template.Labels
	if len(got) < 2 {
		t.Errorf("condition %v: want the name and managed-by labels", got)
	}
	for field, vals := range got {
		label, ok := strings.CutPrefix(field, "kubernetes.labels.")
		key := strings.ReplaceAll(kubernetes.LabelName, ".", "_")
		if label != key && label != strings.ReplaceAll(kubernetes.LabelManagedBy, ".", "_") || !ok {
			t.Errorf("condition on %s, want %s or the managed-by label", field, key)
			continue
		}
		if real := pod[strings.ReplaceAll(label, "_", ".")]; len(vals) != 1 || vals[0] != real {
			t.Errorf("condition %s = %q, the rendered pod has %q", field, vals, real)
		}
	}
	checkFilestream(t, at(t, tpl, "config", 0), "${data.kubernetes.container.id}")
}

// promLabel is a container label as Prometheus service discovery names it.
func promLabel(l string) string {
	return "__meta_docker_container_label_" + regexp.MustCompile(`[^a-zA-Z0-9_]`).ReplaceAllString(l, "_")
}

// Promtail keeps the docker target's release and gateway containers and
// labels streams with their environment and release.
func TestPromtailDocker(t *testing.T) {
	m := loadLogYAML(t, "loki/promtail.yml")
	job := at(t, m, "scrape_configs", 0)
	filter := at(t, job, "docker_sd_configs", 0, "filters", 0)
	if at(t, filter, "name") != "label" || at(t, filter, "values", 0) != docker.LabelRole {
		t.Errorf("docker filter %v: want label %s", filter, docker.LabelRole)
	}
	relabel := at(t, job, "relabel_configs").([]any)
	keep := relabel[0]
	if at(t, keep, "action") != "keep" || at(t, keep, "source_labels", 0) != promLabel(docker.LabelRole) {
		t.Fatalf("first relabelling %v: want keep on %s", keep, promLabel(docker.LabelRole))
	}
	re := regexp.MustCompile("^(?:" + at(t, keep, "regex").(string) + ")$")
	for _, role := range dockerRoles(t) {
		if !re.MatchString(role) {
			t.Errorf("keep regex %s drops role %q", re, role)
		}
	}
	for _, other := range []string{"record", "lock", "gpu-probe"} {
		if re.MatchString(other) {
			t.Errorf("keep regex %s keeps role %q", re, other)
		}
	}
	targets := map[string]string{}
	for _, r := range relabel[1:] {
		targets[at(t, r, "target_label").(string)] = at(t, r, "source_labels", 0).(string)
	}
	for target, label := range map[string]string{"env": deploy.LabelEnv, "release": deploy.LabelRelease, "role": docker.LabelRole} {
		if targets[target] != promLabel(label) {
			t.Errorf("Loki label %s from %q, want %s", target, targets[target], promLabel(label))
		}
	}
	exprs := at(t, job, "pipeline_stages", 0, "json", "expressions").(map[string]any)
	if exprs["level"] != `"log.level"` || exprs["time"] != `"@timestamp"` {
		t.Errorf("json stage %v: want log.level and @timestamp (quoted: JMESPath)", exprs)
	}
}
