package notify

import (
	"context"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
)

// Pushgateway pushes each event's metrics to a Prometheus Pushgateway with
// client_golang's push package, so Prometheus keeps them after the
// short-lived modelship process is gone.
//
// Grouping key: job (Options job, default "modelship"), env (the event's
// environment), model (served model name, else the short model digest) and
// stage; labels with no value are left out. Each event is pushed with Add
// (HTTP POST), which replaces only the metric names pushed, so a stage's
// group keeps the last figures while a new run of it is under way.
//
// Metrics (gauges unless said; timestamps are unix seconds):
//
//	modelship_stage_timestamp_seconds{status}          last event of the stage
//	modelship_deploy_timestamp_seconds{model_digest,image,image_digest,git_sha,release}
//	                                                   stage deploy passed
//	modelship_rollback_timestamp_seconds{...same}      rolled_back, or stage rollback passed
//	modelship_gate_passed{gate="validate"|"bench"}     1 passed, 0 failed
//	modelship_validate_pass_ratio                      cases passed / cases
//	modelship_validate_cases{result="passed"|"failed"|"errored"}
//	modelship_bench_ttft_seconds{quantile="0.5"|"0.9"|"0.99"}        summary (_sum, _count)
//	modelship_bench_e2e_latency_seconds{quantile="0.5"|"0.9"|"0.99"} summary (_sum, _count)
//	modelship_bench_output_tokens_per_second
//	modelship_bench_requests
//	modelship_bench_errors
//	modelship_bench_error_ratio
//
// The Pushgateway adds push_time_seconds and push_failure_time_seconds per
// group.
//
// Progress events (a canary or shadow step) push no metric: Send ignores
// them. The Pushgateway keeps one value per series, so of a canary's steps
// (5%, 25%, 50% say) only the last would be left, a
// modelship_stage_timestamp_seconds{status="progress"} kept beside the
// stage's outcome long after the deploy ended; each step is an annotation
// in Grafana and a POST to the webhook instead.
type Pushgateway struct {
	url     string
	job     string
	client  *http.Client
	red     redactor
	display string
}

// NewPushgateway makes a Pushgateway sink for the gateway at url (e.g.
// http://pushgateway:9091); job "" is "modelship". Credentials in the URL
// never appear in errors.
func NewPushgateway(url, job string, client *http.Client) *Pushgateway {
	if job == "" {
		job = "modelship"
	}
	if client == nil {
		client = http.DefaultClient
	}
	display := hostURL(url)
	return &Pushgateway{url: strings.TrimRight(url, "/"), job: job, client: client, display: display, red: newRedactor("pushgateway", url, display)}
}

// Name is "pushgateway".
func (p *Pushgateway) Name() string { return "pushgateway" }

// Send pushes the event's metrics (see Pushgateway); progress events push
// nothing.
func (p *Pushgateway) Send(ctx context.Context, e Event) error {
	if e.Status == StatusProgress {
		return nil
	}
	doer := &statusDoer{c: p.client}
	pusher := push.New(p.url, p.job).Client(doer).Collector(Collector(e))
	for _, l := range Grouping(e) {
		pusher = pusher.Grouping(l[0], l[1])
	}
	if err := pusher.AddContext(ctx); err != nil {
		// The push package's status errors repeat the full push URL.
		msg := strings.ReplaceAll(err.Error(), p.url, p.display)
		err = p.red.err(errorString{msg, err})
		if c := doer.status; c/100 == 3 || (c/100 == 4 && c != http.StatusRequestTimeout && c != http.StatusTooManyRequests) {
			err = &Permanent{Err: err}
		}
		return err
	}
	return nil
}

// statusDoer remembers the last answer's status code.
type statusDoer struct {
	c      *http.Client
	status int
}

func (d *statusDoer) Do(r *http.Request) (*http.Response, error) {
	resp, err := noRedirects(d.c).Do(r)
	if err == nil {
		d.status = resp.StatusCode
		if resp.StatusCode/100 == 3 {
			resp.Body.Close()
			return nil, redirectError(r.URL.Redacted(), resp)
		}
	}
	return resp, err
}

// errorString keeps the wrapped error (for url.Error) under a new text.
type errorString struct {
	msg string
	err error
}

func (e errorString) Error() string { return e.msg }
func (e errorString) Unwrap() error { return e.err }

// Grouping is the Pushgateway grouping key for e, besides job.
func Grouping(e Event) [][2]string {
	model := e.Model
	if model == "" {
		model = short(e.ModelDigest)
	}
	var out [][2]string
	for _, l := range [][2]string{{"env", e.Environment}, {"model", model}, {"stage", string(e.Stage)}} {
		if l[1] != "" {
			out = append(out, l)
		}
	}
	return out
}

// metricSet is a prometheus.Collector over fixed metrics.
type metricSet []prometheus.Metric

func (m metricSet) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(m, ch) }
func (m metricSet) Collect(ch chan<- prometheus.Metric) {
	for _, x := range m {
		ch <- x
	}
}

// Collector is the metrics pushed for e (see Pushgateway).
func Collector(e Event) prometheus.Collector {
	var ms metricSet
	descs := map[string]*prometheus.Desc{} // one Desc per name: the registry refuses duplicates
	gauge := func(name, help string, v float64, labels ...string) {
		var names, values []string
		for i := 0; i+1 < len(labels); i += 2 {
			names = append(names, labels[i])
			values = append(values, labels[i+1])
		}
		d, ok := descs[name]
		if !ok {
			d = prometheus.NewDesc(name, help, names, nil)
			descs[name] = d
		}
		ms = append(ms, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, values...))
	}
	ts := float64(e.Time.UnixNano()) / 1e9
	gauge("modelship_stage_timestamp_seconds", "When the stage's last event happened, by its status.", ts, "status", string(e.Status))

	release := []string{"model_digest", e.ModelDigest, "image", e.Image, "image_digest", e.ImageDigest, "git_sha", e.GitSHA, "release", e.Release}
	if e.Stage == StageDeploy && e.Status == StatusPassed {
		gauge("modelship_deploy_timestamp_seconds", "When the release was last deployed to the environment.", ts, release...)
	}
	if e.Status == StatusRolledBack || (e.Stage == StageRollback && e.Status == StatusPassed) {
		gauge("modelship_rollback_timestamp_seconds", "When the environment was last rolled back, and the release rolled back from.", ts, release...)
	}
	if f := e.Figures; f != nil && e.Status.Terminal() {
		b01 := func(ok bool) float64 {
			if ok {
				return 1
			}
			return 0
		}
		if v := f.Validation; v != nil {
			gauge("modelship_gate_passed", "Whether the gate passed (1) or failed (0).", b01(v.Passed), "gate", "validate")
			gauge("modelship_validate_pass_ratio", "Validation cases passed over cases.", v.PassRate)
			gauge("modelship_validate_cases", "Validation cases by result.", float64(v.Ok), "result", "passed")
			gauge("modelship_validate_cases", "Validation cases by result.", float64(v.Failed), "result", "failed")
			gauge("modelship_validate_cases", "Validation cases by result.", float64(v.Errored), "result", "errored")
		}
		if b := f.Bench; b != nil {
			gauge("modelship_gate_passed", "Whether the gate passed (1) or failed (0).", b01(b.Passed), "gate", "bench")
			summary := func(name, help string, q Quantiles) {
				d := prometheus.NewDesc(name, help, nil, nil)
				ms = append(ms, prometheus.MustNewConstSummary(d, uint64(q.Count), q.Mean*float64(q.Count),
					map[float64]float64{0.5: q.P50, 0.9: q.P90, 0.99: q.P99}))
			}
			summary("modelship_bench_ttft_seconds", "Time to first token in the last benchmark.", b.TTFT)
			summary("modelship_bench_e2e_latency_seconds", "End-to-end request latency in the last benchmark.", b.E2EL)
			gauge("modelship_bench_output_tokens_per_second", "Output tokens per second in the last benchmark.", b.OutputTokensPerSec)
			gauge("modelship_bench_requests", "Requests measured in the last benchmark.", float64(b.Requests))
			gauge("modelship_bench_errors", "Failed requests in the last benchmark.", float64(b.Errors))
			gauge("modelship_bench_error_ratio", "Failed requests over requests in the last benchmark.", b.ErrorRate)
		}
	}
	return ms
}
