package testenv

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"

	"github.com/modelship/modelship/checkpoint"
	"github.com/modelship/modelship/serving"
)

// Docker returns a client for the engine DOCKER_HOST names (started for
// CI by .ci/deps/docker.sh) and that host. When no engine answers the test
// is skipped with a message saying how to start one, except under CI=true,
// where it fails: CI must run the end-to-end deploy tests.
func Docker(t testing.TB) (*client.Client, string) {
	t.Helper()
	host := os.Getenv("DOCKER_HOST")
	if host == "" {
		host = client.DefaultDockerHost
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = cli.Ping(ctx)
		cancel()
		if err != nil {
			cli.Close()
		}
	}
	if err != nil {
		msg := fmt.Sprintf("no Docker engine answers at %s (%v); start one with: eval \"$(.ci/deps/docker.sh)\"", host, err)
		Unavailable(t, msg)
	}
	t.Cleanup(func() { cli.Close() })
	return cli, host
}

// RepoRoot is the module's root directory (where go.mod is).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var static struct {
	once sync.Once
	bin  []byte
	err  error
}

// StaticBinary is the modelship binary built with CGO_ENABLED=0 (no NVML,
// runs in a FROM scratch image), built once per test process and kept in
// memory (the temporary file is removed at once).
func StaticBinary(t testing.TB) []byte {
	t.Helper()
	static.once.Do(func() {
		dir, err := os.MkdirTemp("", "modelship-static-")
		if err != nil {
			static.err = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "modelship")
		cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./cmd/modelship")
		cmd.Dir = RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			static.err = fmt.Errorf("building the static modelship binary: %v\n%s", err, b)
			return
		}
		static.bin, static.err = os.ReadFile(out)
	})
	if static.err != nil {
		t.Fatal(static.err)
	}
	return static.bin
}

// TestImage describes an image ServingImage builds.
type TestImage struct {
	// Tag, e.g. modelship-test/good:1.
	Tag string
	// Model is the checkpoint directory copied to /models/current
	// (relative to the repository root, e.g. testdata/models/good, or
	// absolute).
	Model string
	// Env is added to the image (e.g. MODELSHIP_SIM_ARGS=--never-ready).
	Env []string
	// LoadSeconds, when positive, replaces the simulator's load time
	// (modelship-sim.json load_seconds): a model that takes a while to load,
	// as real ones do.
	LoadSeconds float64
	// BinaryTrailer, when set, is appended to the modelship binary: a
	// binary that runs the same but differs (another modelship build, as
	// far as an upgrade of the gateway can tell).
	BinaryTrailer string
	// Engine is the image's engine: "" for sim, or serving.EngineOllama
	// (the Ollama binary of the test machine, with the shared libraries
	// it needs, at /usr/local/bin/ollama).
	Engine string
}

// ModelDir is the checkpoint directory the image carries: Model (under
// the repository root unless absolute), with the simulator's load time
// replaced when LoadSeconds is set.
func (img TestImage) ModelDir(t testing.TB) string {
	dir := img.Model
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(RepoRoot(), dir)
	}
	if img.LoadSeconds > 0 {
		dir = withLoadSeconds(t, dir, img.LoadSeconds)
	}
	return dir
}

// Test images: the good and regressed models, one whose container exits at
// once (its model path does not exist) and one that never becomes ready.
var (
	ImageGood       = TestImage{Tag: "modelship-test/good:1", Model: "testdata/models/good"}
	ImageRegressed  = TestImage{Tag: "modelship-test/regressed:1", Model: "testdata/models/regressed"}
	ImageCrash      = TestImage{Tag: "modelship-test/crash:1", Model: "testdata/models/good", Env: []string{serving.EnvModelPath + "=/models/missing"}}
	ImageNeverReady = TestImage{Tag: "modelship-test/never-ready:1", Model: "testdata/models/good", Env: []string{serving.EnvSimArgs + "=--never-ready"}}
	ImageSlowLoad   = TestImage{Tag: "modelship-test/good-slow-load:1", Model: "testdata/models/good", LoadSeconds: 8}
	// ImageGoodNextBinary is the good model with another modelship binary.
	ImageGoodNextBinary = TestImage{Tag: "modelship-test/good-next-binary:1", Model: "testdata/models/good", BinaryTrailer: "modelship-next"}
	// ImageSlowTTFT is the good model answering with double its time to
	// first token (the table's latency.ttft_ms is 15): a canary that
	// regressed on latency.
	ImageSlowTTFT = TestImage{Tag: "modelship-test/good-slow-ttft:1", Model: "testdata/models/good", Env: []string{serving.EnvSimArgs + "=--ttft 30ms"}}
	// ImageErrors is the good model failing 5% of generations with a 500.
	ImageErrors = TestImage{Tag: "modelship-test/good-errors:1", Model: "testdata/models/good", Env: []string{serving.EnvSimArgs + "=--error-rate 0.05 --seed 1"}}
	// ImageOllamaGood serves the generated good GGUF model with Ollama.
	ImageOllamaGood = TestImage{Tag: "modelship-test/ollama-good:1", Model: "testdata/models/gguf-good", Engine: serving.EngineOllama}
)

// Built is a test image on the engine.
type Built struct {
	Tag         string
	ModelDigest string // the checkpoint's digest, also label modelship.model-digest
}

var images struct {
	mu    sync.Mutex
	built map[string]Built
}

// ServingImage builds img FROM scratch on the engine (once per process; not
// at all when an image with the same content label exists), laid out by the
// serving contract as the Dagger module lays out a vLLM image: the static
// modelship binary at /usr/local/bin/modelship, the checkpoint at
// /models/current, ENTRYPOINT [modelship, "serve"], engine sim (which
// runs vLLM's own command line), served name "current".
func ServingImage(t testing.TB, cli *client.Client, img TestImage) Built {
	t.Helper()
	images.mu.Lock()
	defer images.mu.Unlock()
	if b, ok := images.built[img.Tag]; ok {
		return b
	}
	bin := StaticBinary(t)
	if img.BinaryTrailer != "" {
		bin = append(bin[:len(bin):len(bin)], img.BinaryTrailer...)
	}
	modelDir := img.ModelDir(t)
	info, err := checkpoint.Inspect(context.Background(), modelDir, checkpoint.Options{Hash: true})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	engine := serving.EngineSim
	var rootfs map[string][]byte // engine ollama: its binary and libraries
	if img.Engine == serving.EngineOllama {
		engine, rootfs = img.Engine, ollamaRootfs(t)
	}
	env := append([]string{serving.EnvModelPath + "=" + serving.ModelDir, serving.EnvEngine + "=" + engine,
		serving.EnvServedName + "=" + serving.DefaultServedName, "HOME=/tmp"}, img.Env...)
	var df strings.Builder
	fmt.Fprintf(&df, "FROM scratch\nCOPY modelship %s\nCOPY model %s\nCOPY tmp /tmp\n", serving.BinaryPath, serving.ModelDir)
	if rootfs != nil {
		df.WriteString("COPY rootfs/ /\n")
	}
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		fmt.Fprintf(&df, "ENV %s=%q\n", k, v)
	}
	fmt.Fprintf(&df, "LABEL %s=%q %s=%q %s=%q\n", serving.LabelModelDigest, info.Digest, serving.LabelEngine, engine,
		serving.LabelBinary, serving.BinaryPath)
	fmt.Fprintf(&df, "ENTRYPOINT [%q, \"serve\"]\n", serving.BinaryPath)

	var ctxTar bytes.Buffer
	h := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(&ctxTar, h))
	add := func(name string, data []byte, mode int64) {
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg})
		}
		if err == nil {
			_, err = tw.Write(data)
		}
	}
	add("Dockerfile", []byte(df.String()), 0o644)
	add("modelship", bin, 0o755)
	for _, p := range slices.Sorted(maps.Keys(rootfs)) {
		add("rootfs"+p, rootfs[p], 0o755)
	}
	if err == nil {
		err = tw.WriteHeader(&tar.Header{Name: "tmp/", Mode: 0o1777, Typeflag: tar.TypeDir, ModTime: time.Unix(0, 0)})
	}
	eachModelFile(t, modelDir, func(name string, data []byte) {
		add("model/"+name, data, 0o644)
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		t.Fatalf("testenv: build context: %v", err)
	}
	content := hex.EncodeToString(h.Sum(nil))[:16]
	out := Built{Tag: img.Tag, ModelDigest: info.Digest}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if ins, err := cli.ImageInspect(ctx, img.Tag); err == nil && ins.Config != nil && ins.Config.Labels["modelship.test-content"] == content {
		if images.built == nil {
			images.built = map[string]Built{}
		}
		images.built[img.Tag] = out
		return out
	}
	resp, err := cli.ImageBuild(ctx, &ctxTar, build.ImageBuildOptions{
		Tags: []string{img.Tag}, Dockerfile: "Dockerfile", Remove: true, ForceRemove: true,
		Labels: map[string]string{"modelship.test-content": content}, Version: build.BuilderV1,
	})
	if err != nil {
		t.Fatalf("testenv: building %s: %v", img.Tag, err)
	}
	defer resp.Body.Close()
	if err := buildStreamError(resp.Body); err != nil {
		t.Fatalf("testenv: building %s: %v", img.Tag, err)
	}
	if images.built == nil {
		images.built = map[string]Built{}
	}
	images.built[img.Tag] = out
	return out
}

func buildStreamError(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}

// withLoadSeconds copies a test checkpoint to a temporary directory with
// modelship-sim.json's load_seconds replaced.
func withLoadSeconds(t testing.TB, dir string, secs float64) string {
	t.Helper()
	out := t.TempDir()
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if f.Name() == "modelship-sim.json" {
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			m["load_seconds"] = secs
			data, _ = json.MarshalIndent(m, "", "  ")
		}
		if err := os.WriteFile(filepath.Join(out, f.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// ollamaRootfs is what a FROM scratch image needs to run the test
// machine's Ollama binary: the binary at /usr/local/bin/ollama and every
// shared library ldd lists (and the dynamic loader), at their paths.
func ollamaRootfs(t testing.TB) map[string][]byte {
	t.Helper()
	bin := Ollama(t)
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		t.Fatalf("testenv: ldd %s: %v", bin, err)
	}
	files := map[string][]byte{}
	read := func(dst, src string) {
		b, err := os.ReadFile(src) // follows links: the image gets the file
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		files[dst] = b
	}
	read("/usr/local/bin/ollama", bin)
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			read(f[2], f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"): // the loader
			read(f[0], f[0])
		}
	}
	return files
}

// eachModelFile calls f with the name and content of each regular file of
// the model directory dir, in name order (what an image holds of a model).
func eachModelFile(t testing.TB, dir string, f func(name string, data []byte)) {
	t.Helper()
	files, _ := os.ReadDir(dir)
	for _, e := range files {
		if e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		f(e.Name(), data)
	}
}
