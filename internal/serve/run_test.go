package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/testenv"
)

// harness is one Run with the fake engine.
type harness struct {
	t          testing.TB
	base       string // the proxy, http://127.0.0.1:P
	addr       string
	engineBase string
	events     string // the fake engine's event log
	sigs       chan os.Signal
	done       chan error
	ended      chan struct{} // closed when Run has returned
	logs       *testenv.SyncBuffer
}

func startRun(t testing.TB, mod func(*Config), env ...string) *harness {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	enginePort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{
		t:          t,
		addr:       ln.Addr().String(),
		base:       "http://" + ln.Addr().String(),
		engineBase: fmt.Sprintf("http://127.0.0.1:%d", enginePort),
		events:     filepath.Join(t.TempDir(), "events"),
		sigs:       make(chan os.Signal, 4),
		done:       make(chan error, 1),
		ended:      make(chan struct{}),
		logs:       &testenv.SyncBuffer{},
	}
	cfg := Default()
	cfg.ModelPath = "/models/fake"
	cfg.ServedModelName = "fake-model"
	cfg.EngineCommand = []string{os.Args[0]}
	cfg.EngineEnv = append([]string{"MODELSHIP_FAKE_ENGINE=1", "MODELSHIP_FAKE_ENGINE_LOG=" + h.events}, env...)
	cfg.Listener = ln
	cfg.EnginePort = enginePort
	cfg.Signals = h.sigs
	cfg.DrainTimeout = time.Minute // a drain must end because the stream ended, not by timeout
	cfg.StopTimeout = time.Minute
	cfg.ModelDigest = "sha256:abc"
	cfg.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if mod != nil {
		mod(&cfg)
	}
	go func() {
		h.done <- Run(context.Background(), cfg)
		close(h.ended)
	}()
	// A test that did not stop it: stop the engine too, so no engine
	// process outlives the test.
	t.Cleanup(func() {
		select {
		case h.sigs <- syscall.SIGTERM:
		default:
		}
		select {
		case <-h.ended:
		case <-time.After(time.Minute):
			t.Errorf("Run did not return after SIGTERM")
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("modelship logs:\n%s", h.logs.String())
			b, _ := os.ReadFile(h.events)
			t.Logf("engine events:\n%s", b)
		}
	})
	return h
}

// wait returns Run's result.
func (h *harness) wait() error {
	h.t.Helper()
	select {
	case err := <-h.done:
		return err
	case <-time.After(30 * time.Second):
		h.t.Fatal("Run did not return")
		return nil
	}
}

// waitReady polls GET /ready through the proxy until it answers 200.
func (h *harness) waitReady() {
	h.t.Helper()
	for i := 0; ; i++ {
		resp, err := http.Get(h.base + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-h.done:
			h.t.Fatalf("Run returned before the engine was ready: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		if i > 1500 {
			h.t.Fatal("engine never became ready")
		}
	}
}

func (h *harness) eventLog() string {
	b, _ := os.ReadFile(h.events)
	return string(b)
}

// waitEvent polls the engine's event log until it contains s.
func (h *harness) waitEvent(s string) {
	h.t.Helper()
	for i := 0; i < 1500; i++ {
		if strings.Contains(h.eventLog(), s) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("engine never logged %q; log:\n%s", s, h.eventLog())
}

// startStream posts a streamed chat completion through the proxy and reads
// its first line; the body is closed when t ends.
func (h *harness) startStream(t testing.TB) (rd *bufio.Reader, first string) {
	t.Helper()
	resp, err := http.Post(h.base+"/v1/chat/completions", "application/json", strings.NewReader(`{"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	rd = bufio.NewReader(resp.Body)
	first, err = rd.ReadString('\n')
	if err != nil {
		t.Fatalf("first line of the stream: %q, %v", first, err)
	}
	return rd, first
}

func TestRunDrainsInFlightStreamBeforeStoppingEngine(t *testing.T) {
	h := startRun(t, nil)
	h.waitReady()

	// Start a stream and read its first chunk through the proxy.
	rd, line := h.startStream(t)
	if line != "data: {\"chunk\":1}\n" {
		t.Fatalf("first line = %q", line)
	}

	h.sigs <- syscall.SIGTERM

	// New connections are refused once the drain starts.
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", h.addr)
		if errors.Is(err, syscall.ECONNREFUSED) {
			break
		}
		if err == nil {
			c.Close()
		} else if !errors.Is(err, syscall.ECONNRESET) { // reset: queued as the listener closed
			t.Fatalf("dial after SIGTERM: %v, want connection refused", err)
		}
		if i > 1500 {
			t.Fatal("proxy still accepts connections after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The stream is still in flight, so the engine must not have been told
	// to stop.
	if ev := h.eventLog(); strings.Contains(ev, "signal") {
		t.Fatalf("engine signalled before the in-flight stream finished:\n%s", ev)
	}

	// Let the engine finish the stream; the client gets all of it.
	if _, err := http.Post(h.engineBase+"/release", "", nil); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(rd)
	if err != nil {
		t.Fatalf("reading the rest of the stream: %v", err)
	}
	if want := "\ndata: {\"chunk\":2}\n\ndata: [DONE]\n\n"; string(rest) != want {
		t.Fatalf("rest of stream = %q, want %q", rest, want)
	}

	if err := h.wait(); err != nil {
		t.Fatalf("Run after SIGTERM = %v, want nil", err)
	}
	ev := h.eventLog()
	done, term := strings.Index(ev, "stream done"), strings.Index(ev, "signal terminated")
	if done < 0 || term < 0 || term < done {
		t.Fatalf("want the stream to finish before the engine got SIGTERM; engine log:\n%s", ev)
	}
}

func TestRunEngineCrashReturnsExitStatus(t *testing.T) {
	h := startRun(t, nil)
	h.waitReady()
	http.Post(h.engineBase+"/crash", "", nil) // the engine dies mid-request
	err := h.wait()
	var xe *ExitError
	if !errors.As(err, &xe) {
		t.Fatalf("Run = %v, want *ExitError", err)
	}
	if xe.Code != 7 || xe.ExitCode() != 7 {
		t.Fatalf("exit code = %d (ExitCode %d), want 7", xe.Code, xe.ExitCode())
	}
	if !strings.Contains(err.Error(), "status 7") {
		t.Errorf("error %q does not name the status", err)
	}
	if !strings.Contains(h.logs.String(), "engine exited on its own") {
		t.Errorf("the engine's exit was not logged:\n%s", h.logs.String())
	}
	if c, err := net.Dial("tcp", h.addr); err == nil {
		c.Close()
		t.Error("proxy still accepts connections after the engine died")
	}
}

func TestRunEngineFailsAtStartup(t *testing.T) {
	h := startRun(t, nil, "MODELSHIP_FAKE_ENGINE_EXIT=3")
	err := h.wait()
	var xe *ExitError
	if !errors.As(err, &xe) || xe.ExitCode() != 3 {
		t.Fatalf("Run = %v, want an *ExitError with status 3", err)
	}
}

func TestRunForwardsSIGHUP(t *testing.T) {
	h := startRun(t, nil)
	h.waitReady()
	h.sigs <- syscall.SIGHUP
	h.waitEvent("signal hangup")
	h.sigs <- syscall.SIGINT
	if err := h.wait(); err != nil {
		t.Fatalf("Run after SIGINT = %v", err)
	}
	if ev := h.eventLog(); !strings.Contains(ev, "signal interrupt") {
		t.Fatalf("SIGINT was not forwarded to the engine:\n%s", ev)
	}
}

func TestRunKillsEngineThatIgnoresSIGTERM(t *testing.T) {
	h := startRun(t, func(c *Config) { c.StopTimeout = 100 * time.Millisecond }, "MODELSHIP_FAKE_ENGINE_IGNORE_TERM=1")
	h.waitReady()
	h.sigs <- syscall.SIGTERM
	err := h.wait()
	if err == nil || !strings.Contains(err.Error(), "was killed") {
		t.Fatalf("Run = %v, want an error saying the engine was killed", err)
	}
	if ev := h.eventLog(); !strings.Contains(ev, "signal terminated") {
		t.Fatalf("engine never got SIGTERM before the kill:\n%s", ev)
	}
}

func TestRunVersion(t *testing.T) {
	release := make(chan struct{})
	h := startRun(t, func(c *Config) {
		c.ModelDigest = ""
		c.Digest = func(ctx context.Context, path string) (string, error) {
			<-release
			return "sha256:" + strings.Repeat("ab", 32), nil
		}
		c.Image = "ghcr.io/acme/llm:1a2b3c"
		c.ImageDigest = "sha256:feed"
		c.GitSHA = "1a2b3c"
		c.ReleaseID = "20250304-050607-ab12"
		c.DeployedAt = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	})
	get := func() VersionInfo {
		t.Helper()
		resp, err := http.Get(h.base + "/version")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v VersionInfo
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	v := get()
	if v.Digest != "" || v.DigestStatus != DigestComputing {
		t.Fatalf("before hashing: digest %q status %q, want \"\" computing", v.Digest, v.DigestStatus)
	}
	if v.ReleaseID != "20250304-050607-ab12" || v.ServedModelName != "fake-model" || v.ModelPath != "/models/fake" || v.Image != "ghcr.io/acme/llm:1a2b3c" ||
		v.ImageDigest != "sha256:feed" || v.GitSHA != "1a2b3c" || v.DeployedAt != "2025-03-04T05:06:07Z" ||
		v.Engine != "vllm" || v.ModelshipVersion == "" {
		t.Fatalf("version = %+v", v)
	}
	close(release)
	h.waitReady()
	for i := 0; ; i++ {
		v = get()
		if v.DigestStatus == DigestComputed && v.EngineVersion != "" {
			break
		}
		if i > 1500 {
			t.Fatalf("digest/engine version never arrived: %+v", v)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v.Digest != "sha256:"+strings.Repeat("ab", 32) || v.EngineVersion != "0.0-fake" {
		t.Fatalf("after ready: %+v", v)
	}
	h.sigs <- syscall.SIGTERM
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
}

func TestRunDrainTimeoutCutsStuckStreams(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mod    func(*Config)
		second bool
	}{
		{name: "timeout", mod: func(c *Config) { c.DrainTimeout = 50 * time.Millisecond }},
		{name: "second signal", second: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startRun(t, tc.mod)
			h.waitReady()
			rd, _ := h.startStream(t)
			h.sigs <- syscall.SIGTERM
			if tc.second {
				h.sigs <- syscall.SIGTERM
			}
			// The stream never ends by itself; the drain must give up on it.
			if err := h.wait(); err != nil {
				t.Fatalf("Run = %v, want nil", err)
			}
			if _, err := io.ReadAll(rd); err == nil {
				t.Error("the stuck stream ended cleanly; want it cut")
			}
			if ev := h.eventLog(); !strings.Contains(ev, "signal terminated") || strings.Contains(ev, "stream done") {
				t.Errorf("engine log:\n%s", ev)
			}
		})
	}
}
