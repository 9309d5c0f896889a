package trigger

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// slowGitHub answers workflow_dispatch like GitHub, except that the first
// call is held until release is closed (or its caller gives up).
type slowGitHub struct {
	mu      sync.Mutex
	calls   []string // each call's body
	got     chan struct{}
	release chan struct{}
}

func newSlowGitHub(t *testing.T) (*slowGitHub, *httptest.Server) {
	g := &slowGitHub{got: make(chan struct{}), release: make(chan struct{})}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	t.Cleanup(g.unblock)
	return g, srv
}

func (g *slowGitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	g.mu.Lock()
	g.calls = append(g.calls, string(b))
	first := len(g.calls) == 1
	g.mu.Unlock()
	if first {
		close(g.got)
		select {
		case <-g.release:
		case <-r.Context().Done():
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (g *slowGitHub) unblock() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.release:
	default:
		close(g.release)
	}
}

func (g *slowGitHub) n() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.calls)
}

func slowFixture(t *testing.T) (*fixture, *slowGitHub) {
	f := newFixture(t)
	g, api := newSlowGitHub(t)
	f.s.Starter = &Dispatch{API: api.URL, Owner: "acme", Repo: "models", Workflow: "deploy-model.yml", Ref: "main", Token: ghToken}
	return f, g
}

// TestSenderGivingUpNeitherCancelsNorRepeatsTheDispatch: the registry
// timing out while the dispatch is under way does not cancel it, and its
// retry does not start a second one.
func TestSenderGivingUpNeitherCancelsNorRepeatsTheDispatch(t *testing.T) {
	f, g := slowFixture(t)
	sha := "575db8b7a51b6f85eb06eee540738584589f131c"
	ctx, giveUp := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.srv.URL+"/hooks/huggingface", strings.NewReader(hfPayloadFor(sha)))
	req.Header.Set(HFSecretHeader, hfSecret)
	sent := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		sent <- err
	}()
	<-g.got // GitHub has the dispatch
	giveUp()
	<-sent

	// The registry retries while the dispatch is still under way.
	retried := make(chan struct{})
	var code int
	var r Result
	go func() { code, r = f.postHF(t, hfSecret, hfPayloadFor(sha)); close(retried) }()
	select {
	case <-retried:
	case <-time.After(20 * time.Second):
		g.unblock()
		<-retried
		t.Errorf("the retry waited on the dispatch under way")
	}
	if code != http.StatusAccepted || !strings.Contains(r.Reason, "already") {
		t.Errorf("retry during the dispatch: %d %+v, want 202 already ...", code, r)
	}
	g.unblock()
	key := "hf:acme/tiny-chat@" + sha
	waitFor(t, key+" finished", func() bool { return f.s.Store.State(key) == Finished })
	code, r = f.postHF(t, hfSecret, hfPayloadFor(sha))
	if code != http.StatusOK || !strings.Contains(r.Reason, "already released") {
		t.Errorf("retry after the dispatch: %d %+v", code, r)
	}
	if g.n() != 1 {
		t.Errorf("%d dispatches, want 1:\n%s", g.n(), f.logs)
	}
}

// TestSlowDispatchHoldsNoOtherWebhook: while one revision's dispatch hangs,
// another webhook is answered at once (queued) instead of waiting for it.
func TestSlowDispatchHoldsNoOtherWebhook(t *testing.T) {
	f, g := slowFixture(t)
	first := make(chan struct{})
	go func() {
		defer close(first)
		f.postHF(t, hfSecret, hfPayloadFor("1111111111111111111111111111111111111111"))
	}()
	<-g.got
	c := &http.Client{Timeout: 20 * time.Second} // a bound on a hang, not a speed requirement
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/hooks/huggingface", strings.NewReader(hfPayloadFor("2222222222222222222222222222222222222222")))
	req.Header.Set(HFSecretHeader, hfSecret)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("second webhook, while the first dispatch hangs: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("second webhook: %d, want 202 (queued)", resp.StatusCode)
	}
	g.unblock()
	<-first
	waitFor(t, "both dispatched", func() bool { return g.n() == 2 })
}

// TestStartResumesQueuedAndReportsStarted: a trigger that stopped with a
// revision queued starts it when it comes back, once; one it left started
// is reported and not run again; one finished stays released.
func TestStartResumesQueuedAndReportsStarted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "released.json")
	queued := Event{Source: "huggingface", Repo: "acme/tiny-chat", Revision: strings.Repeat("a", 40)}
	started := Event{Source: "mlflow", Repo: "tiny-chat", Revision: "4", Digest: "sha256:" + strings.Repeat("b", 64)}
	finished := Event{Source: "huggingface", Repo: "acme/tiny-chat", Revision: strings.Repeat("c", 40)}
	before, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1_789_999_000, 0).UTC()
	for _, ev := range []Event{queued, started, finished} {
		if _, _, ok, err := before.Queue(ev, "earlier run", at); !ok || err != nil {
			t.Fatalf("queue %s: %v %v", ev.Key(), ok, err)
		}
	}
	if err := before.Set(started.Key(), Started, "", at); err != nil {
		t.Fatal(err)
	}
	if err := before.Set(finished.Key(), Finished, "", at); err != nil {
		t.Fatal(err)
	}

	f := newFixtureAt(t, path) // the trigger comes back
	waitFor(t, queued.Key()+" finished", func() bool { return f.s.Store.State(queued.Key()) == Finished })
	if f.gh.n() != 1 || f.gh.calls[0]["inputs"].(map[string]any)["source"] != queued.Key() {
		t.Errorf("dispatches %v, want one for %s", f.gh.calls, queued.Key())
	}
	logs := f.logs.String()
	for _, want := range []string{
		`"msg":"resuming queued release","store":"` + path + `","key":"` + queued.Key() + `"`,
		`"msg":"release left started by a trigger that stopped: not run again, it may have started; remove its entry from the store to release it again","store":"` + path + `","key":"` + started.Key() + `"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	// The registry's retry of the revision left started starts nothing.
	code, r := f.postMLflow(t, mlflowSecret, "d-1", f.now, mlflowEvent(started.Repo, started.Revision, started.Digest))
	if code != http.StatusAccepted || r.Reason != started.Key()+" is already started" {
		t.Errorf("retry of a started revision: %d %+v", code, r)
	}
	code, r = f.postHF(t, hfSecret, hfPayloadFor(finished.Revision))
	if code != http.StatusOK || r.Reason != finished.Key()+" was already released" {
		t.Errorf("retry of a finished revision: %d %+v", code, r)
	}
	if f.gh.n() != 1 || f.s.Store.State(started.Key()) != Started {
		t.Errorf("%d dispatches, %s %s", f.gh.n(), started.Key(), f.s.Store.State(started.Key()))
	}
}

// TestStoppingLeavesQueuedReleasesQueued: a trigger told to stop ends the
// release under way and starts no other; what is queued stays queued, on
// disk, for the next start.
func TestStoppingLeavesQueuedReleasesQueued(t *testing.T) {
	f, g := slowFixture(t)
	first, second := strings.Repeat("1", 40), strings.Repeat("2", 40)
	answered := make(chan int)
	go func() { code, _ := f.postHF(t, hfSecret, hfPayloadFor(first)); answered <- code }()
	<-g.got
	if code, r := f.postHF(t, hfSecret, hfPayloadFor(second)); code != http.StatusAccepted || r.Status != "queued" {
		t.Errorf("second: %d %+v", code, r)
	}
	f.stop()
	g.unblock()
	f.s.Wait()
	if code := <-answered; code != http.StatusAccepted {
		t.Errorf("first: %d", code)
	}
	reopened, err := OpenStore(f.s.Store.Path())
	if err != nil {
		t.Fatal(err)
	}
	k1, k2 := "hf:acme/tiny-chat@"+first, "hf:acme/tiny-chat@"+second
	if s1, s2 := reopened.State(k1), reopened.State(k2); s1 != Finished || s2 != Queued || g.n() != 1 {
		t.Errorf("after stopping: %s %s, %s %s, %d dispatches", k1, s1, k2, s2, g.n())
	}
}

// TestStoreNotWritable: an event that cannot be recorded is answered 503
// naming the file, and nothing starts.
func TestStoreNotWritable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "released.json")
	f := newFixtureAt(t, path)
	if err := os.WriteFile(filepath.Join(dir, "sub"), nil, 0o644); err != nil { // its directory is now a file
		t.Fatal(err)
	}
	code, r := f.postHF(t, hfSecret, hfPayloadFor(strings.Repeat("d", 40)))
	if code != http.StatusServiceUnavailable || !strings.Contains(r.Reason, "not queued: store "+path) {
		t.Errorf("%d %+v", code, r)
	}
	if f.gh.n() != 0 {
		t.Errorf("%d dispatches", f.gh.n())
	}
}

// TestStoreFile: every change is on disk, in the documented form, with no
// temporary file left; the earlier form of the file reads as finished.
func TestStoreFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "released.json")
	s, _ := OpenStore(path)
	ev := Event{Source: "mlflow", Repo: "m", Revision: "2", Digest: "sha256:" + strings.Repeat("e", 64)}
	now := time.Unix(1_790_000_000, 0).UTC()
	for _, st := range []State{Queued, Started, Finished} {
		if st == Queued {
			s.Queue(ev, "command x", now)
		} else if err := s.Set(ev.Key(), st, "", now); err != nil {
			t.Fatal(err)
		}
		var file struct {
			Revisions map[string]Record `json:"revisions"`
		}
		b, _ := os.ReadFile(path)
		if err := json.Unmarshal(b, &file); err != nil || file.Revisions[ev.Key()].State != st || file.Revisions[ev.Key()].Event != ev {
			t.Errorf("after %s: %s (%v)", st, b, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("files left: %v", entries)
	}
	// Another version with the same weights is the same release.
	if m, r, ok := s.Lookup(Event{Source: "mlflow", Repo: "m", Revision: "3", Digest: ev.Digest}); !ok || m != ev.Digest || r.State != Finished {
		t.Errorf("lookup by digest: %q %+v %v", m, r, ok)
	}

	legacy := filepath.Join(dir, "legacy.json")
	os.WriteFile(legacy, []byte(`{"released": {"hf:a/b@`+strings.Repeat("f", 40)+`": {"at": "2026-01-02T03:04:05Z", "source": "huggingface"}, "`+ev.Digest+`": {"at": "2026-01-02T03:04:05Z"}}}`), 0o644)
	l, err := OpenStore(legacy)
	if err != nil || l.State("hf:a/b@"+strings.Repeat("f", 40)) != Finished || l.State(ev.Digest) != Finished {
		t.Errorf("earlier form: %v %v", l.Keys(""), err)
	}
	os.WriteFile(legacy, []byte(`{"revisions": {"k": {"state": "done"}}}`), 0o644)
	if _, err := OpenStore(legacy); err == nil || !strings.Contains(err.Error(), legacy+`: revision k: state "done": expected queued, started, finished or failed`) {
		t.Errorf("unknown state: %v", err)
	}
}
