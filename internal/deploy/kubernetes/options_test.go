package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/testenv"
)

// writeKubeconfig writes a kubeconfig whose cluster is at server, with an
// inline token (no files), and returns its path.
func writeKubeconfig(t *testing.T, server string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: %q, insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: not-a-real-token}
contexts:
- name: c
  context: {cluster: c, user: u}
current-context: c
`, server)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Server replaces the kubeconfig's API server address, the rest of the
// kubeconfig (credentials, context) kept.
func TestServerOverridesKubeconfig(t *testing.T) {
	path := writeKubeconfig(t, "https://127.0.0.1:6443")
	tg, err := New(Options{Kubeconfig: path, Name: "llm", Server: "https://10.20.30.40:6443"})
	if err != nil {
		t.Fatal(err)
	}
	if got := tg.Describe(); !strings.Contains(got, "https://10.20.30.40:6443") {
		t.Errorf("Describe() = %q, want the overriding server", got)
	}
	if tg.cfg.BearerToken != "not-a-real-token" {
		t.Errorf("the kubeconfig's credentials were not kept with the server overridden")
	}
	plain, err := New(Options{Kubeconfig: path, Name: "llm"})
	if err != nil {
		t.Fatal(err)
	}
	if got := plain.Describe(); !strings.Contains(got, "https://127.0.0.1:6443") {
		t.Errorf("Describe() without Server = %q, want the kubeconfig's server", got)
	}
}

// An API server that does not answer at a loopback address is reported as
// unreachable with what to do from inside a container, as a
// *LoopbackServerError (the command names its flag); at another address
// the hint is left out.
func TestUnreachableLoopbackServerHint(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tg, err := New(Options{Kubeconfig: writeKubeconfig(t, fmt.Sprintf("https://127.0.0.1:%d", testenv.FreePort(t))), Name: "llm"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = tg.Releases(ctx, "staging")
	if !errors.Is(err, deploy.ErrUnreachable) {
		t.Fatalf("Releases against a closed port: %v, want ErrUnreachable", err)
	}
	var lb *LoopbackServerError
	if !strings.Contains(err.Error(), "127.0.0.1 is a loopback address") || !errors.As(err, &lb) || lb.Host != "127.0.0.1" {
		t.Errorf("error lacks the loopback hint: %v", err)
	}
	if strings.Contains(err.Error(), "not-a-real-token") {
		t.Errorf("error shows the token: %v", err)
	}

	if h := loopbackHost("https://10.20.30.40:6443"); h != "" {
		t.Errorf("hint for a routable address: %q", h)
	}
	for _, host := range []string{"https://localhost:6443", "https://[::1]:6443"} {
		if h := loopbackHost(host); h == "" {
			t.Errorf("no hint for %s", host)
		}
	}
}
