package observability

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/modelship/modelship/notify"
)

const (
	dashboardPath = "grafana/dashboards/modelship.json"
	rulesPath     = "prometheus/rules/modelship.rules.yml"
)

// ruleFile is a Prometheus rule file, as far as the tests read it.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Record      string            `yaml:"record"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	Annotations map[string]string `yaml:"annotations"`
}

func (f ruleFile) rules() []rule {
	var out []rule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

func loadRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", rulesPath, err)
	}
	if len(f.rules()) == 0 {
		t.Fatalf("%s: no rules", rulesPath)
	}
	return f
}

// metricNames parses expr with Prometheus's parser and returns the metric
// name of every selector in it; a selector without one is an error.
func metricNames(expr string) ([]string, error) {
	e, err := parser.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	var bad error
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" {
			bad = fmt.Errorf("selector %s names no metric", vs)
		}
		names = append(names, name)
		return nil
	})
	return names, bad
}

// grafanaVar is a Grafana template variable: $name or ${name[:format]}.
var grafanaVar = regexp.MustCompile(`\$(?:\{(\w+)(?::\w+)?\}|(\w+))`)

// promQLOf replaces Grafana's variables in a panel's query: the interval
// variables by a duration, every other (a label value in a matcher) by a
// word.
func promQLOf(q string) string {
	return grafanaVar.ReplaceAllStringFunc(q, func(v string) string {
		m := grafanaVar.FindStringSubmatch(v)
		switch m[1] + m[2] {
		case "__rate_interval", "__interval", "__range":
			return "5m"
		}
		return "x"
	})
}

// labelValues is a variable's query label_values(SELECTOR, LABEL).
var labelValues = regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`)

// dashboardQueries are the PromQL expressions of the dashboard: every
// "expr" in it (panel targets) and the selectors of its query variables,
// keyed by where they are.
func dashboardQueries(t *testing.T, dash map[string]any) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				if s, ok := c.(string); ok && k == "expr" {
					out[path] = s
				}
				walk(path+"."+k, c)
			}
		case []any:
			for i, c := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), c)
			}
		}
	}
	walk("", dash["panels"])
	for i, v := range templating(dash) {
		if v["type"] != "query" {
			continue
		}
		q, _ := v["definition"].(string)
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("%s: variable %v: query %q is not label_values(SELECTOR, LABEL)", dashboardPath, v["name"], q)
			continue
		}
		out[fmt.Sprintf("templating.list[%d]", i)] = m[1]
	}
	return out
}

func templating(dash map[string]any) []map[string]any {
	var out []map[string]any
	tl, _ := dash["templating"].(map[string]any)
	list, _ := tl["list"].([]any)
	for _, v := range list {
		if m, ok := v.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func loadDashboard(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return dash
}

// TestDashboardQueriesUseExposedMetrics parses every query of the Grafana
// dashboard with Prometheus's parser and checks that each metric it reads
// is one the stack exposes.
func TestDashboardQueriesUseExposedMetrics(t *testing.T) {
	x := exposedNames(t)
	qs := dashboardQueries(t, loadDashboard(t))
	if len(qs) < 10 {
		t.Fatalf("%s: only %d queries found", dashboardPath, len(qs))
	}
	for where, q := range qs {
		checkExpr(t, dashboardPath+" "+where, promQLOf(q), x)
	}
}

// TestRulesUseExposedMetrics does the same for the recording and alert
// rules.
func TestRulesUseExposedMetrics(t *testing.T) {
	x := exposedNames(t)
	for _, r := range loadRules(t).rules() {
		checkExpr(t, rulesPath+" "+r.Record+r.Alert, r.Expr, x)
	}
}

func checkExpr(t *testing.T, where, expr string, x exposed) {
	t.Helper()
	names, err := metricNames(expr)
	if err != nil {
		t.Errorf("%s: %q: %v", where, expr, err)
	}
	for _, n := range names {
		if n != "" && !x.has(n) {
			t.Errorf("%s: metric %s is not exposed by modelship serve, the engine, the Pushgateway series or the recording rules", where, n)
		}
	}
}

// TestMetricNamesCheck: the check tells a misspelt metric, a histogram
// suffix on a counter and an unparsable query from good ones.
func TestMetricNamesCheck(t *testing.T) {
	x := exposedNames(t)
	for _, name := range []string{"vllm:num_requests_waiting", "vllm:kv_cache_usage_perc", "vllm:time_to_first_token_seconds_bucket",
		"modelship_requests_total", "modelship_time_to_first_token_seconds_bucket", "modelship_deploy_timestamp_seconds",
		"modelship_bench_ttft_seconds_count", "modelship:request_error_ratio:rate5m"} {
		if !x.has(name) {
			t.Errorf("%s: not found among the exposed names", name)
		}
	}
	for _, name := range []string{"vllm:kv_cache_usage", "modelship_request_total", "vllm:request_success_total_bucket", "modelship_bench_ttft_seconds_bucket"} {
		if x.has(name) {
			t.Errorf("%s: taken for an exposed name", name)
		}
	}
	if _, err := metricNames(`rate(modelship_requests_total[5m]`); err == nil {
		t.Error("an unclosed parenthesis parsed")
	}
	if _, err := metricNames(`{job="modelship-serving"}`); err == nil {
		t.Error("a selector without a metric name passed")
	}
	if got := promQLOf(`rate(x{env=~"$env", r="${release:regex}"}[$__rate_interval])`); got != `rate(x{env=~"x", r="x"}[5m])` {
		t.Errorf("promQLOf = %s", got)
	}
}

// TestDashboardIsProvisioningReady: every Prometheus query goes through the
// ${DS_PROMETHEUS} datasource variable (no datasource uid of one Grafana),
// and the dashboard shows modelship's deploy annotations: an annotation
// query whose tags are all on the annotation notify sends for a deploy.
func TestDashboardIsProvisioningReady(t *testing.T) {
	dash := loadDashboard(t)
	var dsVar bool
	for _, v := range templating(dash) {
		if v["name"] == "DS_PROMETHEUS" && v["type"] == "datasource" && v["query"] == "prometheus" {
			dsVar = true
		}
	}
	if !dsVar {
		t.Errorf("%s: no datasource variable DS_PROMETHEUS (type datasource, query prometheus)", dashboardPath)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if ds, ok := v["datasource"].(map[string]any); ok && ds["type"] == "prometheus" && ds["uid"] != "${DS_PROMETHEUS}" {
				t.Errorf("%s %s: datasource uid %v, want ${DS_PROMETHEUS}", dashboardPath, path, ds["uid"])
			}
			for k, c := range v {
				walk(path+"."+k, c)
			}
		case []any:
			for i, c := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), c)
			}
		}
	}
	walk("", dash)

	deploy := notify.AnnotationFor(notify.Event{Stage: notify.StageDeploy, Status: notify.StatusPassed, Environment: "staging"}).Tags
	var shown []string
	anns, _ := dash["annotations"].(map[string]any)
	list, _ := anns["list"].([]any)
	for _, a := range list {
		a, _ := a.(map[string]any)
		target, _ := a["target"].(map[string]any)
		if target["type"] != "tags" {
			continue
		}
		var tags []string
		for _, tag := range target["tags"].([]any) {
			tags = append(tags, tag.(string))
		}
		if len(tags) > 0 && !slices.ContainsFunc(tags, func(tag string) bool { return !slices.Contains(deploy, tag) }) {
			shown = append(shown, strings.Join(tags, ","))
		}
	}
	if len(shown) == 0 {
		t.Errorf("%s: no annotation query picks out the annotation modelship sends for a deploy (tags %v)", dashboardPath, deploy)
	}
}
