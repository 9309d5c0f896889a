package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/serve"
	"github.com/modelship/modelship/internal/testenv"
	"github.com/modelship/modelship/serving"
)

func TestServeConfigPrecedence(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		check func(t *testing.T, c serve.Config, hash bool)
	}{
		{name: "defaults", check: func(t *testing.T, c serve.Config, hash bool) {
			if c.Engine != "vllm" || c.ModelPath != "/models/current" || c.Port != 8000 || c.EnginePort != 8001 ||
				c.DrainTimeout != 30*time.Second || !hash {
				t.Errorf("defaults = %+v hash=%v", c, hash)
			}
		}},
		{name: "env over default", env: map[string]string{"MODEL_PATH": "/m", "MAX_MODEL_LEN": "4096", "GPU_MEMORY_UTILIZATION": "0.9",
			"PORT": "9000", "MODELSHIP_ENGINE_ARGS": "--enforce-eager", "MODELSHIP_MODEL_DIGEST": "sha256:aa"},
			check: func(t *testing.T, c serve.Config, hash bool) {
				if c.ModelPath != "/m" || c.Settings.MaxModelLen != 4096 || c.Settings.GPUMemoryUtilization != 0.9 || c.Port != 9000 ||
					!reflect.DeepEqual(c.Settings.EngineArgs, []string{"--enforce-eager"}) || c.ModelDigest != "sha256:aa" || hash {
					t.Errorf("env config = %+v hash=%v", c, hash)
				}
			}},
		{name: "flag over env", env: map[string]string{"MODEL_PATH": "/m", "MAX_MODEL_LEN": "4096", "PORT": "9000", "MODELSHIP_ENGINE_ARGS": "--enforce-eager"},
			args: []string{"/flagged", "--port", "9100", "--drain-timeout", "5s",
				"--engine-cmd", "/opt/venv/bin/vllm serve", "--deployed-at", "2025-01-02T03:04:05Z", "--no-digest"},
			check: func(t *testing.T, c serve.Config, hash bool) {
				if c.ModelPath != "/flagged" || c.Settings.MaxModelLen != 4096 || c.Port != 9100 || c.DrainTimeout != 5*time.Second ||
					!reflect.DeepEqual(c.EngineCommand, []string{"/opt/venv/bin/vllm", "serve"}) ||
					!c.DeployedAt.Equal(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)) || hash {
					t.Errorf("flag config = %+v hash=%v", c, hash)
				}
			}},
		{name: "sim re-executes modelship", args: []string{"--engine", "sim", "--served-model-name", "tiny"},
			check: func(t *testing.T, c serve.Config, hash bool) {
				program, argv := serve.Command(c)
				if c.Self == "" || program != c.Self || argv[0] != "vllm" || argv[1] != "serve" || argv[2] != "/models/current" {
					t.Errorf("sim command = %s %q", program, argv)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			c, hash, err := serveConfig(tt.args, func(k string) string { return tt.env[k] }, &stderr)
			if err != nil {
				t.Fatalf("serveConfig: %v (%s)", err, stderr.String())
			}
			tt.check(t, c, hash)
		})
	}
}

func TestServeConfigErrors(t *testing.T) {
	tests := []struct {
		env  map[string]string
		args []string
		want string
	}{
		{args: []string{"--engine", "tgi"}, want: `engine "tgi": want "vllm", "sim" or "ollama"`},
		{env: map[string]string{"MAX_MODEL_LEN": "4k"}, want: `MAX_MODEL_LEN="4k": expected a whole number of 1 or more`},
		{env: map[string]string{"MODELSHIP_ENGINE_ARGS": `--x "open`}, want: "MODELSHIP_ENGINE_ARGS=\"--x \\\"open\": unterminated double quote"},
		{args: []string{"--deployed-at", "now"}, want: `--deployed-at "now": want an RFC 3339 time`},
		{args: []string{"a", "b"}, want: "want at most one MODEL_PATH"},
		{args: []string{"--port", "8001"}, want: "port and engine port are both 8001"},
	}
	for _, tt := range tests {
		_, _, err := serveConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("serveConfig(%q, %v) = %v, want %q", tt.args, tt.env, err, tt.want)
		}
	}
	_, _, err := serveConfig([]string{"--nope"}, func(string) string { return "" }, io.Discard)
	if err != errFlagParse {
		t.Errorf("unknown flag: %v", err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"serve", "--engine", "tgi"}, stdio{out: &out, err: &errb}); code != exitUsage ||
		!strings.Contains(errb.String(), `modelship serve: engine "tgi"`) {
		t.Errorf("serve --engine tgi = %d %q, want exit 2 naming the engine", code, errb.String())
	}
}

func TestServeHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"serve", "--help"}, stdio{out: &out, err: &errb}); code != exitOK {
		t.Fatalf("serve --help = %d", code)
	}
	help := errb.String()
	for _, f := range []string{"engine", "engine-cmd", "served-model-name", "host", "port", "engine-port", "drain-timeout", "stop-timeout", "model-digest",
		"no-digest", "image", "image-digest", "git-sha", "deployed-at"} {
		if !strings.Contains(help, "\n  -"+f+" ") && !strings.Contains(help, "\n  -"+f+"\n") {
			t.Errorf("help does not explain -%s", f)
		}
	}
	for _, want := range []string{"/ready", "/version", "/health", "SIGTERM", "flag > env > default", "vllm serve MODEL_PATH",
		"MAX_MODEL_LEN", "TENSOR_PARALLEL_SIZE", "MODELSHIP_DTYPE", "MODELSHIP_ENGINE_ARGS"} {
		if !strings.Contains(help, want) {
			t.Errorf("help does not mention %s", want)
		}
	}
	for _, e := range serve.Env {
		if !strings.Contains(help, e.Name) {
			t.Errorf("help does not list $%s", e.Name)
		}
	}
}

// A crashed engine takes modelship down with the engine's status, so the
// container runtime sees the failure.
func TestServeExitsWithEngineStatus(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"serve", "/models/none", "--engine-cmd", "sh -c 'exit 3' sh",
		"--host", "127.0.0.1", "--port", "0", "--engine-port", "0", "--no-digest", "--admin-socket", filepath.Join(t.TempDir(), "admin.sock")}, stdio{out: &out, err: &errb})
	if code != 3 {
		t.Fatalf("exit code = %d, want the engine's 3; stderr:\n%s", code, errb.String())
	}
	if !strings.Contains(errb.String(), "engine exited on its own with status 3") {
		t.Errorf("stderr does not report the engine's exit:\n%s", errb.String())
	}
	// Not a terminal: the logs are JSON lines.
	first, _, _ := strings.Cut(errb.String(), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(first), &m); err != nil || m["message"] != "starting engine" {
		t.Errorf("first log line %q is not a JSON \"starting engine\" record: %v", first, err)
	}
}

// A checkpoint the engine cannot load takes serve down with a non-zero
// status instead of leaving a container that never becomes ready.
func TestServeSimCorruptCheckpoint(t *testing.T) {
	useBinaryAsEngine(t, modelshipBinary(t))
	model, _ := filepath.Abs("../../testdata/models/corrupt")
	var out, errb testenv.SyncBuffer
	code := run(context.Background(), []string{"serve", model, "--engine", "sim",
		"--host", "127.0.0.1", "--port", "0", "--engine-port", "0", "--no-digest", "--admin-socket", filepath.Join(t.TempDir(), "admin.sock")}, stdio{out: &out, err: &errb})
	if code == exitOK {
		t.Fatalf("serve of a corrupt checkpoint exited 0; stderr:\n%s", errb.String())
	}
	if !strings.Contains(errb.String(), "engine exited on its own") {
		t.Errorf("stderr does not say the engine exited:\n%s", errb.String())
	}
}

// TestServeSim runs the real simulator behind serve, end to end: ready,
// a generation through the proxy, /version, and a clean stop.
func TestServeSim(t *testing.T) {
	useBinaryAsEngine(t, modelshipBinary(t))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	model, _ := filepath.Abs("../../testdata/models/good")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var errb testenv.SyncBuffer
	admin := filepath.Join(t.TempDir(), "admin.sock")
	go func() {
		done <- run(ctx, []string{"serve", model, "--engine", "sim", "--served-model-name", "good",
			"--host", "127.0.0.1", "--port", fmt.Sprint(port), "--engine-port", "0", "--git-sha", "abc123",
			"--admin-socket", admin}, stdio{out: io.Discard, err: &errb})
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serve logs:\n%s", errb.String())
		}
	})
	for i := 0; ; i++ {
		resp, err := http.Get(base + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited %d before ready", code)
		case <-time.After(50 * time.Millisecond):
		}
		if i > 1200 {
			t.Fatal("never ready")
		}
	}
	resp, err := http.Post(base+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"good","messages":[{"role":"user","content":"Hello"}],"max_tokens":4,"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "data: [DONE]") {
		t.Fatalf("streamed chat through serve = %d %q", resp.StatusCode, body)
	}
	var v serve.VersionInfo
	for i := 0; ; i++ {
		resp, err := http.Get(base + "/version")
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if (v.DigestStatus == serve.DigestComputed && v.EngineVersion != "") || i > 600 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v.Engine != "sim" || v.EngineVersion == "" || v.GitSHA != "abc123" || v.ServedModelName != "good" ||
		v.DigestStatus != serve.DigestComputed || !strings.HasPrefix(v.Digest, "sha256:") {
		t.Errorf("/version = %+v", v)
	}

	// The pre-stop drain: not on the public port; through the admin
	// socket (mode 0600), `modelship drain` takes the replica out of
	// readiness.
	if resp, err := http.Get(base + serving.DrainPath + "?wait=0s"); err != nil || resp.StatusCode != 404 {
		t.Fatalf("drain on the public port: %v %v, want 404", resp, err)
	}
	if fi, err := os.Stat(admin); err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket %s: %v %v, want a socket with mode 0600", admin, fi, err)
	}
	if code, out, errs := runCLI(t, "drain", "--socket", admin, "--wait", "0s"); code != exitOK || !strings.Contains(out, `"draining": true`) {
		t.Fatalf("modelship drain: exit %d %s %s", code, out, errs)
	}
	if resp, err := http.Get(base + "/ready"); err != nil || resp.StatusCode != 503 {
		t.Fatalf("/ready after the drain: %v %v, want 503", resp, err)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("serve after cancel = %d", code)
	}
	if _, err := os.Stat(admin); !os.IsNotExist(err) {
		t.Errorf("admin socket left behind after serve stopped: %v", err)
	}
	if code, _, errs := runCLI(t, "drain", "--socket", admin); code != exitFailed || !strings.Contains(errs, admin) {
		t.Errorf("drain with no serve: exit %d %s, want %d naming the socket", code, errs, exitFailed)
	}
}

// useBinaryAsEngine makes serve start the simulator from bin (a built
// modelship) as a serving image does: bin run with argv[0] "vllm".
func useBinaryAsEngine(t *testing.T, bin string) {
	old := engineLookup
	engineLookup = func() (string, error) { return bin, nil }
	t.Cleanup(func() { engineLookup = old })
}
