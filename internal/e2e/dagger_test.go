package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelship/modelship/checkpoint"
	"github.com/modelship/modelship/internal/testenv"
	"github.com/modelship/modelship/internal/testmodels"
	"github.com/modelship/modelship/serving"
)

// engine returns the dagger CLI to call, skipping the test when no engine
// was started (failing under CI=true).
func engine(t *testing.T) string {
	t.Helper()
	host := os.Getenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST")
	cli := os.Getenv("_EXPERIMENTAL_DAGGER_CLI_BIN")
	if host == "" || cli == "" {
		testenv.Unavailable(t, "no Dagger engine: run `eval \"$(.ci/deps/dagger-engine.sh start)\"` first")
	}
	if _, err := os.Stat(cli); err != nil {
		t.Fatalf("_EXPERIMENTAL_DAGGER_CLI_BIN: %v", err)
	}
	return cli
}

// registry is the local registry the harness started.
func registry(t *testing.T) string {
	if r := os.Getenv("MODELSHIP_CI_REGISTRY"); r != "" {
		return r
	}
	t.Fatal("MODELSHIP_CI_REGISTRY is not set (printed by .ci/deps/dagger-engine.sh start)")
	return ""
}

var (
	cloneOnce sync.Once
	cloneDir  string
	cloneErr  error
)

// clone returns a clean clone of the repository at HEAD, shared by the
// tests: what CI and another user call the module on (and a stable source,
// so Dagger's cache applies).
func clone(t *testing.T) string {
	t.Helper()
	cloneOnce.Do(func() {
		root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
		if err != nil {
			cloneErr = fmt.Errorf("git rev-parse: %w", err)
			return
		}
		dir, err := os.MkdirTemp("", "modelship-e2e-")
		if err != nil {
			cloneErr = err
			return
		}
		cloneDir = filepath.Join(dir, "modelship")
		out, err := exec.Command("git", "clone", "-q", strings.TrimSpace(string(root)), cloneDir).CombinedOutput()
		if err != nil {
			cloneErr = fmt.Errorf("git clone: %v: %s", err, out)
		}
	})
	if cloneErr != nil {
		t.Fatal(cloneErr)
	}
	return cloneDir
}

type result struct {
	stdout, stderr string
	err            error
	took           time.Duration
}

// call runs `dagger call ARGS...` in dir.
func call(t *testing.T, dir string, args ...string) result {
	t.Helper()
	cli := engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, append([]string{"call", "--progress=plain"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DO_NOT_TRACK=1", "DAGGER_NO_NAG=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	return result{stdout: out.String(), stderr: errb.String(), err: err, took: time.Since(start)}
}

// tags lists the tags of repo in the local registry (nil when the
// repository does not exist).
func tags(t *testing.T, repo string) []string {
	t.Helper()
	resp, err := http.Get("http://" + registry(t) + "/v2/" + repo + "/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	var body struct {
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("tags of %s: %v", repo, err)
	}
	return body.Tags
}

func gitHead(t *testing.T, dir string) string {
	out, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// The good model goes through every stage, is published under its git SHA
// and model digest, and the published image serves (verify); the same
// release again comes from Dagger's cache with the same result.
func TestReleaseGoodModel(t *testing.T) {
	engine(t)
	dir := clone(t)
	repo := fmt.Sprintf("e2e/good-%d", time.Now().UnixNano())
	args := []string{"release", "--model", "testdata/models/good", "--engine", "sim",
		"--registry", registry(t) + "/" + repo, "file", "--path", "report.md", "contents"}

	first := call(t, dir, args...)
	if first.err != nil {
		t.Fatalf("release: %v\n%s", first.err, tail(first.stderr))
	}
	stagesOK(t, first.stdout, "preflight", "validate", "benchmark", "build", "publish", "verify")
	if !strings.Contains(first.stdout, registry(t)+"/"+repo+"@sha256:") {
		t.Errorf("report does not name the published ref@digest:\n%s", first.stdout)
	}
	got := strings.Join(tags(t, repo), " ")
	for _, want := range []string{gitHead(t, dir), "sha256-"} {
		if !strings.Contains(got, want) {
			t.Errorf("registry tags of %s = %q, want one containing %q", repo, got, want)
		}
	}

	second := call(t, dir, args...)
	if second.err != nil {
		t.Fatalf("second release: %v\n%s", second.err, tail(second.stderr))
	}
	refRE := regexp.MustCompile(regexp.QuoteMeta(registry(t)+"/"+repo) + `@sha256:[0-9a-f]{64}`)
	ref1, ref2 := refRE.FindString(first.stdout), refRE.FindString(second.stdout)
	if ref1 == "" || ref1 != ref2 {
		t.Errorf("second identical release published %q, the first %q: want the same image from the cache", ref2, ref1)
	}
	stagesOK(t, second.stdout, "preflight", "validate", "benchmark", "build", "publish", "verify")
	t.Logf("release: first %.1fs, second identical (cached) %.1fs (%.0fx faster)",
		first.took.Seconds(), second.took.Seconds(), first.took.Seconds()/second.took.Seconds())
}

// publish --model builds the serving image and pushes it in one call, as
// the deploy workflow's build job does: the same tags as a release (the
// given revision, the model digest, the extra tag) and a ref@digest.
func TestPublishBuildsFromModel(t *testing.T) {
	engine(t)
	dir := clone(t)
	repo := fmt.Sprintf("e2e/publish-%d", time.Now().UnixNano())
	rev := strings.Repeat("ab", 20)
	r := call(t, dir, "publish", "--model", "testdata/models/good", "--engine", "sim", "--revision", rev,
		"--registry", registry(t)+"/"+repo, "--tag", "v1")
	if r.err != nil {
		t.Fatalf("publish --model: %v\n%s", r.err, tail(r.stderr))
	}
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(registry(t)+"/"+repo) + `@sha256:[0-9a-f]{64}\s*$`).MatchString(r.stdout) {
		t.Errorf("publish printed %q, want %s/%s@sha256:...", r.stdout, registry(t), repo)
	}
	got := strings.Join(tags(t, repo), " ")
	for _, want := range []string{rev, "sha256-", "v1"} {
		if !strings.Contains(got, want) {
			t.Errorf("registry tags of %s = %q, want one containing %q", repo, got, want)
		}
	}
	r = call(t, dir, "publish", "--registry", registry(t)+"/"+repo)
	if r.err == nil || !strings.Contains(r.stderr, "give image (a serving image from build) or model") {
		t.Errorf("publish with neither image nor model: err %v, want the reason:\n%s", r.err, tail(r.stderr))
	}
}

// The regressed model fails validation: the release stops there, says
// which cases failed, and nothing is published.
func TestReleaseRegressedModelStopsAtValidate(t *testing.T) {
	engine(t)
	dir := clone(t)
	repo := fmt.Sprintf("e2e/regressed-%d", time.Now().UnixNano())
	r := call(t, dir, "release", "--model", "testdata/models/regressed", "--engine", "sim",
		"--registry", registry(t)+"/"+repo, "file", "--path", "report.md", "contents")
	if r.err == nil {
		t.Fatalf("release of the regressed model succeeded:\n%s", r.stdout)
	}
	for _, want := range []string{"release stopped at validate", "| validate | **failed**", "| publish | not run", "Jupiter"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("output lacks %q:\n%s", want, tail(r.stderr))
		}
	}
	if got := tags(t, repo); got != nil {
		t.Errorf("the regressed model was published: %s tags %v", repo, got)
	}
}

// A real engine in the pipeline: `dagger call release --engine ollama` of
// the generated GGUF models. The good one passes every stage served by
// Ollama (built in the module from the Go module proxy), and the report
// shows what the benchmark measured; the regressed one stops at validate
// with nothing published.
func TestReleaseOnOllama(t *testing.T) {
	engine(t)
	dir := clone(t)
	repo := fmt.Sprintf("e2e/ollama-%d", time.Now().UnixNano())
	// One request at a time with loose gates: Ollama on two shared cores
	// serves requests one after another; the slow model's gate is tested
	// on the same engine in cmd/modelship.
	good := call(t, dir, "release", "--model", "testdata/models/gguf-good", "--engine", "ollama",
		"--bench-concurrency", "1", "--bench-requests", "16", "--min-tokens-per-sec", "5", "--max-latency-p99", "30",
		"--registry", registry(t)+"/"+repo, "file", "--path", "report.md", "contents")
	if good.err != nil {
		t.Fatalf("release of the good GGUF on ollama: %v\n%s", good.err, tail(good.stderr))
	}
	stagesOK(t, good.stdout, "preflight", "validate", "benchmark", "build", "publish", "verify")
	if !regexp.MustCompile(`\| benchmark \| ok \| [^|]+ \| [0-9.]+ tokens/s, p99 `).MatchString(good.stdout) {
		t.Errorf("the report shows no measured throughput:\n%s", good.stdout)
	}
	t.Logf("release on ollama: %.1fs\n%s", good.took.Seconds(), good.stdout)

	regressed := call(t, dir, "release", "--model", "testdata/models/gguf-regressed", "--engine", "ollama",
		"--registry", registry(t)+"/"+repo+"-regressed", "file", "--path", "report.md", "contents")
	if regressed.err == nil {
		t.Fatalf("release of the regressed GGUF succeeded:\n%s", regressed.stdout)
	}
	for _, want := range []string{"release stopped at validate", "| validate | **failed**", "| publish | not run"} {
		if !strings.Contains(regressed.stderr, want) {
			t.Errorf("output lacks %q:\n%s", want, tail(regressed.stderr))
		}
	}
	if got := tags(t, repo+"-regressed"); got != nil {
		t.Errorf("the regressed model was published: tags %v", got)
	}
}

// The slow model (generated here, not committed: about 180 MB) gives the
// good answers far below the article's 50 tokens/s on this CPU: `dagger
// call release` passes validate and the benchmark gate stops it, with the
// figure; nothing is published.
func TestReleaseSlowModelOnOllama(t *testing.T) {
	engine(t)
	dir := clone(t)
	repo := fmt.Sprintf("e2e/ollama-%d", time.Now().UnixNano())
	slowDir := filepath.Join(t.TempDir(), "gguf-slow")
	if err := os.MkdirAll(slowDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := testmodels.WriteSlowGGUF(filepath.Join(slowDir, "model.gguf")); err != nil {
		t.Fatal(err)
	}
	slow := call(t, dir, "release", "--model", slowDir, "--engine", "ollama",
		"--bench-concurrency", "1", "--bench-requests", "10", "--min-tokens-per-sec", "50", "--max-latency-p99", "120",
		"--registry", registry(t)+"/"+repo+"-slow", "file", "--path", "report.md", "contents")
	if slow.err == nil {
		t.Fatalf("release of the slow GGUF passed the 50 tokens/s gate:\n%s", slow.stdout)
	}
	for _, want := range []string{"release stopped at benchmark", "| validate | ok", "| benchmark | **failed**", "| publish | not run"} {
		if !strings.Contains(slow.stderr, want) {
			t.Errorf("output lacks %q:\n%s", want, tail(slow.stderr))
		}
	}
	if m := regexp.MustCompile(`([0-9.]+) tokens/s[^\n]*below[^\n]*50`).FindStringSubmatch(slow.stderr); m == nil {
		t.Errorf("the gate's message does not give the measured tokens/s against 50:\n%s", tail(slow.stderr))
	} else {
		t.Logf("slow model on ollama: %s tokens/s (gate 50), release took %.1fs", m[1], slow.took.Seconds())
	}
	if got := tags(t, repo+"-slow"); got != nil {
		t.Errorf("the slow model was published: tags %v", got)
	}
}

// Without GPU support in the engine a GPU stage fails early with the
// engine's message and a hint, before any model is served.
func TestGPUStageWithoutEngineSupport(t *testing.T) {
	if os.Getenv("MODELSHIP_E2E_ENGINE_HAS_GPUS") != "" {
		t.Skip("this engine has GPU support")
	}
	engine(t)
	dir := clone(t)
	for _, args := range [][]string{
		{"preflight", "--model", "testdata/models/good", "--use-gpus", "verdict"},
		{"validate", "--model", "testdata/models/good", "--engine", "vllm", "verdict"},
	} {
		r := call(t, dir, args...)
		if r.err == nil {
			t.Fatalf("%s succeeded without GPU support", args[0])
		}
		for _, want := range []string{"GPU support is not enabled", "_EXPERIMENTAL_DAGGER_GPU_SUPPORT", "NVIDIA Container Toolkit", "--engine sim"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("%s: output lacks %q:\n%s", args[0], want, tail(r.stderr))
			}
		}
	}
}

func tail(s string) string {
	if len(s) > 6000 {
		return "…" + s[len(s)-6000:]
	}
	return s
}

// The reusable modules' own test modules, and a module that depends on the
// root module the way another repository would, pass on the engine.
func TestModuleTestSuites(t *testing.T) {
	engine(t)
	dir := clone(t)
	for _, sub := range []string{"modules/gpu/tests", "tests/library", "tests/modelship"} {
		t.Run(strings.ReplaceAll(sub, "/", "_"), func(t *testing.T) {
			r := call(t, filepath.Join(dir, sub), "all")
			if r.err != nil {
				t.Fatalf("dagger call all in %s: %v\n%s", sub, r.err, tail(r.stderr))
			}
			t.Logf("%s: %.1fs", sub, r.took.Seconds())
		})
	}
}

// dockerSocket returns the path of the Docker engine's unix socket
// (DOCKER_HOST, as .ci/deps/docker.sh prints it); skips without one, fails
// under CI=true.
func dockerSocket(t *testing.T) string {
	host := os.Getenv("DOCKER_HOST")
	if path, ok := strings.CutPrefix(host, "unix://"); ok {
		return path
	}
	testenv.Unavailable(t, "no Docker engine: run `eval \"$(.ci/deps/docker.sh)\"` first (DOCKER_HOST=unix://...)")
	return ""
}

// The good model's release goes on to a Docker engine: staging (with the
// validation suite through the staging endpoint), production, and a smoke
// test of production; afterwards production serves the new release.
func TestReleaseDeploysToDocker(t *testing.T) {
	engine(t)
	sock := dockerSocket(t)
	dir := clone(t)
	id := fmt.Sprintf("e2e%d", time.Now().UnixNano()%1e9)
	staging, production := id+"-staging", id+"-production"
	prodPort := testenv.FreePort(t)
	// The deploy runs on the Docker host's network: the receiver on its loopback.
	hook, notifications := hookServer(t, "127.0.0.1")
	cfg := configBundle(t, dir, fmt.Sprintf(`  %s:
    target: docker
    port: %d
  %s:
    target: docker
    port: %d
`, staging, testenv.FreePort(t), production, prodPort)+notifications)
	t.Cleanup(func() { removeEnvs(t, staging, production) })

	repo := "e2e/" + id
	// The workflow's --ci-env: the run's identity reaches the deploy
	// stages' containers, so the events link to the run.
	ciEnv := []string{"--ci-env", "GITHUB_ACTOR=e2e-bot,GITHUB_WORKFLOW=deploy-model,GITHUB_RUN_ID=4242,GITHUB_SERVER_URL=https://github.example,GITHUB_REPOSITORY=acme/llm"}
	ctor := append(ciEnv, "--docker", sock, "--docker-socket-path", sock)
	r := releaseDeploys(t, dir, repo, cfg, staging, production, hook, ctor, "--production-url", fmt.Sprintf("http://127.0.0.1:%d", prodPort))
	v := testenv.GetVersion(t, fmt.Sprintf("http://127.0.0.1:%d", prodPort))
	if !strings.HasPrefix(v.Image, registry(t)+"/"+repo+"@sha256:") || !strings.HasPrefix(v.Digest, "sha256:") {
		t.Errorf("production /version = %+v, want the new release's image %s/%s@sha256:... and a model digest", v, registry(t), repo)
	}
	hook.mu.Lock()
	if want := "https://github.example/acme/llm/actions/runs/4242"; !slices.Contains(hook.runs, want) {
		t.Errorf("events' run links %q, want %s (from --ci-env)", hook.runs, want)
	}
	hook.mu.Unlock()
	t.Logf("release with staging and production deploys: %.1fs", r.took.Seconds())
}

// stagesOK checks that a release report (report.md) says ok for each stage.
func stagesOK(t *testing.T, report string, stages ...string) {
	t.Helper()
	for _, st := range stages {
		if !strings.Contains(report, "| "+st+" | ok |") {
			t.Errorf("report: stage %s not ok:\n%s", st, report)
		}
	}
}

// releaseDeploys runs `dagger call release` of the good model (engine sim)
// to repo with the target arguments given, deploying staging and
// production of the config directory cfg, and checks that every stage
// passed and that the deploys' and the live check's notifications reached
// hook, signed with the secret given through --secrets. ctor are the
// constructor's arguments (the target), extra release's. It returns the
// call (stdout: report.md).
func releaseDeploys(t *testing.T, dir, repo, cfg, staging, production string, hook *hooks, ctor []string, extra ...string) result {
	t.Helper()
	args := append(slices.Clone(ctor), "--secrets", "env:"+hookSecretEnv, "release")
	args = append(append(args, "--model", "testdata/models/good", "--engine", "sim",
		"--registry", registry(t)+"/"+repo,
		"--config", cfg, "--staging-env", staging, "--production-env", production), extra...)
	r := call(t, dir, append(args, "file", "--path", "report.md", "contents")...)
	if r.err != nil {
		t.Fatalf("release: %v\n%s", r.err, tail(r.stderr))
	}
	stagesOK(t, r.stdout, "publish", "staging", "production", "live")
	hook.expect(t, r.stdout+r.stderr, "deploy.started "+staging, "deploy.passed "+staging,
		"deploy.started "+production, "deploy.passed "+production, "verify.passed "+production)
	return r
}

// configBundle is a config directory for the deploy stages: modelship.yaml
// serving the image's own checkpoint (/models/current, engine sim, served
// as "current") with the validation suite as the verify suite, and the
// environments given (YAML, indented under environments:).
func configBundle(t *testing.T, repo, environments string) string {
	t.Helper()
	cfg := t.TempDir()
	if err := os.MkdirAll(filepath.Join(cfg, "suites"), 0o755); err != nil {
		t.Fatal(err)
	}
	suite, err := os.ReadFile(filepath.Join(repo, "testdata/suites/validation_cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg, "suites/validation_cases.json"), suite, 0o644); err != nil {
		t.Fatal(err)
	}
	yaml := `version: 1
model:
  path: /models/current
  served-name: current
serving:
  engine: sim
suites:
  validation: suites/validation_cases.json
environments:
` + environments
	if err := os.WriteFile(filepath.Join(cfg, "modelship.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// removeEnvs removes what the deploys left on the Docker engine.
func removeEnvs(t *testing.T, envs ...string) {
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Logf("no docker CLI: leaving the containers of %v", envs)
		return
	}
	for _, env := range envs {
		out, _ := exec.Command(docker, "ps", "-aq", "--filter", "label=modelship.env="+env).Output()
		if ids := strings.Fields(string(out)); len(ids) > 0 {
			_ = exec.Command(docker, append([]string{"rm", "-f"}, ids...)...).Run()
		}
		_ = exec.Command(docker, "network", "rm", "modelship-"+env).Run()
	}
}

// The README's main job, .ci/demo, run as a newcomer runs it: `dagger call
// --docker SOCK --docker-socket-path SOCK demo export` on the bundled tiny
// GGUF model served by Ollama, then its report on stdout with every stage ok, staging and
// production on the Docker engine. It deploys the repository's own staging
// (port 8100) and production (port 8000) environments, removed afterwards.
// Bounded: a stage that cannot finish fails the script with its reason
// (MODELSHIP_DEMO_TIMEOUT bounds the whole call) instead of hanging.
func TestDemoScript(t *testing.T) {
	engine(t)
	dockerSocket(t)
	dir := clone(t)
	t.Cleanup(func() { removeEnvs(t, "staging", "production") })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(dir, ".ci/demo"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "MODELSHIP_DEMO_TIMEOUT=15m")
	cmd.WaitDelay = 30 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		t.Fatalf(".ci/demo: %v (after %s)\n%s", err, took.Round(time.Second), tail(errb.String()))
	}
	report := out.String()
	if !strings.HasPrefix(report, "# modelship release") {
		t.Fatalf(".ci/demo printed no release report on stdout:\n%s", report)
	}
	stagesOK(t, report, "preflight", "validate", "benchmark", "build", "publish", "verify", "staging", "production", "live")
	// The real engine served it, and the report shows what it measured.
	for _, want := range []string{"localhost:5000/modelship/demo@sha256:", "live on staging", "live on production", "serving image (ollama)", " tokens/s, p99 "} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	t.Logf(".ci/demo: %.1fs\n%s", took.Seconds(), report)
}

// The serving settings of the config given to the module reach the image
// it builds: its environment, which `modelship serve` turns into the
// engine's flags, and the modelship.engine-flags label that shows them.
// A setting vLLM would refuse stops the build, naming the key.
func TestBuildBakesServingSettings(t *testing.T) {
	engine(t)
	dir := clone(t)
	cfg := filepath.Join(t.TempDir(), "modelship.yaml")
	base := registry(t) + "/library/debian:bookworm-slim" // serving.image: the local registry's copy
	if err := os.WriteFile(cfg, []byte("model: {path: "+filepath.Join(dir, "testdata/models/good")+"}\nserving:\n  engine: sim\n  image: "+base+"\n"+
		"  max-model-len: 1024\n  tensor-parallel-size: 2\n  dtype: bfloat16\n  engine-args: [--enforce-eager]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := call(t, dir, "--config", cfg, "build", "--model", "testdata/models/good", "--engine", "sim", "label", "--name", serving.LabelSettings)
	if r.err != nil {
		t.Fatalf("build --config: %v\n%s", r.err, tail(r.stderr))
	}
	var flags []string
	if err := json.Unmarshal([]byte(strings.TrimSpace(r.stdout)), &flags); err != nil {
		t.Fatalf("label %s = %q: %v", serving.LabelSettings, r.stdout, err)
	}
	// gpu-memory-utilization is the config's default, 0.9.
	want := serving.Settings{MaxModelLen: 1024, GPUMemoryUtilization: 0.9, TensorParallelSize: 2, Dtype: "bfloat16", EngineArgs: []string{"--enforce-eager"}}.
		Argv(serving.ModelDir, []string{"current"}, "127.0.0.1", serving.EnginePort)[3:]
	if strings.Join(flags, " ") != strings.Join(want, " ") {
		t.Errorf("engine flags of the image = %q, want %q", flags, want)
	}
	r = call(t, dir, "--config", cfg, "build", "--model", "testdata/models/good", "--engine", "sim", "env-variable", "--name", "TENSOR_PARALLEL_SIZE")
	if r.err != nil || strings.TrimSpace(r.stdout) != "2" {
		t.Errorf("TENSOR_PARALLEL_SIZE in the image = %q (%v)", r.stdout, r.err)
	}
	r = call(t, dir, "--config", cfg, "build", "--model", "testdata/models/good", "--engine", "sim", "label", "--name", "org.opencontainers.image.base.name")
	if r.err != nil || strings.TrimSpace(r.stdout) != base {
		t.Errorf("the image's base = %q (%v), want serving.image %s", r.stdout, r.err, base)
	}

	if err := os.WriteFile(cfg, []byte("model: {path: /m}\nserving:\n  engine-args: [--no-such-flag]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = call(t, dir, "--config", cfg, "build", "--model", "testdata/models/good", "--engine", "sim", "label", "--name", serving.LabelSettings)
	if r.err == nil || !strings.Contains(r.stderr, "serving.engine-args[0]") || !strings.Contains(r.stderr, "has no flag --no-such-flag") {
		t.Errorf("build with an unknown vLLM flag: %v, want the key named:\n%s", r.err, tail(r.stderr))
	}
}

// A run for a registry revision checks what it fetched: preflight with the
// announced digest passes the checkpoint that has it and refuses another,
// naming both digests.
func TestPreflightExpectDigest(t *testing.T) {
	engine(t)
	dir := clone(t)
	info, err := checkpoint.Inspect(context.Background(), filepath.Join(dir, "testdata/models/good"), checkpoint.Options{Hash: true})
	if err != nil {
		t.Fatal(err)
	}
	if r := call(t, dir, "preflight", "--model", "testdata/models/good", "--expect-digest", info.Digest, "check"); r.err != nil {
		t.Fatalf("preflight with the checkpoint's own digest: %v\n%s", r.err, tail(r.stderr))
	}
	other := "sha256:" + strings.Repeat("0", 64)
	r := call(t, dir, "preflight", "--model", "testdata/models/good", "--expect-digest", other, "verdict")
	if r.err == nil || !strings.Contains(r.stderr, "the checkpoint's digest is "+info.Digest+", the run was asked for "+other) {
		t.Errorf("preflight with another digest: %v, want refused naming both:\n%s", r.err, tail(r.stderr))
	}
}
