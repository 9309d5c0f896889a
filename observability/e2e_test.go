package observability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/docker"
	"github.com/modelship/modelship/internal/testenv"
	"github.com/modelship/modelship/notify"
	"github.com/modelship/modelship/suite"
)

// TestPrometheusScrapesDeployedRelease deploys the good test model (engine
// sim) on the real Docker engine, sends requests through the gateway,
// pushes the deploy's event to a real Pushgateway, and lets a real
// Prometheus scrape them with the shipped configuration (its jobs, paths
// and rules; targets and interval set for the test). Prometheus then has
// the engine's vllm:* series, modelship's own series of the release, the
// deploy's Pushgateway series, and every metric the dashboard reads.
func TestPrometheusScrapesDeployedRelease(t *testing.T) {
	prom := binary(t, "MODELSHIP_PROMETHEUS_BIN", "prometheus")
	_, host := testenv.Docker(t)
	pushgw := testenv.Pushgateway(t)
	log := &testenv.SyncBuffer{}
	tg, err := docker.New(docker.Options{Host: host, StopTimeout: 5 * time.Second, Out: log})
	if err != nil {
		t.Fatal(err)
	}
	env := fmt.Sprintf("obs%d", os.Getpid()%100000)
	t.Cleanup(func() {
		if err := tg.Destroy(context.Background(), env); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		tg.Close()
		if t.Failed() {
			t.Logf("deploy log:\n%s", log.String())
		}
	})
	built := testenv.ServingImage(t, tg.Client(), testenv.ImageGood)
	s, err := suite.Load(filepath.Join(testenv.RepoRoot(), "testdata/suites/validation_cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	gateway := fmt.Sprintf("http://127.0.0.1:%d", port)
	d := &deploy.Deployer{Target: tg, Verifier: &deploy.Checks{Suite: s, Timeout: 30 * time.Second},
		Ledger: &deploy.Ledger{Path: filepath.Join(t.TempDir(), "ledger.jsonl")}, Out: log, DrainTimeout: 30 * time.Second}
	ctx := context.Background()
	res, err := d.Deploy(ctx, deploy.Request{Env: env, Image: built.Tag, Engine: "sim", ServedName: "current", Port: port,
		PublishIP: "127.0.0.1", URL: gateway, ReadyTimeout: 60 * time.Second, GitSHA: "0123abc"})
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	release := res.Release.ID
	in, err := tg.Instance(ctx, env, release)
	if err != nil || in == nil || in.URL == "" {
		t.Fatalf("release %s: no published port (%v)", release, err)
	}
	const requests = 5
	for i := range requests {
		chat(t, gateway, fmt.Sprintf("hello %d", i))
	}
	ev := notify.Event{Stage: notify.StageDeploy, Status: notify.StatusPassed, Environment: env, Release: release,
		Model: "current", ModelDigest: built.ModelDigest, Image: built.Tag, GitSHA: "0123abc", Time: time.Now()}
	if err := notify.NewPushgateway(pushgw, "", nil).Send(ctx, ev); err != nil {
		t.Fatal(err)
	}

	api := startPrometheus(t, prom, map[string]string{
		"modelship-serving": hostPort(t, in.URL), "modelship-gateway": hostPort(t, gateway), "pushgateway": hostPort(t, pushgw),
	}, env)
	checks := []struct{ what, query string }{
		{"the serving target is up", `up{job="modelship-serving"} == 1`},
		{"the gateway target is up", `up{job="modelship-gateway"} == 1`},
		{"the Pushgateway target is up", `up{job="pushgateway"} == 1`},
		{"the engine's vllm:* series of the release", `vllm:num_requests_running{job="modelship-serving", env="` + env + `"}`},
		{"the engine counted the requests", fmt.Sprintf(`sum(vllm:request_success_total{job="modelship-serving"}) >= %d`, requests)},
		{"modelship counted the release's requests", fmt.Sprintf(`sum(modelship_requests_total{job="modelship-serving", release=%q, code="200"}) >= %d`, release, requests)},
		{"the gateway counted them too", fmt.Sprintf(`sum(modelship_requests_total{job="modelship-gateway", release=%q, code="200"}) >= %d`, release, requests)},
		{"TTFT histogram of the release", fmt.Sprintf(`modelship_time_to_first_token_seconds_count{job="modelship-serving", release=%q} > 0`, release)},
		{"release info with the model digest", fmt.Sprintf(`modelship_release_info{job="modelship-serving", release=%q, model_digest=%q} == 1`, release, built.ModelDigest)},
		{"the deploy's Pushgateway series", fmt.Sprintf(`modelship_deploy_timestamp_seconds{env=%q, release=%q}`, env, release)},
	}
	dashboard := dashboardMetricNames(t)
	var missing []string
	deadline := time.Now().Add(90 * time.Second)
	for {
		missing = missing[:0]
		for _, c := range checks {
			if n := len(api.query(t, c.query)); n == 0 {
				missing = append(missing, fmt.Sprintf("%s: %s returned nothing", c.what, c.query))
			}
		}
		names := api.names(t)
		for _, n := range dashboard {
			if !slices.Contains(names, n) {
				missing = append(missing, "dashboard metric "+n+" is not among Prometheus's series")
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	for _, m := range missing {
		t.Error(m)
	}
}

// chat sends one chat completion through base.
func chat(t *testing.T, base, prompt string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"model": "current", "max_tokens": 8,
		"messages": []map[string]string{{"role": "user", "content": prompt}}})
	resp, err := http.Post(base+"/v1/chat/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s/v1/chat/completions: %s", base, resp.Status)
	}
}

func hostPort(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// dashboardMetricNames are the metric names the dashboard's queries read.
func dashboardMetricNames(t *testing.T) []string {
	t.Helper()
	var out []string
	for where, q := range dashboardQueries(t, loadDashboard(t)) {
		names, err := metricNames(promQLOf(q))
		if err != nil {
			t.Fatalf("%s %s: %v", dashboardPath, where, err)
		}
		for _, n := range names {
			if !slices.Contains(out, n) && !slices.Contains(prometheusOwn, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// testConfig is the shipped prometheus.yml with the test's targets (job
// name -> host:port) and env label, a 1s interval and the rule files by
// absolute path.
func testConfig(t *testing.T, targets map[string]string, env string) []byte {
	t.Helper()
	b, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["global"] = map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"}
	var rules []any
	for _, f := range cfg["rule_files"].([]any) {
		abs, err := filepath.Abs(filepath.Join("prometheus", f.(string)))
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, abs)
	}
	cfg["rule_files"] = rules
	for _, sc := range cfg["scrape_configs"].([]any) {
		sc := sc.(map[string]any)
		job := sc["job_name"].(string)
		target, ok := targets[job]
		if !ok {
			t.Fatalf("prometheus.yml: job %s has no test target", job)
		}
		sc["static_configs"] = []any{map[string]any{"targets": []any{target}, "labels": map[string]any{"env": env}}}
		delete(targets, job)
	}
	for job := range targets {
		t.Fatalf("prometheus.yml: no job %s", job)
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// promAPI is a running Prometheus's HTTP API.
type promAPI string

// startPrometheus runs the Prometheus at bin with testConfig on a free
// loopback port until the test ends, and waits until it is ready.
func startPrometheus(t *testing.T, bin string, targets map[string]string, env string) promAPI {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, testConfig(t, targets, env), 0o644); err != nil {
		t.Fatal(err)
	}
	out := &testenv.SyncBuffer{}
	var base string
	for attempt := 0; attempt < 3 && base == ""; attempt++ {
		port := testenv.FreePort(t)
		// Prometheus is one process: SIGTERM at cleanup, SIGKILL 10s later.
		ctx, cancel := context.WithCancel(context.Background())
		cmd := exec.CommandContext(ctx, bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"+strconv.Itoa(attempt)),
			"--web.listen-address=127.0.0.1:"+strconv.Itoa(port), "--log.level=warn")
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = 10 * time.Second
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			cancel()
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() { cancel(); <-exited })
		if waitReady(fmt.Sprintf("http://127.0.0.1:%d", port), exited) {
			base = fmt.Sprintf("http://127.0.0.1:%d", port)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out.String())
		}
	})
	if base == "" {
		t.Fatalf("prometheus did not start:\n%s", out.String())
	}
	return promAPI(base)
}

// waitReady polls base/-/ready for 30s, or until the process exits.
func waitReady(base string, exited <-chan struct{}) bool {
	c := &http.Client{Timeout: 2 * time.Second}
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		select {
		case <-exited:
			return false
		default:
		}
		if resp, err := c.Get(base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
	}
	return false
}

// get reads a JSON API answer's data into v.
func (p promAPI) get(t *testing.T, path string, q url.Values, v any) {
	t.Helper()
	resp, err := http.Get(string(p) + path + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if body.Status != "success" {
		t.Fatalf("GET %s %s: %s", path, q.Encode(), body.Error)
	}
	if err := json.Unmarshal(body.Data, v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// query is an instant query's result series.
func (p promAPI) query(t *testing.T, expr string) []json.RawMessage {
	t.Helper()
	var data struct {
		Result []json.RawMessage `json:"result"`
	}
	p.get(t, "/api/v1/query", url.Values{"query": {expr}}, &data)
	return data.Result
}

// names are the metric names Prometheus has series of.
func (p promAPI) names(t *testing.T) []string {
	t.Helper()
	var names []string
	p.get(t, "/api/v1/label/__name__/values", url.Values{}, &names)
	return names
}
