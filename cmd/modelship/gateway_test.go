package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/gateway"
	"github.com/modelship/modelship/internal/shadow"
	"github.com/modelship/modelship/internal/testenv"
)

// namedRelease answers GET /ready with readyCode and everything else with
// its name.
func namedRelease(t *testing.T, name string, readyCode int) string {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ready" {
			w.WriteHeader(readyCode)
			io.WriteString(w, `{"ready":false,"check":"models","reason":"served model \"m\" is not listed"}`)
			return
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// gatewayCLI is `modelship gateway` run in-process, stopped at the end of
// the test.
type gatewayCLI struct {
	sock, addr string
	cancel     func()
	done       chan int // its exit code
	errs       *testenv.SyncBuffer
}

// startGatewayCLI runs `modelship gateway --listen ADDR --admin SOCK ARGS`
// (the socket in dir) and returns once its admin socket answers.
func startGatewayCLI(t *testing.T, dir string, args ...string) *gatewayCLI {
	t.Helper()
	g := &gatewayCLI{sock: "unix://" + filepath.Join(dir, "admin.sock"), addr: freeAddr(t), done: make(chan int, 1), errs: &testenv.SyncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	t.Cleanup(cancel)
	args = append([]string{"gateway", "--listen", g.addr, "--admin", g.sock}, args...)
	go func() { g.done <- run(ctx, args, stdio{in: strings.NewReader(""), out: io.Discard, err: g.errs}) }()
	// Wait for the admin socket to answer (the gateway exiting early fails).
	for {
		code, _, _ := runCLI(t, "gateway", "state", "--admin", g.sock)
		if code == exitOK {
			return g
		}
		select {
		case c := <-g.done:
			t.Fatalf("gateway exited %d: %s", c, g.errs.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestGatewayCommand(t *testing.T) {
	a := namedRelease(t, "A", 200)
	b := namedRelease(t, "B", 200)
	notReady := namedRelease(t, "C", 503)
	dir, err := os.MkdirTemp("", "gwcli")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	state := filepath.Join(dir, "state.json")
	gw := startGatewayCLI(t, dir, "--upstream", a, "--state", state)
	sock, addr, cancel, done, gwErr := gw.sock, gw.addr, gw.cancel, gw.done, gw.errs
	fetch := func() string {
		resp, err := http.Get("http://" + addr + "/v1/models")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	if got := fetch(); got != "A" {
		t.Fatalf("before the switch: %q", got)
	}

	code, out, errs := runCLI(t, "gateway", "switch", "--admin", sock, "--to", b)
	var sw gateway.SwitchResult
	if code != exitOK || json.Unmarshal([]byte(out), &sw) != nil || sw.Active != b || sw.Previous != a || !sw.Changed {
		t.Fatalf("switch: exit %d, %s %s", code, out, errs)
	}
	if got := fetch(); got != "B" {
		t.Fatalf("after the switch: %q", got)
	}
	code, _, errs = runCLI(t, "gateway", "switch", "--admin", sock, "--to", notReady)
	if code != exitFailed || !strings.Contains(errs, "switch refused: upstream is not ready: GET "+notReady+"/ready answered 503: models check: served model \"m\" is not listed") {
		t.Fatalf("switch to a release that is not ready: exit %d, %s", code, errs)
	}
	code, out, errs = runCLI(t, "gateway", "wait-drained", "--admin", sock, "--upstream", a, "--timeout", "10s")
	var dr gateway.DrainResult
	if code != exitOK || json.Unmarshal([]byte(out), &dr) != nil || !dr.Drained || dr.Upstream != a {
		t.Fatalf("wait-drained: exit %d, %s %s", code, out, errs)
	}
	code, _, errs = runCLI(t, "gateway", "wait-drained", "--admin", sock, "--upstream", b)
	if code != exitFailed || !strings.Contains(errs, "is the active one") {
		t.Fatalf("wait-drained on the active release: exit %d, %s", code, errs)
	}
	code, out, errs = runCLI(t, "gateway", "state", "--admin", sock)
	var st gateway.State
	if code != exitOK || json.Unmarshal([]byte(out), &st) != nil || st.Active != b || st.Previous != a || st.Requests != 2 {
		t.Fatalf("state: exit %d, %s %s", code, out, errs)
	}
	if code, _, errs = runCLI(t, "gateway", "health", "--url", "http://"+addr); code != exitOK {
		t.Fatalf("health: exit %d, %s", code, errs)
	}

	cancel()
	if c := <-done; c != exitOK {
		t.Fatalf("gateway exit %d after cancel: %s", c, gwErr.String())
	}
	saved, err := gateway.ReadStateFile(state)
	if err != nil || saved.Active != b {
		t.Fatalf("state file %+v, %v", saved, err)
	}
	// The gateway is gone: its clients cannot tell, which is inconclusive.
	code, _, errs = runCLI(t, "gateway", "state", "--admin", sock)
	if code != exitInconclusive || !strings.Contains(errs, "is `modelship gateway` running with --admin") {
		t.Fatalf("state without a gateway: exit %d, %s", code, errs)
	}
	if code, _, _ := runCLI(t, "gateway", "health", "--url", "http://"+addr); code != exitFailed {
		t.Fatalf("health of a stopped gateway: exit %d", code)
	}
}

func TestGatewayCommandUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"gateway", "--help"}, exitOK, "POST /switch"},
		{[]string{"gateway", "switch", "--help"}, exitOK, "--skip-ready"},
		{[]string{"gateway", "state", "--help"}, exitOK, "in flight per"},
		{[]string{"gateway", "wait-drained", "--help"}, exitOK, "--timeout"},
		{[]string{"gateway", "health", "--help"}, exitOK, "HEALTHCHECK"},
		{[]string{"gateway", "switch"}, exitUsage, "--to URL is required"},
		{[]string{"gateway", "switch", "--to", "release-b:8000"}, exitUsage, "scheme must be http or https"},
		{[]string{"gateway", "wait-drained"}, exitUsage, "--upstream URL is required"},
		{[]string{"gateway", "--upstream", "http://a/v1"}, exitUsage, "without path or query"},
		{[]string{"gateway", "--admin", "tcp://0.0.0.0:9"}, exitUsage, "only unix sockets"},
		{[]string{"gateway", "swich"}, exitUsage, `unexpected argument "swich"`},
		{[]string{"gateway", "canary", "--help"}, exitOK, "--sticky-header"},
		{[]string{"gateway", "canary", "--upstream", "http://b:8000"}, exitUsage, "--percent P is required"},
		{[]string{"gateway", "canary", "--upstream", "http://b:8000", "--percent", "120"}, exitUsage, "--percent: 120 is not between 0 and 100"},
		{[]string{"gateway", "canary", "--percent", "10"}, exitUsage, "--upstream URL is required"},
		{[]string{"gateway", "canary", "--percent", "10", "--upstream", "b:8000"}, exitUsage, "--upstream:"},
		{[]string{"gateway", "samples", "--help"}, exitOK, `"ttfb_ms"`},
		{[]string{"gateway", "samples", "--since", "-1"}, exitUsage, `invalid value "-1" for flag -since`},
		{[]string{"gateway", "control", "--set", "pause"}, exitUsage, `--set: "pause" is not one of promote, abort, resume, clear`},
		{[]string{"gateway", "shadow", "--percent", "5"}, exitUsage, "--upstream URL is required"},
		{[]string{"gateway", "shadow", "--upstream", "http://b:8000"}, exitUsage, "--percent P is required"},
		{[]string{"gateway", "shadow", "--upstream", "http://b:8000", "--percent", "5", "--queue", "-2"}, exitUsage, "--queue: -2 is negative"},
		{[]string{"gateway", "shadow", "--report", "--percent", "5"}, exitUsage, "--report takes no --upstream, --percent, --queue or --checks"},
		{[]string{"gateway", "shadow", "--upstream", "http://b:8000", "--percent", "5", "--checks", "nope"}, exitUsage, "--checks: expected a JSON list of {case, prompt, assertions}"},
	} {
		code, out, errs := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(out+errs, tc.want) {
			t.Errorf("%v: exit %d, want %d with %q:\n%s%s", tc.args, code, tc.code, tc.want, out, errs)
		}
	}
}

// The rollout subcommands against a running gateway: a canary split, its
// samples, the control slot, and a shadow this build cannot run.
func TestGatewayRolloutCommands(t *testing.T) {
	a, b := namedRelease(t, "A", 200), namedRelease(t, "B", 200)
	dir, err := os.MkdirTemp("", "gwcli")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	gw := startGatewayCLI(t, dir, "--upstream", a)

	code, out, errs := runCLI(t, "gateway", "control", "--admin", gw.sock, "--set", "abort")
	if code != exitFailed || !strings.Contains(errs, "no rollout in progress") {
		t.Fatalf("control without a rollout: exit %d, %s %s", code, out, errs)
	}
	code, out, errs = runCLI(t, "gateway", "canary", "--admin", gw.sock, "--upstream", b, "--percent", "100", "--sticky-header", "X-Conversation-Id")
	var cs gateway.CanaryState
	if code != exitOK || json.Unmarshal([]byte(out), &cs) != nil || cs.Upstream != b || cs.Percent != 100 || cs.StickyHeader != "X-Conversation-Id" {
		t.Fatalf("canary: exit %d, %s %s", code, out, errs)
	}
	if body := httpGet(t, "http://"+gw.addr+"/v1/models"); body != "B" {
		t.Fatalf("at 100%% the canary answers, got %q", body)
	}
	// The sample is recorded once the gateway's handler returns, which
	// may be just after the client has the answer.
	testenv.Eventually(t, 10*time.Second, "the request measured", func() bool {
		_, out, _ := runCLI(t, "gateway", "samples", "--admin", gw.sock)
		return strings.Contains(out, `"next": 1`)
	})
	code, out, errs = runCLI(t, "gateway", "samples", "--admin", gw.sock)
	var sm gateway.Samples
	if code != exitOK || json.Unmarshal([]byte(out), &sm) != nil || sm.Next != 1 || len(sm.Samples) != 1 || sm.Samples[0].Upstream != b || sm.Samples[0].Status != 200 {
		t.Fatalf("samples: exit %d, %s %s", code, out, errs)
	}
	if code, out, _ = runCLI(t, "gateway", "samples", "--admin", gw.sock, "--since", "1"); code != exitOK || !strings.Contains(out, `"samples": []`) {
		t.Fatalf("samples since 1: exit %d, %s", code, out)
	}
	for _, step := range []struct{ args, want string }{{"--set promote", "promote"}, {"", "promote"}, {"--set clear", ""}} {
		args := append([]string{"gateway", "control", "--admin", gw.sock}, strings.Fields(step.args)...)
		code, out, errs = runCLI(t, args...)
		var c gateway.ControlRequest
		if code != exitOK || json.Unmarshal([]byte(out), &c) != nil || c.Action != step.want {
			t.Fatalf("control %s: exit %d, %s %s", step.args, code, out, errs)
		}
	}
	code, out, errs = runCLI(t, "gateway", "canary", "--admin", gw.sock, "--percent", "0")
	var cleared gateway.CanaryState
	if code != exitOK || json.Unmarshal([]byte(out), &cleared) != nil || cleared.Percent != 0 || cleared.Upstream != "" {
		t.Fatalf("canary cleared: exit %d, %s %s", code, out, errs)
	}
	if body := httpGet(t, "http://"+gw.addr+"/v1/models"); body != "A" {
		t.Fatalf("the canary cleared, got %q", body)
	}
	code, out, errs = runCLI(t, "gateway", "shadow", "--admin", gw.sock, "--upstream", b, "--percent", "10")
	if code != exitOK || !strings.Contains(out, b) {
		t.Fatalf("shadow: exit %d, %s %s", code, out, errs)
	}
	code, out, errs = runCLI(t, "gateway", "shadow", "--admin", gw.sock, "--report")
	var rep shadow.Report
	if code != exitOK || json.Unmarshal([]byte(out), &rep) != nil || rep.Upstream != b || rep.Percent != 10 {
		t.Fatalf("shadow report: exit %d, %s %s", code, out, errs)
	}
	if code, out, errs = runCLI(t, "gateway", "shadow", "--admin", gw.sock, "--percent", "0"); code != exitOK || json.Unmarshal([]byte(out), &rep) != nil || rep.Upstream != b {
		t.Fatalf("shadow stopped: exit %d, %s %s", code, out, errs)
	}
	code, _, errs = runCLI(t, "gateway", "shadow", "--admin", gw.sock, "--report")
	if code != exitFailed || !strings.Contains(errs, "no shadow is running") {
		t.Fatalf("shadow report after the stop: exit %d, %s", code, errs)
	}
}

// An upgrade in place under load: the gateway, a real process, hands its
// public port over to another binary; no request fails, the new process
// serves the same active release and reports its own binary, a binary
// that does not run is refused with the old gateway still serving, and a
// SIGTERM to the first process (a container's PID 1) stops both.
func TestGatewayUpgradeInPlace(t *testing.T) {
	bin := modelshipBinary(t)
	dir, err := os.MkdirTemp("", "gwup")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	exe, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	oldBin, newBin, badBin := filepath.Join(dir, "modelship-old"), filepath.Join(dir, "modelship-new"), filepath.Join(dir, "modelship-bad")
	// The new binary differs (bytes after the ELF's end change nothing it runs).
	for path, data := range map[string][]byte{oldBin: exe, newBin: append(exe[:len(exe):len(exe)], "modelship-next"...), badBin: []byte("#!/bin/sh\nexit 3\n")} {
		if err := os.WriteFile(path, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	a := namedRelease(t, "A", 200)
	b := namedRelease(t, "B", 200)
	sock := "unix://" + filepath.Join(dir, "admin.sock")
	addr := freeAddr(t)
	var logs testenv.SyncBuffer
	gw := exec.Command(oldBin, "gateway", "--listen", addr, "--admin", sock, "--upstream", a, "--state", filepath.Join(dir, "state.json"))
	gw.Stdout, gw.Stderr = &logs, &logs
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- gw.Wait() }()
	defer func() {
		if gw.ProcessState == nil {
			gw.Process.Kill()
		}
	}()
	c := gateway.Client{Socket: sock}
	var before *gateway.State
	testenv.Eventually(t, 10*time.Second, "the gateway answers on its admin socket", func() bool {
		before, err = c.State(context.Background())
		return err == nil
	})
	if before.PID != gw.Process.Pid || before.BinarySHA256 != sha(exe) {
		t.Errorf("state before: pid %d binary %s, want %d %s", before.PID, before.BinarySHA256, gw.Process.Pid, sha(exe))
	}

	l := testenv.LoadLoop("http://"+addr, 4)
	l.WaitMore(200)
	code, out, errOut := runCLI(t, "gateway", "upgrade", "--admin", sock, "--binary", newBin)
	if code != exitOK {
		t.Fatalf("upgrade exited %d: %s\n%s", code, errOut, logs.String())
	}
	var res gateway.UpgradeResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	l.WaitMore(200)
	code, _, errOut = runCLI(t, "gateway", "upgrade", "--admin", sock, "--binary", badBin)
	if code != exitFailed || !strings.Contains(errOut, "does not run here") {
		t.Errorf("upgrade to a binary that does not run: exit %d, %s; want 1 saying it does not run", code, errOut)
	}
	l.WaitMore(200)
	reqs, fails, errs := l.Stop()
	t.Logf("upgrade in place under load: %d requests, %d failed; handed over in %s", reqs, fails, res.Took)
	if fails != 0 {
		t.Errorf("%d of %d requests failed across the upgrade: %q\n%s", fails, reqs, errs, logs.String())
	}
	after, err := c.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if after.PID != res.PID || after.PID == before.PID || after.BinarySHA256 != sha([]byte(string(exe)+"modelship-next")) || after.Active != before.Active {
		t.Errorf("state after: pid %d (upgrade said %d, was %d), binary %s, active %s (was %s)", after.PID, res.PID, before.PID, after.BinarySHA256, after.Active, before.Active)
	}
	// The new gateway switches; the first process still stands for it.
	if _, err := c.Switch(context.Background(), b, gateway.SwitchOptions{}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "B" {
		t.Errorf("after the switch the new gateway answered %q, want B", body)
	}
	gw.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the first process exited with %v after SIGTERM, want 0:\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("SIGTERM: the gateway did not stop within 20s:\n%s", logs.String())
	}
	if syscall.Kill(res.PID, 0) == nil {
		t.Errorf("the new gateway (pid %d) still runs after the first one stopped", res.PID)
	}
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Errorf("the public port %s still accepts after both stopped", addr)
	}
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
