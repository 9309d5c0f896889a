// Package testenv starts the OpenAI-compatible servers that end-to-end tests
// run against: the in-process simulator (Sim, our own server) and
// @dwmkerr/mock-llm (MockLLM, a server that is not ours, run with Node).
//
// Both return the server's base URL without a path (http://127.0.0.1:PORT);
// the OpenAI API is under BASE/v1. Servers stop when the test ends.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelship/modelship/checkpoint"
	"github.com/modelship/modelship/internal/sim"
)

// MockLLMVersion is the version of @dwmkerr/mock-llm the tests are written
// against; .ci/deps/mock-llm.sh installs it.
const MockLLMVersion = "0.1.29"

// MockLLMDirEnv names the environment variable holding the npm prefix that
// @dwmkerr/mock-llm is installed under (default REPO/.cache/mock-llm).
const MockLLMDirEnv = "MODELSHIP_MOCK_LLM_DIR"

// Sim starts the simulator on the test checkpoint modelDir (e.g.
// testdata/models/good) behind an httptest server and returns its base URL.
// The server is ready at once (the table's load time is skipped). tweak, when
// not nil, edits the response table first: set Latency to fixed TTFT/ITL, add
// replies. The served model name is the directory's base name (e.g. "good").
func Sim(t testing.TB, modelDir string, tweak func(*sim.Table)) (baseURL string) {
	t.Helper()
	_, url := SimServer(t, modelDir, tweak, sim.Options{})
	return url
}

// SimServer is Sim with simulator options (error rate, queue size, seed,
// API key). opt.ServedModelName defaults to the directory's base name.
func SimServer(t testing.TB, modelDir string, tweak func(*sim.Table), opt sim.Options) (*sim.Server, string) {
	t.Helper()
	info, err := checkpoint.Inspect(context.Background(), modelDir, checkpoint.Options{})
	if err != nil {
		t.Fatalf("testenv: inspecting %s: %v", modelDir, err)
	}
	table, err := sim.TableFor(modelDir)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if tweak != nil {
		tweak(&table)
	}
	if opt.ServedModelName == "" {
		opt.ServedModelName = filepath.Base(filepath.Clean(modelDir))
	}
	s, err := sim.New(info, table, opt)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	s.MarkReady()
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts.URL
}

// MockLLM starts @dwmkerr/mock-llm with its default rules (chat completions
// echo the last user message, finish_reason "stop", no usage) and returns
// its base URL. See MockLLMConfig.
func MockLLM(t testing.TB) (baseURL string) {
	t.Helper()
	return MockLLMConfig(t, "")
}

// MockLLMConfig starts @dwmkerr/mock-llm on a free loopback port with the
// given mock-llm.yaml content (rules matched with JMESPath, last match wins;
// "" keeps its defaults) and returns its base URL. Rules can be replaced
// while it runs with POST BASE/config. It answers deterministically: the
// reply is the rendered rule, whatever the temperature. Streamed answers
// come in chunks of `streaming.chunkSize` characters every
// `streaming.chunkIntervalMs` (defaults 50 and 50ms), without usage.
//
// The package is looked up under $MODELSHIP_MOCK_LLM_DIR (an npm prefix,
// default REPO/.cache/mock-llm). When it or node is missing the test is
// skipped with the command that installs it, except with CI=true, where that
// is a failure. The process is stopped at cleanup; its output is logged when
// the test failed.
func MockLLMConfig(t testing.TB, config string) (baseURL string) {
	t.Helper()
	main, err := mockLLMMain()
	if err == nil {
		_, err = exec.LookPath("node")
		if err != nil {
			err = fmt.Errorf("node is not installed (Node 20 or later is needed): %w", err)
		}
	}
	if err != nil {
		msg := fmt.Sprintf("testenv: @dwmkerr/mock-llm unavailable: %v; install it with .ci/deps/mock-llm.sh (npm install --prefix DIR @dwmkerr/mock-llm@%s) and set %s=DIR if not the default", err, MockLLMVersion, MockLLMDirEnv)
		Unavailable(t, msg)
	}

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "mock-llm.yaml")
	if config != "" {
		if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return startServer(t, "mock-llm", func(port int) (*exec.Cmd, string) {
		cmd := exec.Command("node", main, "--config", cfgPath)
		cmd.Dir = dir // not the repository: mock-llm would read ./mock-llm.yaml
		cmd.Env = append(os.Environ(), "HOST=127.0.0.1", "PORT="+strconv.Itoa(port))
		return cmd, "/health"
	})
}

// Unavailable skips the test because what it needs is missing, msg saying
// what and how to get it; under CI=true, where every test must run, it
// fails instead.
func Unavailable(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func mockLLMMain() (string, error) {
	dir := os.Getenv(MockLLMDirEnv)
	if dir == "" {
		root, err := repoRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, ".cache", "mock-llm")
	}
	main := filepath.Join(dir, "node_modules", "@dwmkerr", "mock-llm", "dist", "main.js")
	if _, err := os.Stat(main); err != nil {
		return "", fmt.Errorf("%s not found", main)
	}
	return main, nil
}

// repoRoot is the nearest directory above the working directory holding
// go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// SyncBuffer is a bytes.Buffer safe for concurrent writes: a process's or
// a running command's output, a log sink.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String is what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// FreePort is a loopback TCP port free when it is asked for.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// startServer runs a server program on a free loopback port and returns
// its base URL (http://127.0.0.1:PORT). newCmd builds the command for the
// port and names the path that answers 200 once the server is ready. The
// port is found free and then handed to the program; another process may
// take it in between, so a start that fails is tried again, 3 times in all.
func startServer(t testing.TB, name string, newCmd func(port int) (cmd *exec.Cmd, readyPath string)) string {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err == nil {
			cmd, readyPath := newCmd(port)
			base := "http://127.0.0.1:" + strconv.Itoa(port)
			if err = startProcess(t, name, cmd, base+readyPath); err == nil {
				return base
			}
		}
		lastErr = err
	}
	t.Fatalf("testenv: starting %s: %v", name, lastErr)
	return ""
}

// startProcess starts cmd in a process group of its own, its output
// collected, and waits until GET readyURL answers 200 (30 s at most). The
// group is stopped at cleanup (SIGTERM, SIGKILL after 5 s) and the output
// logged when the test failed.
func startProcess(t testing.TB, name string, cmd *exec.Cmd, readyURL string) error {
	out := &SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		select {
		case <-exited:
			return
		default:
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			return fmt.Errorf("%s exited before it was ready: %s", name, out.String())
		default:
		}
		resp, err := client.Get(readyURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("%s not ready at %s after 30s: %s", name, readyURL, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	return nil
}
