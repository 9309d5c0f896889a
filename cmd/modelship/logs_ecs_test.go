package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelship/modelship/internal/logging"
	"github.com/modelship/modelship/internal/logging/ecsref"
	"github.com/modelship/modelship/notify"
	"github.com/modelship/modelship/serving"
)

// logLines are the JSON lines of out (other lines are the engine's or a
// final plain-text error), decoded, each checked against the ECS reference
// by c.
func logLines(t *testing.T, c *ecsref.Checker, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		for _, err := range c.Line([]byte(line)) {
			t.Errorf("%v\n  in %s", err, line)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, m)
	}
	return lines
}

// The serving container's, the gateway's and the CLI's real log lines use
// ECS names (or modelship.* ones) with ECS's types, and no name is both a
// value and an object across the three (they share an index).
func TestLogLinesAreECS(t *testing.T) {
	c := ecsref.NewChecker()
	t.Run("serve", func(t *testing.T) { checkServeLines(t, c) })
	t.Run("gateway", func(t *testing.T) { checkGatewayLines(t, c) })
	t.Run("cli", func(t *testing.T) {
		var buf strings.Builder
		w, flush := stageProgress(&buf, logging.FormatJSON, notify.StageDeploy, "staging")
		io.WriteString(w, "pulling image\nwarning: the registry is slow")
		flush()
		if n := len(logLines(t, c, buf.String())); n != 2 {
			t.Errorf("%d JSON lines, want 2:\n%s", n, buf.String())
		}
	})
	for _, err := range c.Conflicts() {
		t.Error(err)
	}
}

// checkServeLines runs `modelship serve` on a real checkpoint whose digest
// is hashed at startup; the engine exits (status 3) once serve has logged
// the digest (the pattern does not match the command line serve logs), so
// lines before and after it are both seen.
func checkServeLines(t *testing.T, c *ecsref.Checker) {
	t.Setenv(serving.EnvReleaseID, "r-42")
	t.Setenv(logging.EnvFormat, "")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := t.TempDir()
	logPath := filepath.Join(dir, "serve.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	model, _ := filepath.Abs("../../testdata/models/good")
	// Bounded (a digest that never comes fails the checks below, no hang).
	engine := "sh -c 'i=0; until grep -q \"model digest compute[d]\" " + logPath + " || [ $i -ge 1200 ]; do i=$((i+1)); sleep 0.05; done; exit 3' sh"
	code := run(context.Background(), []string{"serve", model, "--engine-cmd", engine, "--image", "registry.example/serve:1", "--image-digest", "sha256:feed",
		"--host", "127.0.0.1", "--port", "0", "--engine-port", "0", "--admin-socket", filepath.Join(dir, "admin.sock")}, stdio{out: io.Discard, err: logFile})
	out, _ := os.ReadFile(logPath)
	if code != 3 {
		t.Fatalf("exit %d, want the engine's 3:\n%s", code, out)
	}
	lines := logLines(t, c, string(out))
	digest := ""
	for i, m := range lines {
		for k, v := range map[string]string{"service.name": "modelship-serve", logging.KeyRelease: "r-42",
			logging.KeyImage: "registry.example/serve:1", logging.KeyImageDigest: "sha256:feed"} {
			if m[k] != v {
				t.Errorf("line %d %q: %s = %v, want %q", i, m["message"], k, m[k], v)
			}
		}
		if m["message"] == "model digest computed" {
			digest, _ = m["modelship.serve.digest"].(string)
		}
		if got, _ := m[logging.KeyModelDigest].(string); got != digest {
			t.Errorf("line %d %q: %s = %q, want %q (the digest once computed, none before)", i, m["message"], logging.KeyModelDigest, got, digest)
		}
	}
	if !strings.HasPrefix(digest, "sha256:") || len(lines) < 3 {
		t.Errorf("digest %q over %d lines:\n%s", digest, len(lines), out)
	}
}

// checkGatewayLines runs `modelship gateway` in front of a release that is
// gone: the request's failure is logged with its method, path and release.
func checkGatewayLines(t *testing.T, c *ecsref.Checker) {
	t.Setenv(logging.EnvFormat, "")
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	gw := startGatewayCLI(t, t.TempDir(), "--upstream", gone.URL)
	resp, err := http.Get("http://" + gw.addr + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	gw.cancel()
	<-gw.done
	lines := logLines(t, c, gw.errs.String())
	var proxied map[string]any
	for i, m := range lines {
		if m["service.name"] != "modelship-gateway" {
			t.Errorf("line %d: service.name %v", i, m["service.name"])
		}
		if m["message"] == "proxy error" {
			proxied = m
		}
	}
	want := map[string]any{"http.request.method": "GET", "url.path": "/v1/models", "modelship.gateway.upstream": gone.URL, "modelship.gateway.status": float64(resp.StatusCode)}
	for k, v := range want {
		if proxied[k] != v {
			t.Errorf("proxy error line: %s = %v, want %v\n%s", k, proxied[k], v, gw.errs.String())
		}
	}
	if proxied[logging.KeyError] == nil {
		t.Errorf("proxy error line without %s: %v", logging.KeyError, proxied)
	}
}
