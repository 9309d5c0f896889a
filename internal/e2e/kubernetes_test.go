package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/modelship/modelship/internal/testenv"
)

// flatKubeconfig writes KUBECONFIG with its certificates and keys inline,
// as `kubectl config view --raw --minify --flatten` does: the form a
// kubeconfig takes as a secret. It returns the path and the client key
// (base64, as in the file), which no output may show.
func flatKubeconfig(t *testing.T) (path, key string) {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(os.Getenv("KUBECONFIG"))
	if err != nil {
		t.Fatal(err)
	}
	if err := clientcmdapi.MinifyConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if err := clientcmdapi.FlattenConfig(cfg); err != nil {
		t.Fatal(err)
	}
	for _, u := range cfg.AuthInfos {
		key = base64.StdEncoding.EncodeToString(u.ClientKeyData)
	}
	if key == "" {
		t.Fatal("the flattened kubeconfig has no client key")
	}
	path = filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path, key
}

// nodeServer is the API server as a container on this machine reaches it
// (printed by .ci/deps/k8s-cluster.sh up): the kubeconfig's 127.0.0.1 is
// the container itself.
func nodeServer(t *testing.T) string {
	s := os.Getenv("K8S_NODE_SERVER")
	if s == "" {
		testenv.Unavailable(t, "K8S_NODE_SERVER is not set: start the cluster with eval \"$(.ci/deps/k8s-cluster.sh up)\"")
	}
	return s
}

// The good model's release goes on to a Kubernetes cluster through `dagger
// call release --kubeconfig`: staging by rolling update (with the
// validation suite through the Service), production by blue-green on the
// Service selector, and a smoke test of production through the API
// server. The pods pull the published image from the registry, and the
// production Service ends up serving it; the kubeconfig's key shows
// nowhere in the output. verify-deployment then checks production again
// with the kubeconfig given as a file.
func TestReleaseDeploysToKubernetes(t *testing.T) {
	engine(t)
	rest := testenv.Kubernetes(t)
	server := nodeServer(t)
	kubeconfig, key := flatKubeconfig(t)
	cs, err := kubernetes.NewForConfig(rest)
	if err != nil {
		t.Fatal(err)
	}
	dir := clone(t)
	id := fmt.Sprintf("e2e%d", time.Now().UnixNano()%1e9)
	ns := "modelship-" + id
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}); err != nil {
			t.Logf("deleting namespace %s: %v", ns, err)
		}
	})
	staging, production := id+"-staging", id+"-production"
	// The deploy runs in a Dagger container: the receiver on the node's address.
	node, err := url.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	hook, notifications := hookServer(t, node.Hostname())
	cfg := configBundle(t, dir, fmt.Sprintf(`  %s:
    target: kubernetes
    strategy: rolling
    kubernetes: {namespace: %s, name: llm-staging, service-port: 80}
  %s:
    target: kubernetes
    strategy: blue-green
    kubernetes: {namespace: %s, name: llm, service-port: 80}
`, staging, ns, production, ns)+notifications)

	repo := "e2e/" + id
	r := releaseDeploys(t, dir, repo, cfg, staging, production, hook, []string{"--kubeconfig", "file:" + kubeconfig, "--kube-server", server})
	if strings.Contains(r.stdout+r.stderr, key) {
		t.Error("the kubeconfig's client key appears in the output of dagger call")
	}

	// What the cluster serves now, through the production Service.
	body, err := cs.CoreV1().Services(ns).ProxyGet("http", "llm", "80", "version", nil).DoRaw(ctx)
	if err != nil {
		t.Fatalf("production /version through the Service: %v", err)
	}
	var v testenv.Version
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("production /version: %v: %s", err, body)
	}
	if !strings.HasPrefix(v.Image, registry(t)+"/"+repo+"@sha256:") {
		t.Errorf("production serves %s, want the release's image %s/%s@sha256:...: %s", v.Image, registry(t), repo, body)
	}
	if !strings.HasPrefix(v.Digest, "sha256:") {
		t.Errorf("production /version reports no model digest: %s", body)
	}
	deps, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range deps.Items {
		names = append(names, d.Name)
	}
	if len(names) < 2 {
		t.Errorf("deployments in %s: %v, want the staging one and production's blue-green one", ns, names)
	}
	t.Logf("release with staging (rolling) and production (blue-green) on Kubernetes: %.1fs; deployments %v\n%s", r.took.Seconds(), names, r.stdout)

	// The smoke test of production on its own: its stage result and log.
	r = call(t, dir, "--kubeconfig", "file:"+kubeconfig, "--kube-server", server,
		"verify-deployment", "--image", v.Image, "--env", production, "--config", cfg, "log")
	if r.err != nil {
		t.Fatalf("verify-deployment: %v\n%s", r.err, tail(r.stderr))
	}
	if !strings.Contains(r.stdout, "/version reports the expected digest "+v.Digest) || !strings.Contains(r.stdout, "passed") {
		t.Errorf("verify-deployment did not check the production release's digest:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout+r.stderr, key) {
		t.Error("the kubeconfig's client key appears in the output of dagger call verify-deployment")
	}
}

// The deploy functions say which target they need: neither a Docker socket
// nor a kubeconfig, both, or a server without a kubeconfig is refused
// before anything runs.
func TestDeployTargetArguments(t *testing.T) {
	engine(t)
	sock := dockerSocket(t)
	dir := clone(t)
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"deploy", "--env", "staging", "--image", "x", "verdict"}, "deploy: no target: give docker"},
		{[]string{"--docker", sock, "--kubeconfig", "file:" + kc, "deploy", "--env", "staging", "--image", "x", "verdict"}, "deploy: give docker (a Docker target) or kubeconfig (a Kubernetes target), not both"},
		{[]string{"--docker", sock, "--kube-server", "https://10.0.0.5:6443", "rollback", "--env", "staging", "--image", "x", "verdict"}, "rollback: kubeServer is for a Kubernetes target"},
		{[]string{"--secrets", "env:HOME", "release", "--model", "testdata/models/gguf-good", "--registry", "localhost:5000/x", "entries"}, "secrets: only the deploy stages read them, and no deploy target was given"},
	} {
		r := call(t, dir, tc.args...)
		if r.err == nil || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("dagger call %v: err %v, want a failure saying %q:\n%s", tc.args, r.err, tc.want, tail(r.stderr))
		}
	}
}
