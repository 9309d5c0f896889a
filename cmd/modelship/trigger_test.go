package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/testenv"

	"gopkg.in/yaml.v3"

	"github.com/modelship/modelship/internal/trigger"
)

// fakeGitHubAPI starts a GitHub API that answers every request 204 and
// records it as "METHOD PATH AUTHORIZATION BODY" (dispatched returns them
// so far), sets the secrets the trigger's flags in these tests refer to,
// and returns a store file for the trigger.
func fakeGitHubAPI(t *testing.T) (gh *httptest.Server, dispatched func() []string, store string) {
	var mu sync.Mutex
	var reqs []string
	gh = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		reqs = append(reqs, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization")+" "+string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(gh.Close)
	t.Setenv("TEST_HF_SECRET", "hf-secret-value")
	t.Setenv("TEST_GH_TOKEN", "gh-token-value")
	dispatched = func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(reqs)
	}
	return gh, dispatched, filepath.Join(t.TempDir(), "released.json")
}

func TestTriggerDispatchesOnceAndStops(t *testing.T) {
	gh, dispatched, store := fakeGitHubAPI(t)

	ctx, cancel := context.WithCancel(context.Background())
	var errb testenv.SyncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"trigger", "--listen", "127.0.0.1:0", "--store", store, "--hf-secret", "env:TEST_HF_SECRET",
			"--github-repo", "acme/models", "--github-api", gh.URL, "--github-token", "env:TEST_GH_TOKEN", "--input", "environment=staging"},
			stdio{in: strings.NewReader(""), out: io.Discard, err: &errb})
	}()
	addr := ""
	waitUntil(t, done, &errb, "trigger listening", func() bool { // the server says where it listens before serving
		if m := regexp.MustCompile(`listening on (http://\S+)`).FindStringSubmatch(errb.String()); m != nil {
			addr = m[1]
		}
		return addr != ""
	})
	sha := "575db8b7a51b6f85eb06eee540738584589f131c"
	body := `{"event":{"action":"update","scope":"repo.content"},"repo":{"type":"model","name":"acme/tiny","headSha":"` + sha + `"},"updatedRefs":[{"ref":"refs/heads/main","oldSha":null,"newSha":"` + sha + `"}]}`
	post := func(secret string) int {
		req, _ := http.NewRequest(http.MethodPost, addr+"/hooks/huggingface", strings.NewReader(body))
		req.Header.Set(trigger.HFSecretHeader, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong secret: %d", code)
	}
	if code := post("hf-secret-value"); code != http.StatusAccepted {
		t.Errorf("valid delivery: %d\n%s", code, errb.String())
	}
	if code := post("hf-secret-value"); code != http.StatusOK {
		t.Errorf("duplicate: %d", code)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("exit %d", code)
	}
	want := `POST /repos/acme/models/actions/workflows/deploy-model.yml/dispatches Bearer gh-token-value {"inputs":{"digest":"","environment":"staging","source":"hf:acme/tiny@` + sha + `"},"ref":"main"}`
	if dispatches := dispatched(); len(dispatches) != 1 || dispatches[0] != want {
		t.Errorf("dispatches %q\nwant [%q]", dispatches, want)
	}
	logs := errb.String()
	for _, leak := range []string{"hf-secret-value", "gh-token-value", `"scope"`} {
		if strings.Contains(logs, leak) {
			t.Errorf("stderr holds %q:\n%s", leak, logs)
		}
	}
	if !strings.Contains(logs, "webhook rejected") || !strings.Contains(logs, "release started") || !strings.Contains(logs, "modelship trigger: stopped") {
		t.Errorf("stderr:\n%s", logs)
	}
}

func TestTriggerUsage(t *testing.T) {
	t.Setenv("TEST_HF_SECRET", "x")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--github-repo", "a/b"}, "give --hf-secret or --mlflow-secret"},
		{[]string{"--hf-secret", "plain-value", "--github-repo", "a/b"}, "--hf-secret: secrets are never values"},
		{[]string{"--hf-secret", "env:TEST_UNSET_SECRET_X", "--github-repo", "a/b"}, "environment variable TEST_UNSET_SECRET_X is not set"},
		{[]string{"--hf-secret", "env:TEST_HF_SECRET"}, "give --github-repo OWNER/REPO"},
		{[]string{"--hf-secret", "env:TEST_HF_SECRET", "--github-repo", "a/b", "--run", "true"}, "exclusive"},
		{[]string{"--hf-secret", "env:TEST_HF_SECRET", "--github-repo", "nobody"}, "expected OWNER/REPO"},
		{[]string{"--hf-secret", "env:TEST_HF_SECRET", "--github-repo", "a/b", "--github-token", "env:TEST_HF_SECRET", "--input", "novalue"}, "--input: expected NAME=VALUE"},
		{[]string{"--hf-secret", "env:TEST_HF_SECRET", "--run", "true", "--max-age", "0s"}, "--max-age"},
		{[]string{"--hf-secret", "env:TEST_HF_SECRET", "--run", "true", "--log-format", "xml"}, "--log-format"},
		{[]string{"--hf-secret", "env:TEST_HF_SECRET", "--run", "gh workflow run x.yml -f model={model}"}, `--run: argument "model={model}": unknown placeholder {model}: expected {source}, {repo}, {revision}, {digest}`},
		{[]string{"extra"}, "unexpected argument"},
	}
	for _, tt := range tests {
		code, _, errs := runCLI(t, append([]string{"trigger"}, tt.args...)...)
		if code != exitUsage || !strings.Contains(errs, tt.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tt.args, code, errs, tt.want)
		}
	}
	code, _, errs := runCLI(t, "trigger", "--help")
	for _, want := range []string{"X-MLflow-Signature", "X-Webhook-Secret", "-github-repo", "-run", "-store", "-max-age", "never its body"} {
		if code != exitOK || !strings.Contains(errs, want) {
			t.Errorf("--help lacks %q (exit %d)", want, code)
		}
	}
}

// TestTriggerRunExamplesWork: every --run example in the help and the
// README uses only the placeholders the trigger knows, and a command that
// exists: a modelship command this binary has, or a gh workflow run of a
// workflow of this repository with inputs it declares.
func TestTriggerRunExamplesWork(t *testing.T) {
	_, _, help := runCLI(t, "trigger", "--help")
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	example := regexp.MustCompile(`(?:--run |e\.g\. )"([^"]*\{[a-z]+\}[^"]*)"`)
	var found [][]string
	for _, text := range []string{help, string(readme)} {
		found = append(found, example.FindAllStringSubmatch(text, -1)...)
	}
	if len(found) < 2 {
		t.Fatalf("found %d --run examples in the help and the README, want at least one in each", len(found))
	}
	known := map[string]bool{}
	for _, p := range trigger.Placeholders {
		known[p] = true
	}
	for _, m := range found {
		argv := strings.Fields(m[1])
		for _, p := range regexp.MustCompile(`\{[^}]*\}`).FindAllString(m[1], -1) {
			if !known[p] {
				t.Errorf("%q: placeholder %s is not one of %v", m[1], p, trigger.Placeholders)
			}
		}
		switch {
		case argv[0] == "modelship":
			if len(argv) < 2 || commands[argv[1]].run == nil {
				t.Errorf("%q: not a command of modelship (go run ./cmd/modelship help lists them)", m[1])
			}
		case len(argv) > 3 && argv[0] == "gh" && argv[1] == "workflow" && argv[2] == "run":
			checkWorkflowRun(t, m[1], argv[3], argv[4:])
		default:
			t.Errorf("%q: not a modelship or gh workflow run command line this test knows how to check", m[1])
		}
	}
}

// checkWorkflowRun checks that file is a workflow of this repository with
// a workflow_dispatch whose inputs declare every -f NAME=VALUE of args.
func checkWorkflowRun(t *testing.T, example, file string, args []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../.github/workflows", file))
	if err != nil {
		t.Errorf("%q: %v", example, err)
		return
	}
	var wf struct {
		On struct {
			WorkflowDispatch struct {
				Inputs map[string]any `yaml:"inputs"`
			} `yaml:"workflow_dispatch"`
		} `yaml:"on"`
	}
	if err := yaml.Unmarshal(b, &wf); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	for i := 0; i < len(args); i++ {
		if args[i] != "-f" && args[i] != "--field" && args[i] != "-F" && args[i] != "--raw-field" {
			continue
		}
		if i+1 == len(args) {
			t.Errorf("%q: %s without NAME=VALUE", example, args[i])
			break
		}
		name, _, _ := strings.Cut(args[i+1], "=")
		if _, ok := wf.On.WorkflowDispatch.Inputs[name]; !ok {
			t.Errorf("%q: %s declares no workflow_dispatch input %q", example, file, name)
		}
	}
}

// TestTriggerResumesQueuedRevision: a store left with a revision queued
// (the trigger stopped before starting it) and one started: on start-up
// the first is dispatched and both are named in the log, the second is not
// run again.
func TestTriggerResumesQueuedRevision(t *testing.T) {
	gh, dispatched, store := fakeGitHubAPI(t)
	queued := trigger.Event{Source: "huggingface", Repo: "acme/tiny", Revision: strings.Repeat("a", 40)}
	started := trigger.Event{Source: "huggingface", Repo: "acme/tiny", Revision: strings.Repeat("b", 40)}
	st, err := trigger.OpenStore(store)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []trigger.Event{queued, started} {
		if _, _, _, err := st.Queue(ev, "earlier", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Set(started.Key(), trigger.Started, "", time.Now()); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var errb testenv.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"trigger", "--listen", "127.0.0.1:0", "--store", store, "--hf-secret", "env:TEST_HF_SECRET", "--log-format", "json",
			"--github-repo", "acme/models", "--github-api", gh.URL, "--github-token", "env:TEST_GH_TOKEN"},
			stdio{in: strings.NewReader(""), out: io.Discard, err: &errb})
	}()
	waitUntil(t, done, &errb, queued.Key()+" dispatched", func() bool {
		reopened, err := trigger.OpenStore(store)
		return err == nil && reopened.State(queued.Key()) == trigger.Finished
	})
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("exit %d", code)
	}
	var sources []string
	for _, d := range dispatched() {
		sources = append(sources, regexp.MustCompile(`"source":"([^"]*)"`).FindStringSubmatch(d)[1])
	}
	if len(sources) != 1 || sources[0] != queued.Key() {
		t.Errorf("dispatched %v, want [%s]", sources, queued.Key())
	}
	logs := errb.String()
	for _, want := range []string{
		"1 queued (resumed), 1 left started (not re-run)",
		`"msg":"resuming queued release","store":"` + store + `","key":"` + queued.Key() + `"`,
		`"key":"` + started.Key() + `"`,
		"not run again",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("stderr lacks %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "gh-token-value") || strings.Contains(logs, "hf-secret-value") {
		t.Errorf("a secret is on stderr:\n%s", logs)
	}
}
