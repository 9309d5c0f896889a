package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
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
		Unavailable(t, msg)
	}
	dir := t.TempDir()
	return startServer(t, "prometheus-pushgateway", func(port int) (*exec.Cmd, string) {
		cmd := exec.Command(bin,
			"--web.listen-address=127.0.0.1:"+strconv.Itoa(port),
			"--persistence.file="+filepath.Join(dir, "pushgateway-"+strconv.Itoa(port)+".data"),
			"--log.level=warn")
		cmd.Dir = dir
		return cmd, "/-/ready"
	})
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
