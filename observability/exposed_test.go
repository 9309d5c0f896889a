package observability

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/modelship/modelship/internal/serve"
	"github.com/modelship/modelship/internal/testenv"
	"github.com/modelship/modelship/notify"
)

// exposed maps each metric name the stack exposes to its type ("counter",
// "gauge", "histogram", "summary"; "" when only the name is known).
type exposed map[string]string

// has reports whether a selector's metric name is exposed: a name, or a
// histogram's (or summary's) _bucket, _sum and _count series.
func (x exposed) has(name string) bool {
	if _, ok := x[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		switch typ, ok := x[base]; {
		case !ok:
		case typ == "histogram", typ == "": // "": a name from source only
			return true
		case typ == "summary" && suffix != "_bucket":
			return true
		}
	}
	return false
}

func (x exposed) add(name, typ string) {
	if old, ok := x[name]; !ok || old == "" {
		x[name] = typ
	}
}

func (x exposed) addFamilies(mfs []*dto.MetricFamily) {
	for _, mf := range mfs {
		x.add(mf.GetName(), strings.ToLower(mf.GetType().String()))
	}
}

// prometheusOwn are the series Prometheus makes itself (per target and for
// alerts) and the Pushgateway adds to every group.
var prometheusOwn = []string{"up", "scrape_duration_seconds", "scrape_samples_scraped",
	"scrape_samples_post_metric_relabeling", "scrape_series_added", "ALERTS", "ALERTS_FOR_STATE",
	"push_time_seconds", "push_failure_time_seconds"}

// exposedNames is what the stack exposes, read from the code: the serving
// proxy's /metrics in front of the simulator (vllm:* as the simulator
// exports them, and whatever the proxy adds), every metric name constant
// of the serving contract (serving/metrics.go: vllm:* and modelship_*), the
// Pushgateway series notify pushes for every stage and status, the
// recording rules, and Prometheus's own series.
func exposedNames(t *testing.T) exposed {
	t.Helper()
	x := exposed{}
	x.addFamilies(scrapeFamilies(t, proxyInFrontOfSim(t)+"/metrics"))
	for _, name := range servingMetricNames(t) {
		x.add(name, "")
	}
	x.addFamilies(pushedFamilies(t))
	for _, r := range loadRules(t).rules() {
		if r.Record != "" {
			x.add(r.Record, "gauge")
		}
	}
	for _, name := range prometheusOwn {
		x.add(name, "gauge")
	}
	return x
}

// proxyInFrontOfSim is the base URL of an in-process `modelship serve`
// proxy in front of an in-process simulator serving the good test model.
func proxyInFrontOfSim(t *testing.T) string {
	t.Helper()
	simURL := testenv.Sim(t, filepath.Join(testenv.RepoRoot(), "testdata/models/good"), nil)
	u, err := url.Parse(simURL)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(serve.NewProxy(u, serve.VersionInfo{}))
	t.Cleanup(ts.Close)
	return ts.URL
}

// scrapeFamilies reads the text exposition at metricsURL.
func scrapeFamilies(t *testing.T, metricsURL string) []*dto.MetricFamily {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", metricsURL, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", metricsURL, err)
	}
	var out []*dto.MetricFamily
	for _, mf := range fams {
		out = append(out, mf)
	}
	return out
}

var metricName = regexp.MustCompile(`^(vllm:|modelship_)[a-zA-Z0-9_:]+$`)

// servingMetricNames are the metric names among the string constants of
// serving/metrics.go.
func servingMetricNames(t *testing.T) []string {
	t.Helper()
	path := filepath.Join(testenv.RepoRoot(), "serving", "metrics.go")
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			for _, v := range s.(*ast.ValueSpec).Values {
				lit, ok := v.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				if s, err := strconv.Unquote(lit.Value); err == nil && metricName.MatchString(s) {
					names = append(names, s)
				}
			}
		}
	}
	if len(names) == 0 {
		t.Fatalf("%s: no metric name constants found", path)
	}
	return names
}

// pushedFamilies are the metrics notify pushes to the Pushgateway, for
// every stage and status with both gates' figures.
func pushedFamilies(t *testing.T) []*dto.MetricFamily {
	t.Helper()
	var out []*dto.MetricFamily
	for _, stage := range notify.Stages {
		for _, status := range notify.Statuses {
			e := notify.Event{Stage: stage, Status: status, Environment: "staging", Release: "r1", Time: time.Now(),
				Figures: &notify.Figures{Validation: &notify.ValidationFigures{Passed: true, Total: 1, Ok: 1, PassRate: 1},
					Bench: &notify.BenchFigures{Passed: true, Requests: 1, TTFT: notify.Quantiles{Count: 1}, E2EL: notify.Quantiles{Count: 1}}}}
			reg := prometheus.NewRegistry()
			if err := reg.Register(notify.Collector(e)); err != nil {
				t.Fatalf("%s %s: %v", stage, status, err)
			}
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatalf("%s %s: %v", stage, status, err)
			}
			out = append(out, mfs...)
		}
	}
	return out
}
