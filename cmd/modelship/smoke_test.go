package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/modelship/modelship/internal/serve"
	"github.com/modelship/modelship/internal/testenv"
	"github.com/modelship/modelship/serving/stage"
)

// smoke --env checks the environment's own endpoint: its url from the
// config, as verify after a deploy does.
func TestSmokeEnvEndpoint(t *testing.T) {
	digest := "sha256:" + strings.Repeat("c", 64)
	eng, _ := url.Parse(testenv.Sim(t, "../../testdata/models/good", nil))
	ts := httptest.NewServer(serve.NewProxy(eng, serve.VersionInfo{ServedModelName: "current", Digest: digest, Image: "reg/llm:2"}))
	defer ts.Close()
	cfg := writeRenderConfig(t, "  production: {url: "+ts.URL+"}\n  k: {target: kubernetes}\n")
	code, out, errs := runCLI(t, "smoke", "--env", "production", "--config", cfg, "--expect-digest", digest)
	if code != exitOK || !strings.Contains(out, "smoke "+ts.URL) || !strings.HasSuffix(out, "passed\n") {
		t.Fatalf("smoke --env production: exit %d:\n%s%s", code, out, errs)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"smoke", "--env", "nope", "--config", cfg}, `has no environment "nope"`},
		{[]string{"smoke", "--env", "production", "--config", cfg, "--kubeconfig", "/x"}, "are for a kubernetes target; environments.production.target is docker"},
		{[]string{"smoke", "--env", "k", "--config", cfg, "--kube-server", "10.0.0.5:6443"}, `--kube-server "10.0.0.5:6443": expected the API server's URL`},
		{[]string{"smoke", "--env", "k", "--config", cfg, "--kubeconfig", "/nonexistent/kubeconfig"}, "/nonexistent/kubeconfig"},
	} {
		code, out, errs := runCLI(t, tc.args...)
		if code != exitUsage || !strings.Contains(out+errs, tc.want) {
			t.Errorf("%v: exit %d, want %d with %q:\n%s%s", tc.args, code, exitUsage, tc.want, out, errs)
		}
	}
}

func TestSmokeCommand(t *testing.T) {
	digest := "sha256:" + strings.Repeat("a", 64)
	other := "sha256:" + strings.Repeat("b", 64)
	eng, _ := url.Parse(testenv.Sim(t, "../../testdata/models/good", nil))
	ts := httptest.NewServer(serve.NewProxy(eng, serve.VersionInfo{ServedModelName: "good", Digest: digest, Image: "reg/llm:1"}))
	defer ts.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()

	code, out, errs := runCLI(t, "smoke", "--endpoint", ts.URL+"/v1", "--expect-digest", digest, "--expect-image", "reg/llm:1")
	if code != exitOK || !strings.Contains(out, "passed   version     /version reports the expected digest "+digest) || !strings.HasSuffix(out, "passed\n") {
		t.Fatalf("exit %d:\n%s%s", code, out, errs)
	}
	code, out, _ = runCLI(t, "smoke", "--endpoint", ts.URL, "--expect-digest", other)
	if code != exitFailed || !strings.Contains(out, "failed   version     /version digest "+digest+" is not the expected "+other+" (the previous release is still serving?)") || !strings.Contains(out, "FAILED: 1 check(s) failed") {
		t.Fatalf("wrong digest: exit %d:\n%s", code, out)
	}
	// --json: the result alone on stdout, the checks on stderr.
	code, out, errs = runCLI(t, "smoke", "--endpoint", ts.URL, "--model", "good", "--json")
	r := stageResult(t, "smoke", code, out, stage.Passed)
	if r.Figures["checks_passed"] != 3 || r.Figures["checks_total"] != 3 || r.Endpoint != ts.URL || r.Message != "passed: 3 checks passed" ||
		!strings.Contains(errs, "passed   generation") {
		t.Errorf("--json: %+v\n%s", r, errs)
	}
	code, out, _ = runCLI(t, "smoke", "--endpoint", ts.URL, "--expect-digest", other, "--json")
	r = stageResult(t, "smoke", code, out, stage.Failed)
	if r.Figures["checks_passed"] != 2 || r.Figures["checks_total"] != 3 || !strings.Contains(r.Message, "failed: version: /version digest "+digest+" is not the expected "+other) {
		t.Errorf("--json, wrong digest: %+v", r)
	}
	code, out, errs = runCLI(t, "smoke", "--endpoint", gone.URL, "--json")
	r = stageResult(t, "smoke", code, out, stage.Inconclusive)
	if !strings.Contains(errs, "endpoint unreachable") || !strings.Contains(r.Message, "endpoint unreachable") {
		t.Fatalf("unreachable: exit %d:\n%s%s", code, out, errs)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"smoke", "--help"}, exitOK, "--expect-digest"},
		{[]string{"smoke"}, exitUsage, "--endpoint URL or --env NAME is required"},
		{[]string{"smoke", "--endpoint", ts.URL, "--kubeconfig", "/x"}, exitUsage, "go with --env"},
		{[]string{"smoke", "--endpoint", "ftp://x"}, exitUsage, "scheme must be http or https"},
		{[]string{"smoke", "--endpoint", ts.URL, "--timeout", "0s"}, exitUsage, "--timeout must be positive"},
		{[]string{"smoke", "--endpoint", ts.URL, "--api-key-env", "MODELSHIP_TEST_UNSET_KEY"}, exitUsage, "$MODELSHIP_TEST_UNSET_KEY is empty or not set"},
		{[]string{"smoke", ts.URL}, exitUsage, "use --endpoint URL"},
	} {
		code, out, errs := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(out+errs, tc.want) {
			t.Errorf("%v: exit %d, want %d with %q:\n%s%s", tc.args, code, tc.code, tc.want, out, errs)
		}
	}
}
