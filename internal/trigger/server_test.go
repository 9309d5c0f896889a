package trigger

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/testenv"
)

const (
	hfSecret     = "hf-webhook-secret-123"
	mlflowSecret = "mlflow-webhook-secret-456"
	ghToken      = "ghp_testtoken789"
)

// github records workflow_dispatch calls and checks each is exactly what
// GitHub's REST API expects.
type github struct {
	t     *testing.T
	mu    sync.Mutex
	calls []map[string]any
	fail  int // answer this status instead of 204
}

func (g *github) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	want := map[string]string{
		"Accept":               "application/vnd.github+json",
		"Authorization":        "Bearer " + ghToken,
		"X-Github-Api-Version": "2022-11-28",
		"Content-Type":         "application/json",
	}
	for k, v := range want {
		if r.Header.Get(k) != v {
			g.t.Errorf("header %s = %q, want %q", k, r.Header.Get(k), v)
		}
	}
	if r.Method != http.MethodPost || r.URL.Path != "/repos/acme/models/actions/workflows/deploy-model.yml/dispatches" {
		g.t.Errorf("request %s %s", r.Method, r.URL.Path)
	}
	var body map[string]any
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		g.t.Errorf("body: %v", err)
	}
	g.calls = append(g.calls, body)
	if g.fail != 0 {
		w.WriteHeader(g.fail)
		io.WriteString(w, `{"message":"Unexpected inputs provided: [\"x\"]"}`)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (g *github) n() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.calls)
}

type fixture struct {
	srv  *httptest.Server
	gh   *github
	logs *testenv.SyncBuffer
	now  time.Time
	s    *Server
	stop context.CancelFunc // ends the releases goroutine (after the release under way)
}

// newFixture is a Server with its releases goroutine started, dispatching
// to a fake GitHub, with a store in a new directory.
func newFixture(t *testing.T) *fixture {
	return newFixtureAt(t, filepath.Join(t.TempDir(), "released.json"))
}

// newFixtureAt is newFixture with the store at path.
func newFixtureAt(t *testing.T, path string) *fixture {
	gh := &github{t: t}
	api := httptest.NewServer(gh)
	t.Cleanup(api.Close)
	store, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{gh: gh, logs: &testenv.SyncBuffer{}, now: time.Unix(1_790_000_000, 0)}
	f.s = &Server{
		HFSecret: hfSecret, MLflowSecret: mlflowSecret, Store: store,
		Starter: &Dispatch{API: api.URL, Owner: "acme", Repo: "models", Workflow: "deploy-model.yml", Ref: "main", Token: ghToken,
			Inputs: map[string]string{"environment": "production"}},
		Log: slog.New(slog.NewJSONHandler(f.logs, nil)),
		Now: func() time.Time { return f.now },
	}
	f.srv = httptest.NewServer(f.s.Handler())
	ctx, stop := context.WithCancel(context.Background())
	f.stop = stop
	f.s.Start(ctx)
	t.Cleanup(func() { stop(); f.s.Wait() })
	t.Cleanup(f.srv.Close)
	return f
}

func hfPayloadFor(sha string) string {
	return `{"event":{"action":"update","scope":"repo.content"},
"repo":{"type":"model","name":"acme/tiny-chat","id":"6366c000a2abcdf2fd69a080","private":false,"headSha":"` + sha + `","owner":{"id":"61d2000c3c2083e1c08af22d"}},
"updatedRefs":[{"ref":"refs/heads/main","oldSha":"ce9a4674fa833a68d5a73ec355f0ea95eedd60b7","newSha":"` + sha + `"}],
"webhook":{"id":"6390e855e30d9209411de93b","version":3}}`
}

func (f *fixture) postHF(t *testing.T, secret, body string) (int, Result) {
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/hooks/huggingface", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set(HFSecretHeader, secret)
	}
	return do(t, req)
}

// testDigest is the modelship.digest tag of mlflowBody.
var testDigest = "sha256:4ac0" + strings.Repeat("0", 60)

func mlflowBody(version string) string {
	return `{"entity": "model_version", "action": "created", "timestamp": "2026-09-22T10:00:00+00:00", "data": {"name": "tiny-chat", "version": "` + version + `", "source": "models:/m-123", "run_id": "abcd1234abcd5678", "tags": {"modelship.digest": "` + testDigest + `"}, "description": null}}`
}

// postMLflow signs like MLflow does, with sigSecret, at ts.
func (f *fixture) postMLflow(t *testing.T, sigSecret, id string, ts time.Time, body string) (int, Result) {
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/hooks/mlflow", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	stamp := strconv.FormatInt(ts.Unix(), 10)
	req.Header.Set(MLflowDeliveryIDHeader, id)
	req.Header.Set(MLflowTimestampHeader, stamp)
	if sigSecret != "" {
		req.Header.Set(MLflowSignatureHeader, SignMLflow(sigSecret, id, stamp, []byte(body)))
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (int, Result) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r Result
	json.NewDecoder(resp.Body).Decode(&r)
	return resp.StatusCode, r
}

func TestHuggingFaceDeliveryStartsOneDispatch(t *testing.T) {
	f := newFixture(t)
	sha := "575db8b7a51b6f85eb06eee540738584589f131c"
	code, r := f.postHF(t, hfSecret, hfPayloadFor(sha))
	if code != http.StatusAccepted || r.Status != "started" || r.Source != "hf:acme/tiny-chat@"+sha {
		t.Fatalf("%d %+v\n%s", code, r, f.logs)
	}
	if f.gh.n() != 1 {
		t.Fatalf("%d dispatches, want 1", f.gh.n())
	}
	got, _ := json.Marshal(f.gh.calls[0])
	if want := `{"inputs":{"digest":"","environment":"production","source":"hf:acme/tiny-chat@` + sha + `"},"ref":"main"}`; string(got) != want {
		t.Errorf("dispatch body %s\nwant %s", got, want)
	}
	// The same commit again (the Hub replays, or a second webhook): ignored.
	code, r = f.postHF(t, hfSecret, hfPayloadFor(sha))
	if code != http.StatusOK || r.Status != "ignored" || !strings.Contains(r.Reason, "already released") || f.gh.n() != 1 {
		t.Errorf("duplicate: %d %+v, %d dispatches", code, r, f.gh.n())
	}
	// The store survives a restart.
	s2, err := OpenStore(f.s.Store.path)
	if err != nil || s2.State("hf:acme/tiny-chat@"+sha) != Finished {
		t.Errorf("store after reopening: %v %v", s2.Keys(""), err)
	}
	if strings.Contains(f.logs.String(), ghToken) || strings.Contains(f.logs.String(), hfSecret) {
		t.Errorf("a secret is in the log:\n%s", f.logs)
	}
}

func TestMLflowDeliveryStartsOneDispatch(t *testing.T) {
	f := newFixture(t)
	code, r := f.postMLflow(t, mlflowSecret, "d-1", f.now.Add(-30*time.Second), mlflowBody("3"))
	if code != http.StatusAccepted || r.Source != "mlflow:tiny-chat/3" || f.gh.n() != 1 {
		t.Fatalf("%d %+v, %d dispatches\n%s", code, r, f.gh.n(), f.logs)
	}
	if in := f.gh.calls[0]["inputs"].(map[string]any); in["source"] != "mlflow:tiny-chat/3" || in["digest"] != testDigest {
		t.Errorf("inputs %v", in)
	}
	// The digest tag is recorded too: another version with the same weights
	// (same modelship digest) is ignored.
	code, r = f.postMLflow(t, mlflowSecret, "d-2", f.now, mlflowBody("4"))
	if code != http.StatusOK || !strings.Contains(r.Reason, testDigest+" was already released") || f.gh.n() != 1 {
		t.Errorf("same digest: %d %+v", code, r)
	}
	// Events that do not ask for a release are answered 200 and ignored.
	tag := `{"entity":"model_version_tag","action":"set","timestamp":"x","data":{"name":"tiny-chat","version":"5","key":"k","value":"v"}}`
	if code, r := f.postMLflow(t, mlflowSecret, "d-3", f.now, tag); code != http.StatusOK || r.Status != "ignored" || f.gh.n() != 1 {
		t.Errorf("tag event: %d %+v", code, r)
	}
}

func TestRejectedDeliveriesAreLoggedWithoutBody(t *testing.T) {
	f := newFixture(t)
	const marker = "BODY-MARKER-should-never-be-logged"
	hf := strings.Replace(hfPayloadFor("575db8b7a51b6f85eb06eee540738584589f131c"), "tiny-chat", marker, 1)
	ml := strings.Replace(mlflowBody("7"), "tiny-chat", marker, 1)
	tests := []struct {
		name string
		post func() (int, Result)
		why  string
	}{
		{"hf without secret", func() (int, Result) { return f.postHF(t, "", hf) }, "no X-Webhook-Secret header"},
		{"hf wrong secret", func() (int, Result) { return f.postHF(t, "guess", hf) }, "wrong X-Webhook-Secret"},
		{"mlflow unsigned", func() (int, Result) { return f.postMLflow(t, "", "d-1", f.now, ml) }, "unsigned"},
		{"mlflow wrong key", func() (int, Result) { return f.postMLflow(t, "other-secret", "d-2", f.now, ml) }, "bad signature"},
		{"mlflow too old", func() (int, Result) { return f.postMLflow(t, mlflowSecret, "d-3", f.now.Add(-6*time.Minute), ml) }, "timestamp too old"},
		{"mlflow from the future", func() (int, Result) {
			return f.postMLflow(t, mlflowSecret, "d-4", f.now.Add(10*time.Minute), ml)
		}, "timestamp in the future"},
	}
	for _, tt := range tests {
		code, r := tt.post()
		if code != http.StatusUnauthorized || r.Status != "rejected" || !strings.Contains(r.Reason, tt.why) {
			t.Errorf("%s: %d %+v", tt.name, code, r)
		}
	}
	// A tampered body under a valid signature of the original.
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/hooks/mlflow", strings.NewReader(strings.Replace(ml, `"7"`, `"8"`, 1)))
	stamp := strconv.FormatInt(f.now.Unix(), 10)
	req.Header.Set(MLflowDeliveryIDHeader, "d-5")
	req.Header.Set(MLflowTimestampHeader, stamp)
	req.Header.Set(MLflowSignatureHeader, SignMLflow(mlflowSecret, "d-5", stamp, []byte(ml)))
	if code, _ := do(t, req); code != http.StatusUnauthorized {
		t.Errorf("tampered body: %d", code)
	}
	// A secret in the URL is refused, even the right one (URLs end up in
	// access logs), and never logged either.
	req, _ = http.NewRequest(http.MethodPost, f.srv.URL+"/hooks/huggingface?secret=wrong-query-secret", strings.NewReader(hf))
	if code, _ := do(t, req); code != http.StatusUnauthorized {
		t.Errorf("query secret: %d", code)
	}
	req, _ = http.NewRequest(http.MethodPost, f.srv.URL+"/hooks/huggingface?secret="+hfSecret, strings.NewReader(hf))
	if code, body := do(t, req); code != http.StatusUnauthorized || !strings.Contains(body.Reason, "header") {
		t.Errorf("the right secret in the query: %d %s, want 401 pointing at the header", code, body)
	}
	if f.gh.n() != 0 {
		t.Errorf("%d dispatches after rejected deliveries", f.gh.n())
	}
	logs := f.logs.String()
	if n := strings.Count(logs, `"msg":"webhook rejected"`); n != 9 {
		t.Errorf("%d rejections logged, want 9:\n%s", n, logs)
	}
	for _, leak := range []string{marker, "wrong-query-secret", "guess", hfSecret, mlflowSecret} {
		if strings.Contains(logs, leak) {
			t.Errorf("log holds %q:\n%s", leak, logs)
		}
	}
}

func TestReplayedMLflowDeliveryRejected(t *testing.T) {
	f := newFixture(t)
	body := mlflowBody("9")
	ts := f.now.Add(-10 * time.Second)
	if code, _ := f.postMLflow(t, mlflowSecret, "delivery-42", ts, body); code != http.StatusAccepted {
		t.Fatalf("first delivery: %d\n%s", code, f.logs)
	}
	// The same signed request sent again within the window.
	code, r := f.postMLflow(t, mlflowSecret, "delivery-42", ts, body)
	if code != http.StatusUnauthorized || !strings.Contains(r.Reason, "replayed delivery delivery-42") || f.gh.n() != 1 {
		t.Errorf("replay: %d %+v, %d dispatches", code, r, f.gh.n())
	}
}

func TestDispatchFailureIsRetryable(t *testing.T) {
	f := newFixture(t)
	f.gh.fail = http.StatusUnprocessableEntity
	sha := "1111111111111111111111111111111111111111"
	code, r := f.postHF(t, hfSecret, hfPayloadFor(sha))
	if code != http.StatusBadGateway || !strings.Contains(r.Reason, `GitHub answered 422 Unprocessable Entity: Unexpected inputs provided`) {
		t.Fatalf("%d %+v", code, r)
	}
	if strings.Contains(r.Reason, ghToken) || strings.Contains(f.logs.String(), ghToken) {
		t.Error("token leaked")
	}
	// Not recorded: the retry starts it.
	f.gh.fail = 0
	if code, _ := f.postHF(t, hfSecret, hfPayloadFor(sha)); code != http.StatusAccepted || f.gh.n() != 2 {
		t.Errorf("retry: %d, %d calls", code, f.gh.n())
	}
}

func TestIgnoredAndMalformedHF(t *testing.T) {
	f := newFixture(t)
	f.s.HFRepos = []string{"acme/tiny-chat"}
	tests := []struct {
		body   string
		code   int
		reason string
	}{
		{`{"event":{"action":"create","scope":"discussion"},"repo":{"type":"model","name":"acme/tiny-chat"}}`, 200, "event discussion.create is not new content"},
		{`{"event":{"action":"update","scope":"repo.content"},"repo":{"type":"dataset","name":"acme/data","headSha":"575db8b"}}`, 200, "is a dataset"},
		{`{"event":{"action":"update","scope":"repo.content"},"repo":{"type":"model","name":"acme/tiny-chat","headSha":"575db8b"},"updatedRefs":[{"ref":"refs/heads/dev","oldSha":null,"newSha":"575db8b"}]}`, 200, "no new commit on refs/heads/main"},
		{strings.Replace(hfPayloadFor("575db8b7a51b6f85eb06eee540738584589f131c"), "acme/tiny-chat", "acme/other", 1), 200, "repository acme/other is not watched"},
		{`{"repo":{}}`, 400, "not a Hugging Face webhook"},
		{`not json`, 400, "payload is not JSON"},
		{strings.ReplaceAll(hfPayloadFor("575db8b7a51b6f85eb06eee540738584589f131c"), "575db8b7a51b6f85eb06eee540738584589f131c", "$(reboot)"), 400, `updatedRefs[].newSha of refs/heads/main "$(reboot)": expected a git commit`},
	}
	for _, tt := range tests {
		code, r := f.postHF(t, hfSecret, tt.body)
		if code != tt.code || !strings.Contains(r.Reason, tt.reason) {
			t.Errorf("%.60s: %d %+v, want %d %q", tt.body, code, r, tt.code, tt.reason)
		}
	}
	if f.gh.n() != 0 {
		t.Errorf("%d dispatches", f.gh.n())
	}
}

func TestCommandStarter(t *testing.T) {
	f := newFixture(t)
	out := filepath.Join(t.TempDir(), "args")
	c := &Command{Argv: []string{"sh", "-c", `printf '%s|' "$@" "$MODELSHIP_TRIGGER_SOURCE" > "$0"`, out, "release", "--source={source}", "{revision}"}}
	f.s.Starter = c
	sha := "abcdef0123456789abcdef0123456789abcdef01"
	if code, r := f.postHF(t, hfSecret, strings.Replace(hfPayloadFor(sha), "acme/tiny-chat", "acme/x.y_z-1", 1)); code != http.StatusAccepted || r.Status != "started" {
		t.Fatalf("%d %+v\n%s", code, r, f.logs)
	}
	key := "hf:acme/x.y_z-1@" + sha
	waitFor(t, key+" finished", func() bool { return f.s.Store.State(key) == Finished })
	b, _ := os.ReadFile(out)
	if want := "release|--source=" + key + "|" + sha + "|" + key + "|"; string(b) != want {
		t.Errorf("command got %q\nwant %q\nlog: %s", b, want, f.logs)
	}
	waitFor(t, "release finished in the log", func() bool { return strings.Contains(f.logs.String(), `"msg":"release finished"`) })
	bad := &Command{Argv: []string{"/no/such/modelship", "release"}}
	if _, err := bad.Start(t.Context(), Event{Source: "huggingface", Repo: "a/b", Revision: sha}); err == nil || !strings.Contains(err.Error(), "/no/such/modelship") {
		t.Errorf("missing command: %v", err)
	}
	// A command that fails is recorded failed; the next delivery queues it again.
	f.s.Starter = &Command{Argv: []string{"false"}}
	sha2 := strings.Repeat("e", 40)
	if code, r := f.postHF(t, hfSecret, hfPayloadFor(sha2)); code != http.StatusAccepted {
		t.Fatalf("%d %+v", code, r)
	}
	key2 := "hf:acme/tiny-chat@" + sha2
	waitFor(t, key2+" failed", func() bool { return f.s.Store.State(key2) == Failed })
	if r, _ := f.s.Store.Get(key2); !strings.Contains(r.Error, "false: exit status 1") {
		t.Errorf("failed record %+v", r)
	}
	if code, r := f.postHF(t, hfSecret, hfPayloadFor(sha2)); code != http.StatusAccepted || r.Status == "queued" && strings.Contains(r.Reason, "already") {
		t.Errorf("after a failure: %d %+v", code, r)
	}
	waitFor(t, key2+" failed again", func() bool { r, _ := f.s.Store.Get(key2); return r.State == Failed && r.Attempts == 2 })
}

func TestCommandValidate(t *testing.T) {
	if err := (&Command{Argv: []string{"gh", "workflow", "run", "deploy-model.yml", "-f", "source={source}", "-f", "digest={digest}"}}).Validate(); err != nil {
		t.Error(err)
	}
	err := (&Command{Argv: []string{"gh", "--model={model}"}}).Validate()
	if err == nil || !strings.Contains(err.Error(), `argument "--model={model}": unknown placeholder {model}: expected {source}, {repo}, {revision}, {digest}`) {
		t.Errorf("unknown placeholder: %v", err)
	}
	if err := (&Command{}).Validate(); err == nil || !strings.Contains(err.Error(), "expected a program") {
		t.Errorf("no command: %v", err)
	}
}
