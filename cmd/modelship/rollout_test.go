package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelship/modelship/bench"
	"github.com/modelship/modelship/internal/analysis"
	"github.com/modelship/modelship/internal/config"
	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/sim"
	"github.com/modelship/modelship/internal/testenv"
)

// rolloutConfig parses a config whose environment staging is env (YAML
// lines indented under it).
func rolloutConfig(t *testing.T, env string) *config.Config {
	t.Helper()
	c, err := config.Parse("m.yaml", []byte("model: {path: /m}\nenvironments:\n  staging:\n"+env))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A canary block becomes exactly the CanarySpec the deployer runs: each
// step's bake its own, else the block's; the analysis limits one for one.
func TestCanarySpec(t *testing.T) {
	c, err := config.Load("../../internal/config/testdata/canary.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cs, ss := rolloutSpecs(c.Environments["staging"], "canary")
	want := &deploy.CanarySpec{
		Steps: []deploy.CanaryStep{{Percent: 5, Bake: 90 * time.Second}, {Percent: 25, Bake: 2 * time.Minute},
			{Percent: 50, Bake: 90 * time.Second, Pause: true}, {Percent: 100, Bake: 90 * time.Second}},
		Interval: 5 * time.Second, StickyHeader: "X-Conversation-Id", Traffic: "wait", Deadline: 3 * time.Minute,
		Analysis: analysis.Thresholds{MinSamples: 30, MaxErrorRate: 0.02, MaxErrorRateDelta: 0.005, MaxTTFTP95: 2 * time.Second,
			MaxITLP95: 100 * time.Millisecond, MaxTTFTRatio: 1.2, MaxITLRatio: 1.3, MaxKVCacheUsage: 0.95, MaxRequestsWaiting: 4, Alpha: 0.01},
	}
	if !reflect.DeepEqual(cs, want) {
		t.Errorf("canary spec =\n%+v\nwant\n%+v", cs, want)
	}
	if !reflect.DeepEqual(*ss, deploy.ShadowSpec{Percent: 20, Duration: 3 * time.Minute, MinAgreement: 0.8, MinSamples: 40}) {
		t.Errorf("shadow spec = %+v", *ss)
	}
}

// Which strategy gets which rollout: canary without a block runs the
// defaults; auto runs a canary block; the shadow step goes with the
// canary; --strategy recreate or blue-green over an environment's canary
// runs neither.
func TestRolloutSpecsByStrategy(t *testing.T) {
	defaults := []deploy.CanaryStep{{Percent: 10, Bake: time.Minute}, {Percent: 50, Bake: time.Minute}, {Percent: 100, Bake: time.Minute}}
	plain := rolloutConfig(t, "    strategy: auto\n").Environments["staging"]
	if cs, _ := rolloutSpecs(plain, "canary"); cs == nil || !reflect.DeepEqual(cs.Steps, defaults) || cs.Interval != 10*time.Second ||
		cs.Traffic != "wait" || cs.Deadline != 10*time.Minute {
		t.Errorf("--strategy canary without a canary block = %+v, want steps 10, 50, 100 baked 1m, interval 10s", cs)
	}
	if cs, ss := rolloutSpecs(plain, "auto"); cs != nil || ss != nil {
		t.Errorf("auto without blocks ran a rollout: %+v %+v", cs, ss)
	}
	both := rolloutConfig(t, "    canary: {steps: [50, 100]}\n    shadow: {}\n").Environments["staging"]
	for strategy, want := range map[string][2]bool{"auto": {true, true}, "canary": {true, true}, "blue-green": {false, false}, "recreate": {false, false}} {
		cs, ss := rolloutSpecs(both, strategy)
		if got := [2]bool{cs != nil, ss != nil}; got != want {
			t.Errorf("strategy %s: canary %v shadow %v, want %v", strategy, got[0], got[1], want)
		}
	}
}

// No dead settings: every key of the canary and shadow blocks changes the
// spec the deployer gets. A key added to config without reaching the spec
// fails here (it has no value below, or changes nothing).
func TestRolloutKeysAllReachTheSpec(t *testing.T) {
	values := map[string]string{
		"canary.steps": "[20, 100]", "canary.bake": "3m", "canary.interval": "4s", "canary.sticky-header": "X-User",
		"canary.traffic": "synthetic", "canary.deadline": "1h",
		"canary.steps[].percent": "[{percent: 30}, 100]", "canary.steps[].bake": "[{percent: 10, bake: 7s}, 100]",
		"canary.steps[].pause": "[{percent: 10, pause: true}, 100]",
		"shadow.percent":       "50", "shadow.duration": "9m", "shadow.min-agreement": "0.5", "shadow.min-samples": "7",
	}
	for k, v := range map[string]string{"min-samples": "3", "max-error-rate": "0.2", "max-error-rate-delta": "0.3", "ttft-p95": "1s",
		"itl-p95": "50ms", "ttft-ratio": "2", "itl-ratio": "2", "kv-cache-usage": "0.5", "requests-waiting": "9", "alpha": "0.2"} {
		values["canary.analysis."+k] = v
	}
	keys := yamlKeys(reflect.TypeOf(config.Canary{}), "canary")
	keys = append(keys, yamlKeys(reflect.TypeOf(config.Shadow{}), "shadow")...)
	base := "    strategy: canary\n    canary: {}\n    shadow: {}\n"
	bc, bs := rolloutSpecs(rolloutConfig(t, base).Environments["staging"], "canary")
	for _, key := range keys {
		v, ok := values[key]
		if !ok {
			t.Errorf("%s: no value to try: add one, and make it reach the deploy", key)
			continue
		}
		block, rest, _ := strings.Cut(key, ".")
		field, sub, nested := strings.Cut(rest, ".")
		entry := field + ": " + v
		switch {
		case strings.HasSuffix(field, "[]"):
			entry = "steps: " + v
		case nested:
			entry = field + ": {" + sub + ": " + v + "}"
		}
		y := strings.Replace(base, block+": {}", block+": {"+entry+"}", 1)
		cs, ss := rolloutSpecs(rolloutConfig(t, y).Environments["staging"], "canary")
		if reflect.DeepEqual(cs, bc) && reflect.DeepEqual(ss, bs) {
			t.Errorf("%s: %s changes nothing the deploy gets (a dead setting)", key, v)
		}
	}
}

// yamlKeys lists the key paths of a config struct, "[]" marking a list
// of structs (steps).
func yamlKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		p := prefix + "." + name
		ft := f.Type
		switch {
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			keys = append(keys, p)
			keys = append(keys, yamlKeys(ft.Elem(), p+"[]")...)
		case ft.Kind() == reflect.Struct && ft != reflect.TypeOf(config.Duration(0)):
			keys = append(keys, yamlKeys(ft, p)...)
		default:
			keys = append(keys, p)
		}
	}
	return keys
}

// The prompts of synthetic traffic: the benchmark's, else the validation
// suite's requests, else generated ones; a broken file names its key.
func TestSyntheticPrompts(t *testing.T) {
	root := testenv.RepoRoot()
	cfg := &config.Config{File: filepath.Join(root, "modelship.yaml")}
	cfg.Suites.BenchmarkPrompts = "testdata/prompts/benchmark_prompts.jsonl"
	cfg.Suites.Validation = "testdata/suites/validation_cases.json"
	p, desc, err := syntheticPrompts(cfg)
	if err != nil || len(p) != 20 || desc != cfg.Suites.BenchmarkPrompts {
		t.Errorf("benchmark prompts: %d from %q, %v; want the file's 20", len(p), desc, err)
	}
	cfg.Suites.BenchmarkPrompts = ""
	p, desc, err = syntheticPrompts(cfg)
	if err != nil || len(p) == 0 || desc != cfg.Suites.Validation || (p[0].Text == "" && len(p[0].Messages) == 0) {
		t.Errorf("validation suite: %d from %q, %v", len(p), desc, err)
	}
	cfg.Suites.Validation = ""
	if p, desc, err = syntheticPrompts(cfg); err != nil || len(p) != 32 || !strings.Contains(desc, "generated") {
		t.Errorf("no prompt files: %d from %q, %v", len(p), desc, err)
	}
	cfg.Suites.BenchmarkPrompts = "nowhere.jsonl"
	req := deploy.Request{Strategy: "canary", Canary: nil}
	env := rolloutConfig(t, "    canary: {traffic: synthetic}\n").Environments["staging"]
	if err := wireRollout(&deploy.Deployer{}, &req, cfg, env); err == nil || !strings.Contains(err.Error(), "suites.benchmark-prompts") {
		t.Errorf("a missing prompt file: %v", err)
	}
}

// Synthetic traffic sends the prompts from two workers, with the API key
// and the served name, until stop; its two log lines say how many
// requests it sent, and never the key.
func TestSyntheticTraffic(t *testing.T) {
	s, _ := testenv.SimServer(t, simModels+"good", nil, sim.Options{})
	var sent, inFlight, maxInFlight atomic.Int64
	var badAuth atomic.Bool
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer sk-SECRET" {
			badAuth.Store(true)
		}
		sent.Add(1)
		n := inFlight.Add(1)
		for m := maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
		}
		defer inFlight.Add(-1)
		s.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	var out bytes.Buffer
	d := &deploy.Deployer{Out: &out}
	prompts, err := bench.LoadPrompts(benchPrompts)
	if err != nil {
		t.Fatal(err)
	}
	stop := syntheticTraffic(d, bench.Target{Model: "good", APIKey: "sk-SECRET"}, prompts, "p.jsonl")(context.Background(), ts.URL)
	testenv.Eventually(t, 30*time.Second, "10 synthetic requests", func() bool { return sent.Load() >= 10 })
	stop()
	stop() // a second stop is harmless
	log := out.String()
	if !strings.Contains(log, "synthetic traffic started: 20 prompts of p.jsonl to "+ts.URL+" from 2 workers\n") {
		t.Errorf("start line missing:\n%s", log)
	}
	m := regexp.MustCompile(`synthetic traffic stopped: (\d+) requests sent, 0 of them failed`).FindStringSubmatch(log)
	if m == nil || strings.Count(log, "stopped") != 1 {
		t.Fatalf("one stop line expected:\n%s", log)
	}
	if n, _ := strconv.Atoi(m[1]); n < 10-syntheticWorkers || int64(n) > sent.Load() { // those in flight at the stop are not counted
		t.Errorf("stop line says %d sent; the endpoint saw %d", n, sent.Load())
	}
	// A handler returns a moment after its client read the last byte, so
	// each worker may overlap its next request with its previous one's end.
	if maxInFlight.Load() > 2*syntheticWorkers || badAuth.Load() || strings.Contains(log, "sk-SECRET") {
		t.Errorf("%d requests in flight at once (want at most %d), bad auth %v, log:\n%s", maxInFlight.Load(), 2*syntheticWorkers, badAuth.Load(), log)
	}
}

// deploy puts the environment's canary and shadow on the
// request, synthetic traffic on the deployer; --strategy recreate runs
// neither; a prompt file that cannot be read is a usage error naming it.
func TestDeploySetupRollout(t *testing.T) {
	root := testenv.RepoRoot()
	cfg := filepath.Join(t.TempDir(), "modelship.yaml")
	write := func(prompts string) {
		yaml := fmt.Sprintf(`model: {path: %s}
serving: {engine: sim}
suites: {benchmark-prompts: %s}
environments:
  staging:
    docker: {host: unix:///nonexistent/docker.sock}
    strategy: canary
    canary: {steps: [25, 100], traffic: synthetic}
    shadow: {percent: 5}
`, filepath.Join(root, "testdata/models/good"), prompts)
		if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "testdata/prompts/benchmark_prompts.jsonl"))
	setup := func(strategy string) (*deploy.Deployer, deploy.Request, int, string) {
		var errb strings.Builder
		f := &deployFlags{env: "staging", config: cfg, strategy: strategy}
		d, req, closeFn, code := deploySetup(context.Background(), f, stdio{in: strings.NewReader(""), out: &errb, err: &errb}, "deploy")
		if closeFn != nil {
			closeFn()
		}
		return d, req, code, errb.String()
	}
	d, req, code, errs := setup("")
	if code != exitOK || req.Canary == nil || len(req.Canary.Steps) != 2 || req.Shadow == nil || req.Shadow.Percent != 5 || d.Synthetic == nil {
		t.Fatalf("exit %d (%s): canary %+v, shadow %+v, synthetic set %v", code, errs, req.Canary, req.Shadow, d != nil && d.Synthetic != nil)
	}
	if d, req, code, _ = setup("recreate"); code != exitOK || req.Canary != nil || req.Shadow != nil || d.Synthetic != nil {
		t.Errorf("--strategy recreate: canary %+v, shadow %+v", req.Canary, req.Shadow)
	}
	// A rollback goes back in one switch, unless --strategy canary.
	_, req, _, _ = setup("")
	var errb strings.Builder
	if rb := withoutRollout(req, "", stdio{err: &errb}); rb.Canary != nil || rb.Shadow != nil || rb.Strategy != deploy.Auto || !strings.Contains(errb.String(), "canary steps are skipped") {
		t.Errorf("rollback: strategy %s canary %+v shadow %+v, said %q", rb.Strategy, rb.Canary, rb.Shadow, errb.String())
	}
	if rb := withoutRollout(req, deploy.Canary, stdio{err: &errb}); rb.Canary == nil || rb.Shadow == nil {
		t.Errorf("rollback --strategy canary dropped the steps")
	}
	write("/nonexistent/prompts.jsonl")
	if _, _, code, errs = setup(""); code != exitUsage || !strings.Contains(errs, "suites.benchmark-prompts") || !strings.Contains(errs, "/nonexistent/prompts.jsonl") {
		t.Errorf("a missing prompt file: exit %d, %s", code, errs)
	}
}
