package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/serve"
	"github.com/modelship/modelship/internal/testenv"
	"github.com/modelship/modelship/internal/testmodels"
)

// serveOllama runs `modelship serve` (in this process) with engine ollama
// on the GGUF model directory dir (under testdata/models, or absolute),
// and returns the proxy's URL and Ollama's own, once ready.
func serveOllama(t *testing.T, dir string) (proxy, engine string) {
	t.Helper()
	bin := testenv.Ollama(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := serve.Default()
	cfg.Engine, cfg.EngineCommand = serve.EngineOllama, []string{bin, "serve"}
	cfg.ModelPath, cfg.ServedModelName = dir, "current"
	if !filepath.IsAbs(dir) {
		cfg.ModelPath = filepath.Join(testenv.RepoRoot(), "testdata/models", dir)
	}
	cfg.Listener, cfg.EnginePort = ln, testenv.FreePort(t)
	cfg.ModelDigest = "sha256:" + filepath.Base(dir)
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Stdout, cfg.Stderr = io.Discard, io.Discard
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve.Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	proxy = "http://" + ln.Addr().String()
	for deadline := time.Now().Add(60 * time.Second); ; {
		resp, err := http.Get(proxy + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve with engine ollama on %s not ready within 60s", dir)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return proxy, fmt.Sprintf("http://127.0.0.1:%d", cfg.EnginePort)
}

var outputTPS = regexp.MustCompile(`"output_tokens_per_s":\s*([0-9.e+]+)`)

// validate and bench against a real engine, Ollama, both directly and
// through `modelship serve`: the good model passes the validation suite,
// the regressed one fails it; the benchmark measures both ways (figures
// in the log: the proxy's cost is a benchmark's question, not a test's).
func TestValidateAndBenchOnOllama(t *testing.T) {
	cases := "../../testdata/suites/validation_cases.json"
	prompts := "../../testdata/prompts/benchmark_prompts.jsonl"
	proxy, engine := serveOllama(t, testmodels.GGUFGoodDir)
	for _, ep := range []struct{ name, url string }{{"through modelship serve", proxy}, {"directly", engine}} {
		code, out, errs := runCLI(t, "validate", "--endpoint", ep.url, "--cases", cases, "--model", "current")
		if code != exitOK {
			t.Errorf("validate of the good model %s: exit %d:\n%s%s", ep.name, code, out, errs)
		}
		code, out, errs = runCLI(t, "bench", "--endpoint", ep.url, "--model", "current", "--prompts", prompts,
			"--requests", "8", "--min-samples", "8", "--concurrency", "2", "--max-error-rate", "0", "--json")
		m := outputTPS.FindStringSubmatch(out)
		if code != exitOK || m == nil {
			t.Errorf("bench of the good model %s: exit %d:\n%s%s", ep.name, code, out, errs)
			continue
		}
		t.Logf("bench of the good model on Ollama %s: %s output tokens/s", ep.name, m[1])
	}
	regressed, _ := serveOllama(t, testmodels.GGUFRegressedDir)
	code, out, errs := runCLI(t, "validate", "--endpoint", regressed, "--cases", cases, "--model", "current")
	if code != exitFailed {
		t.Errorf("validate of the regressed model: exit %d, want %d (failed):\n%s%s", code, exitFailed, out, errs)
	}
}

// The slow model (the good model's answers on a network 4 layers deep and
// 1024 wide, written now: about 180 MB) served by Ollama is stopped by the
// article's gate, --min-tokens-per-sec 50, for real: the verdict names the
// throughput measured.
func TestSlowModelStoppedByTheBenchmarkGate(t *testing.T) {
	testenv.Ollama(t)
	dir := t.TempDir()
	if err := testmodels.WriteSlowGGUF(filepath.Join(dir, "model.gguf")); err != nil {
		t.Fatal(err)
	}
	proxy, _ := serveOllama(t, dir)
	code, out, errs := runCLI(t, "bench", "--endpoint", proxy, "--model", "current", "--prompts", "../../testdata/prompts/benchmark_prompts.jsonl",
		"--requests", "3", "--min-samples", "3", "--concurrency", "1", "--max-tokens", "48", "--min-tokens-per-sec", "50")
	if code != exitFailed || !regexp.MustCompile(`output throughput [0-9.]+ tokens/s is below the minimum 50`).MatchString(out) {
		t.Fatalf("bench of the slow model with --min-tokens-per-sec 50: exit %d, want %d with the measured throughput:\n%s%s", code, exitFailed, out, errs)
	}
	t.Logf("%s", regexp.MustCompile(`output throughput [^\n]*`).FindString(out))
}
