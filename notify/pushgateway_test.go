package notify

import (
	"net/http"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/modelship/modelship/internal/testenv"
)

// scrape reads the Pushgateway's /metrics back.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing %s/metrics: %v", base, err)
	}
	return fams
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// series finds the one series of fam whose labels include want.
func series(t *testing.T, fams map[string]*dto.MetricFamily, fam string, want map[string]string) *dto.Metric {
	t.Helper()
	f, ok := fams[fam]
	if !ok {
		t.Fatalf("%s not on /metrics", fam)
	}
	var found []*dto.Metric
	for _, m := range f.GetMetric() {
		l := labelsOf(m)
		match := true
		for k, v := range want {
			if l[k] != v {
				match = false
			}
		}
		if match {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		var all []string
		for _, m := range f.GetMetric() {
			all = append(all, m.String())
		}
		sort.Strings(all)
		t.Fatalf("%s%v: %d series match, want 1; all:\n%s", fam, want, len(found), strings.Join(all, "\n"))
	}
	return found[0]
}

func TestPushgatewayRealServer(t *testing.T) {
	base := testenv.Pushgateway(t)
	p := NewPushgateway(base, "", nil)

	bench := sampleEvent()
	bench.Stage, bench.Environment = StageBenchmark, "staging"
	bench.Figures = &Figures{Bench: sampleEvent().Figures.Bench}
	validate := sampleEvent()
	validate.Stage, validate.Environment = StageValidate, ""
	validate.Figures = &Figures{Validation: sampleEvent().Figures.Validation}
	validate.Figures.Validation.Passed = false
	deploy := sampleEvent()
	deploy.Figures = nil
	rollback := sampleEvent()
	rollback.Environment, rollback.Status, rollback.Figures = "staging", StatusRolledBack, nil

	n := New([]Sink{p}, fast())
	defer n.Close(t.Context())
	for _, e := range []Event{validate, bench, deploy, rollback} {
		if ws := n.Notify(t.Context(), e); len(ws) != 0 {
			t.Fatalf("%s: %v", e.Title(), ws)
		}
	}
	fams := scrape(t, base)

	ts := float64(deploy.Time.Unix())
	d := series(t, fams, "modelship_deploy_timestamp_seconds", map[string]string{"job": "modelship", "env": "production", "model": "llama-3.1-8b", "stage": "deploy"})
	if d.GetGauge().GetValue() != ts {
		t.Errorf("deploy timestamp %v, want %v", d.GetGauge().GetValue(), ts)
	}
	l := labelsOf(d)
	if l["model_digest"] != deploy.ModelDigest || l["image_digest"] != deploy.ImageDigest || l["git_sha"] != deploy.GitSHA || l["release"] != "r-42" || l["image"] != deploy.Image {
		t.Errorf("deploy labels %v", l)
	}
	series(t, fams, "modelship_rollback_timestamp_seconds", map[string]string{"env": "staging", "stage": "deploy"})

	g := series(t, fams, "modelship_gate_passed", map[string]string{"gate": "bench", "env": "staging", "stage": "benchmark"})
	if g.GetGauge().GetValue() != 1 {
		t.Errorf("bench gate %v, want 1", g.GetGauge().GetValue())
	}
	// No environment before deploy stages: the label is left out.
	g = series(t, fams, "modelship_gate_passed", map[string]string{"gate": "validate", "stage": "validate"})
	if g.GetGauge().GetValue() != 0 || labelsOf(g)["env"] != "" {
		t.Errorf("validate gate %v labels %v, want 0 and no env", g.GetGauge().GetValue(), labelsOf(g))
	}
	if v := series(t, fams, "modelship_validate_pass_ratio", nil).GetGauge().GetValue(); v != 0.98 {
		t.Errorf("pass ratio %v", v)
	}
	if v := series(t, fams, "modelship_validate_cases", map[string]string{"result": "failed"}).GetGauge().GetValue(); v != 1 {
		t.Errorf("failed cases %v", v)
	}

	ttft := series(t, fams, "modelship_bench_ttft_seconds", map[string]string{"env": "staging"}).GetSummary()
	if fams["modelship_bench_ttft_seconds"].GetType() != dto.MetricType_SUMMARY {
		t.Errorf("ttft type %v, want summary", fams["modelship_bench_ttft_seconds"].GetType())
	}
	q := map[float64]float64{}
	for _, x := range ttft.GetQuantile() {
		q[x.GetQuantile()] = x.GetValue()
	}
	if q[0.5] != 0.05 || q[0.9] != 0.08 || q[0.99] != 0.12 || ttft.GetSampleCount() != 198 {
		t.Errorf("ttft quantiles %v count %d", q, ttft.GetSampleCount())
	}
	e2e := series(t, fams, "modelship_bench_e2e_latency_seconds", nil).GetSummary()
	if e2e.GetQuantile()[2].GetValue() != 2.5 {
		t.Errorf("e2e p99 %v", e2e.GetQuantile())
	}
	if v := series(t, fams, "modelship_bench_output_tokens_per_second", nil).GetGauge().GetValue(); v != 1234.5 {
		t.Errorf("tokens/s %v", v)
	}
	if v := series(t, fams, "modelship_bench_errors", nil).GetGauge().GetValue(); v != 2 {
		t.Errorf("errors %v", v)
	}

	// A new deploy started: the stage's last status changes, the last
	// successful deploy's timestamp stays.
	again := deploy
	again.Status, again.Time = StatusStarted, deploy.Time.Add(3600e9)
	if ws := n.Notify(t.Context(), again); len(ws) != 0 {
		t.Fatal(ws)
	}
	fams = scrape(t, base)
	series(t, fams, "modelship_deploy_timestamp_seconds", map[string]string{"env": "production"})
	st := series(t, fams, "modelship_stage_timestamp_seconds", map[string]string{"env": "production", "stage": "deploy"})
	if labelsOf(st)["status"] != "started" || st.GetGauge().GetValue() != ts+3600 {
		t.Errorf("stage series %v = %v", labelsOf(st), st.GetGauge().GetValue())
	}
}

// A canary step pushes nothing; the deploy's outcome still does.
func TestPushgatewayIgnoresProgress(t *testing.T) {
	rec := newRecorder(t)
	p := NewPushgateway(rec.URL, "modelship", nil)
	if ws := notifyOne(t, p, progressEvent(), fast()); len(ws) != 0 || len(rec.requests()) != 0 {
		t.Fatalf("progress: warnings %v, %d pushes, want none", ws, len(rec.requests()))
	}
	if ws := notifyOne(t, p, sampleEvent(), fast()); len(ws) != 0 || len(rec.requests()) != 1 {
		t.Errorf("deploy passed: warnings %v, %d pushes, want 1", ws, len(rec.requests()))
	}
}
