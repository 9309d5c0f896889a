package testenv

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// PushgatewayEnv names the environment variable holding the path of the
// prometheus-pushgateway binary (default: prometheus-pushgateway on PATH,
// else /usr/bin/prometheus-pushgateway, as Debian installs it).
const PushgatewayEnv = "MODELSHIP_PUSHGATEWAY"

// Pushgateway starts the real Prometheus Pushgateway (Debian's
// prometheus-pushgateway, installed by .ci/deps/pushgateway.sh) on a free
// loopback port, with its persistence file in a temporary directory, waits
// until /-/ready answers and returns its base URL (http://127.0.0.1:PORT).
// Pushed series are read back from BASE/metrics. It stops at cleanup; its
// output is logged when the test failed. When the binary is missing the test
// is skipped with the command that installs it, except with CI=true, where
// that is a failure.
func Pushgateway(t testing.TB) (baseURL string) {
	t.Helper()
	bin, err := pushgatewayBinary()
	if err != nil {
		msg := fmt.Sprintf("testenv: prometheus-pushgateway unavailable: %v; install it with .ci/deps/pushgateway.sh (apt-get install prometheus-pushgateway) or set %s", err, PushgatewayEnv)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // the free port may be taken before the gateway binds it
		url, err := startPushgateway(t, bin, dir)
		if err == nil {
			return url
		}
		lastErr = err
	}
	t.Fatalf("testenv: starting prometheus-pushgateway: %v", lastErr)
	return ""
}

func pushgatewayBinary() (string, error) {
	if p := os.Getenv(PushgatewayEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", PushgatewayEnv, p, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("prometheus-pushgateway"); err == nil {
		return p, nil
	}
	const debian = "/usr/bin/prometheus-pushgateway"
	if _, err := os.Stat(debian); err != nil {
		return "", fmt.Errorf("prometheus-pushgateway is not on PATH nor at %s", debian)
	}
	return debian, nil
}

func startPushgateway(t testing.TB, bin, dir string) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin,
		"--web.listen-address="+addr,
		"--persistence.file="+filepath.Join(dir, "pushgateway-"+strconv.Itoa(port)+".data"),
		"--log.level=warn")
	cmd.Dir = dir
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", err
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
	base := "http://" + addr
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			return "", fmt.Errorf("prometheus-pushgateway exited before it was ready: %s", out.String())
		default:
		}
		resp, err := client.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			stop()
			return "", fmt.Errorf("prometheus-pushgateway not ready on %s after 30s: %s", base, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("prometheus-pushgateway output:\n%s", out.String())
		}
	})
	return base, nil
}
