package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"golang.org/x/crypto/bcrypt"

	"github.com/modelship/modelship/internal/registryauth"
)

// PrivateRegistry is a password-protected OCI registry on loopback: the
// distribution registry (Debian's docker-registry, which .ci/deps installs)
// with htpasswd authentication, as a private registry of a user's is.
type PrivateRegistry struct {
	// Host is 127.0.0.1:PORT, how image references name it.
	Host               string
	Username, Password string
}

// StartPrivateRegistry starts a registry for this test, stopped at its end.
// Without the docker-registry binary the test is skipped (failed under
// CI=true).
func StartPrivateRegistry(t testing.TB) *PrivateRegistry {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		Unavailable(t, "no docker-registry binary (Debian's docker-registry package; bash .ci/deps/dagger-engine.sh start installs it)")
	}
	dir := t.TempDir()
	secret := make([]byte, 12)
	_, _ = rand.Read(secret)
	r := &PrivateRegistry{Host: fmt.Sprintf("127.0.0.1:%d", FreePort(t)), Username: "ci-puller", Password: hex.EncodeToString(secret)}
	hash, err := bcrypt.GenerateFromPassword([]byte(r.Password), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(r.Username+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s/data
http:
  addr: %s
auth:
  htpasswd:
    realm: modelship-test
    path: %s/htpasswd
`, dir, r.Host, dir)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "serve", filepath.Join(dir, "config.yml"))
	logf, _ := os.Create(filepath.Join(dir, "registry.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting docker-registry: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		logf.Close()
	})
	// Up when /v2/ asks for credentials.
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get("http://" + r.Host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return r
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
			t.Fatalf("private registry on %s did not come up: %v\n%s", r.Host, err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// RegistryHostsEnv names the cluster containerd's registry hosts directory
// (certs.d, printed by .ci/deps/k8s-cluster.sh up).
const RegistryHostsEnv = "K8S_REGISTRY_HOSTS"

// TrustInCluster tells the cluster's containerd to reach r over plain http
// (a hosts.toml under K8S_REGISTRY_HOSTS, read at each pull), until the
// test ends. The credentials are not given: pulls need the pods' image
// pull secret, as from a user's private registry.
func (r *PrivateRegistry) TrustInCluster(t testing.TB) {
	t.Helper()
	root := os.Getenv(RegistryHostsEnv)
	if root == "" {
		Unavailable(t, RegistryHostsEnv+" is not set (the cluster's registry hosts directory); start a cluster with: eval \"$(.ci/deps/k8s-cluster.sh up)\"")
	}
	dir := filepath.Join(root, r.Host)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	hosts := fmt.Sprintf("server = \"http://%s\"\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", r.Host, r.Host)
	if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(hosts), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
}

// Push tags the local image src as ref (in r) and pushes it with r's
// credentials; the local tag ref is removed afterwards, so whoever runs
// ref must pull it.
func (r *PrivateRegistry) Push(t testing.TB, cli *client.Client, src, ref string) {
	t.Helper()
	ctx := context.Background()
	if err := cli.ImageTag(ctx, src, ref); err != nil {
		t.Fatal(err)
	}
	cred := registryauth.Credential{Registry: r.Host, Username: r.Username, Password: r.Password}
	rc, err := cli.ImagePush(ctx, ref, image.PushOptions{RegistryAuth: cred.Header()})
	if err != nil {
		t.Fatalf("push to the private registry: %v", err)
	}
	out, _ := io.ReadAll(rc)
	rc.Close()
	if strings.Contains(string(out), `"error"`) {
		t.Fatalf("push to the private registry: %s", out)
	}
	if _, err := cli.ImageRemove(ctx, ref, image.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
}
