package main

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/modelship/modelship/internal/serve"
	"github.com/modelship/modelship/internal/sim"
	"github.com/modelship/modelship/internal/testenv"
)

// An environment whose endpoint requires serving.api-key: smoke, validate
// and bench given --env send the key and pass; without it the endpoint
// answers 401 and they fail. The key is never printed.
func TestEnvAPIKeyIsSent(t *testing.T) {
	const key = "sk-test-7d1f0e"
	_, simURL := testenv.SimServer(t, "../../testdata/models/good", nil, sim.Options{ServedModelName: "current"})
	eng, _ := url.Parse(simURL)
	p := serve.NewProxy(eng, serve.VersionInfo{ServedModelName: "current"})
	p.APIKey = key
	ts := httptest.NewServer(p)
	defer ts.Close()
	cfg := writeRenderConfig(t, "  production: {url: "+ts.URL+", serving: {api-key: env:PROD_LLM_KEY}}\n")
	t.Setenv("PROD_LLM_KEY", key)
	t.Setenv("OPENAI_API_KEY", "")
	t.Setenv("VLLM_API_KEY", "")
	cases := "../../testdata/suites/validation_cases.json"
	prompts := "../../testdata/prompts/benchmark_prompts.jsonl"
	for _, tc := range []struct {
		name      string
		with, wo  []string
		failsWith string
	}{
		{"smoke", []string{"smoke", "--config", cfg, "--env", "production"}, []string{"smoke", "--endpoint", ts.URL}, "401"},
		{"validate", []string{"validate", "--config", cfg, "--env", "production", "--endpoint", ts.URL, "--cases", cases},
			[]string{"validate", "--endpoint", ts.URL, "--cases", cases, "--model", "current", "--retries", "0"}, "401"},
		{"bench", []string{"bench", "--config", cfg, "--env", "production", "--endpoint", ts.URL, "--model", "current", "--prompts", prompts, "--requests", "4", "--min-samples", "1"},
			[]string{"bench", "--endpoint", ts.URL, "--model", "current", "--prompts", prompts, "--requests", "4", "--min-samples", "1", "--max-error-rate", "0"}, "401"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI(t, tc.with...)
			if code != exitOK {
				t.Errorf("%s with --env: exit %d:\n%s%s", tc.name, code, out, errs)
			}
			if strings.Contains(out+errs, key) {
				t.Errorf("%s printed the key", tc.name)
			}
			code, out, errs = runCLI(t, tc.wo...)
			if code == exitOK || !strings.Contains(out+errs, tc.failsWith) {
				t.Errorf("%s without the key: exit %d, want a failure naming %s:\n%s%s", tc.name, code, tc.failsWith, out, errs)
			}
		})
	}
	t.Setenv("PROD_LLM_KEY", "")
	code, out, errs := runCLI(t, "smoke", "--config", cfg, "--env", "production")
	if code != exitUsage || !strings.Contains(errs, "environments.production.serving.api-key: secret env:PROD_LLM_KEY: environment variable PROD_LLM_KEY is not set") {
		t.Errorf("smoke with the key's variable unset: exit %d:\n%s%s", code, out, errs)
	}
}
