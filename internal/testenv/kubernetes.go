package testenv

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/modelship/modelship/checkpoint"
	"github.com/modelship/modelship/serving"
)

// Kubernetes returns the REST config of the cluster KUBECONFIG names
// (started for CI by .ci/deps/k8s-cluster.sh) once its API server answers
// and a node is Ready. When there is none the test is skipped with a
// message saying how to start one, except under CI=true, where it fails.
func Kubernetes(t testing.TB) *rest.Config {
	t.Helper()
	fail := func(format string, a ...any) {
		msg := fmt.Sprintf(format, a...) + "; start a cluster with: eval \"$(.ci/deps/k8s-cluster.sh up)\""
		Unavailable(t, msg)
	}
	path := os.Getenv("KUBECONFIG")
	if path == "" {
		fail("no Kubernetes cluster: KUBECONFIG is not set")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		fail("no Kubernetes cluster: KUBECONFIG=%s: %v", path, err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fail("no Kubernetes cluster: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		fail("no Kubernetes cluster answers at %s: %v", cfg.Host, err)
	}
	for _, n := range nodes.Items {
		for _, c := range n.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" {
				return cfg
			}
		}
	}
	fail("the Kubernetes cluster at %s has no Ready node", cfg.Host)
	return nil
}

// CtrAddressEnv names the variable holding the cluster's containerd socket
// (printed by .ci/deps/k8s-cluster.sh up).
const CtrAddressEnv = "K8S_CTR_ADDRESS"

// ImportImage builds img FROM scratch as an OCI image (the static modelship
// binary at /modelship, the checkpoint at /models/current, ENTRYPOINT
// [serving.BinaryPath, "serve"], engine sim, served name "current", like
// ServingImage) and imports it into the cluster's containerd
// (`ctr -n k8s.io images import --digests`) under img.Tag and every alias,
// so pods run it with imagePullPolicy Never: there is no registry. The
// image is deterministic: the same content gets the same digest.
func ImportImage(t testing.TB, img TestImage, aliases ...string) Built {
	t.Helper()
	b, wait := importImage(t, img, aliases)
	wait()
	return b
}

// ImportImages is ImportImage for several images, waiting once for the
// nodes to report them all.
func ImportImages(t testing.TB, imgs ...TestImage) []Built {
	t.Helper()
	var out []Built
	var waits []func()
	for _, img := range imgs {
		b, w := importImage(t, img, nil)
		out, waits = append(out, b), append(waits, w)
	}
	for _, w := range waits {
		w()
	}
	return out
}

func importImage(t testing.TB, img TestImage, aliases []string) (Built, func()) {
	t.Helper()
	addr := os.Getenv(CtrAddressEnv)
	if addr == "" {
		msg := CtrAddressEnv + " is not set (the cluster's containerd socket); start a cluster with: eval \"$(.ci/deps/k8s-cluster.sh up)\""
		Unavailable(t, msg)
	}
	bin := StaticBinary(t)
	modelDir := img.ModelDir(t)
	info, err := checkpoint.Inspect(context.Background(), modelDir, checkpoint.Options{Hash: true})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	// The layer.
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	add := func(h *tar.Header, data []byte) {
		h.ModTime = time.Unix(0, 0)
		if err == nil {
			err = tw.WriteHeader(h)
		}
		if err == nil && data != nil {
			_, err = tw.Write(data)
		}
	}
	// The binary where serving images keep it (the pre-stop hook runs it).
	for _, d := range []string{"usr/", "usr/local/", "usr/local/bin/"} {
		add(&tar.Header{Name: d, Mode: 0o755, Typeflag: tar.TypeDir}, nil)
	}
	add(&tar.Header{Name: strings.TrimPrefix(serving.BinaryPath, "/"), Mode: 0o755, Size: int64(len(bin)), Typeflag: tar.TypeReg}, bin)
	engine := serving.EngineSim
	if img.Engine == serving.EngineOllama {
		engine = img.Engine
		rootfs := ollamaRootfs(t)
		dirs := map[string]bool{}
		for p := range rootfs {
			for d := filepath.Dir(p); d != "/"; d = filepath.Dir(d) {
				dirs[d] = true
			}
		}
		for _, d := range slices.Sorted(maps.Keys(dirs)) {
			add(&tar.Header{Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755, Typeflag: tar.TypeDir}, nil)
		}
		for _, p := range slices.Sorted(maps.Keys(rootfs)) {
			add(&tar.Header{Name: strings.TrimPrefix(p, "/"), Mode: 0o755, Size: int64(len(rootfs[p])), Typeflag: tar.TypeReg}, rootfs[p])
		}
	}
	add(&tar.Header{Name: "tmp/", Mode: 0o1777, Typeflag: tar.TypeDir}, nil)
	add(&tar.Header{Name: "models/", Mode: 0o755, Typeflag: tar.TypeDir}, nil)
	add(&tar.Header{Name: "models/current/", Mode: 0o755, Typeflag: tar.TypeDir}, nil)
	eachModelFile(t, modelDir, func(name string, data []byte) {
		add(&tar.Header{Name: "models/current/" + name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}, data)
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		t.Fatalf("testenv: image layer: %v", err)
	}
	env := append([]string{"MODEL_PATH=/models/current", "MODELSHIP_ENGINE=" + engine, "MODELSHIP_SERVED_MODEL_NAME=current", "HOME=/tmp"}, img.Env...)
	digest := func(b []byte) string { h := sha256.Sum256(b); return "sha256:" + hex.EncodeToString(h[:]) }
	layerDigest := digest(layer.Bytes())
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Env": env, "Entrypoint": []string{serving.BinaryPath, "serve"},
			"Labels": map[string]string{"modelship.model-digest": info.Digest}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
	})
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": len(config)},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layerDigest, "size": layer.Len()}},
	})
	var manifests []any
	for _, tag := range append([]string{img.Tag}, aliases...) {
		manifests = append(manifests, map[string]any{
			"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(manifest), "size": len(manifest),
			"annotations": map[string]string{"io.containerd.image.name": "docker.io/" + tag}})
	}
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": manifests})

	var out bytes.Buffer
	ow := tar.NewWriter(&out)
	put := func(name string, data []byte) {
		if err == nil {
			err = ow.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg})
		}
		if err == nil {
			_, err = ow.Write(data)
		}
	}
	put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	put("index.json", index)
	for _, b := range [][]byte{layer.Bytes(), config, manifest} {
		put("blobs/sha256/"+strings.TrimPrefix(digest(b), "sha256:"), b)
	}
	if err == nil {
		err = ow.Close()
	}
	if err != nil {
		t.Fatalf("testenv: OCI layout: %v", err)
	}
	f := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(f, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// --digests also names the image REPO@sha256:..., as a pull would, so
	// the nodes report its content digest.
	repo := img.Tag
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	cmd := exec.Command("ctr", "--address", addr, "-n", "k8s.io", "images", "import", "--digests", "--base-name", "docker.io/"+repo, f)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: ctr images import %s: %v\n%s", img.Tag, err, b)
	}
	name, digestName := "docker.io/"+img.Tag, "docker.io/"+repo+"@"+digest(manifest)
	return Built{Tag: img.Tag, ModelDigest: info.Digest}, func() { waitNodeImage(t, name, digestName) }
}

// waitNodeImage waits until a node reports an image named both name and
// digestName (the kubelet reports images with its node status, every 10 s),
// so that targets see the image's current digest.
func waitNodeImage(t testing.TB, name, digestName string) {
	t.Helper()
	cs, err := kubernetes.NewForConfig(Kubernetes(t))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		nodes, err := cs.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes.Items {
			for _, img := range n.Status.Images {
				if slices.Contains(img.Names, name) && slices.Contains(img.Names, digestName) {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: no node reports image %s a minute after its import", name)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
