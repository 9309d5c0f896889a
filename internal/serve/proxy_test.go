package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/testenv"
	"github.com/modelship/modelship/serving"
)

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// within fails the test if ch does not deliver within a generous bound; it
// guards against hangs, it does not measure speed.
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not happen", what)
		var zero T
		return zero
	}
}

func TestVersionEndpoint(t *testing.T) {
	info := VersionInfo{
		ReleaseID: "20250102-030405-ab12", ServedModelName: "llama", ModelPath: "/models/current", DigestStatus: DigestComputing,
		Image: "ghcr.io/acme/llm:abc", ImageDigest: "sha256:1", GitSHA: "abc",
		DeployedAt: "2025-01-02T03:04:05Z", ModelshipVersion: "v1.0.0", Engine: "vllm", EngineArgv: []string{"vllm", "serve"},
	}
	p := NewProxy(mustURL(t, "http://127.0.0.1:1"), info)
	srv := httptest.NewServer(p)
	defer srv.Close()
	get := func() map[string]any {
		t.Helper()
		resp, err := http.Get(srv.URL + "/version")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET /version = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := get()
	want := map[string]any{
		"release_id": "20250102-030405-ab12", "served_model_name": "llama", "model_path": "/models/current", "digest": "", "digest_status": "computing",
		"image": "ghcr.io/acme/llm:abc", "image_digest": "sha256:1", "git_sha": "abc",
		"deployed_at": "2025-01-02T03:04:05Z", "modelship_version": "v1.0.0", "engine": "vllm", "engine_version": "",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("/version %s = %#v, want %#v", k, m[k], v)
		}
	}
	if argv, ok := m["engine_argv"].([]any); !ok || len(argv) != 2 || argv[0] != "vllm" {
		t.Errorf("/version engine_argv = %#v, want the engine's command line", m["engine_argv"])
	}
	if len(m) != len(want)+1 {
		t.Errorf("/version has keys %v, want exactly %d", m, len(want))
	}

	p.SetDigest("sha256:beef", nil)
	p.SetEngineVersion("0.6.3")
	m = get()
	if m["digest"] != "sha256:beef" || m["digest_status"] != "computed" || m["engine_version"] != "0.6.3" {
		t.Errorf("after SetDigest/SetEngineVersion: %v", m)
	}
	p.SetDigest("", io.ErrUnexpectedEOF)
	m = get()
	if m["digest"] != "" || m["digest_status"] != "failed" || m["digest_error"] != "unexpected EOF" {
		t.Errorf("after a failed digest: %v", m)
	}

	resp, err := http.Post(srv.URL+"/version", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /version = %d, want 405", resp.StatusCode)
	}
}

// fakeEngineHandler is an in-process engine whose readiness answers are set
// per test case.
type fakeEngineHandler struct {
	health     int
	models     []string
	genStatus  int
	genBody    string
	calls      atomic.Int32
	lastPrompt atomic.Value
}

func (f *fakeEngineHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	switch r.URL.Path {
	case "/health":
		w.WriteHeader(f.health)
	case "/v1/models":
		data := []map[string]string{}
		for _, m := range f.models {
			data = append(data, map[string]string{"id": m, "object": "model"})
		}
		json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data})
	case "/v1/completions":
		b, _ := io.ReadAll(r.Body)
		f.lastPrompt.Store(string(b))
		w.WriteHeader(f.genStatus)
		io.WriteString(w, f.genBody)
	default:
		http.NotFound(w, r)
	}
}

func TestReady(t *testing.T) {
	okGen := `{"choices":[{"text":"!"}]}`
	tests := []struct {
		name       string
		engine     *fakeEngineHandler
		wantCode   int
		wantCheck  string
		wantReason string
	}{
		{name: "loading", engine: &fakeEngineHandler{health: 503, models: []string{"llama"}, genStatus: 200, genBody: okGen},
			wantCode: 503, wantCheck: "health", wantReason: "engine GET /health returned 503"},
		{name: "model missing", engine: &fakeEngineHandler{health: 200, models: []string{"other", "mistral"}, genStatus: 200, genBody: okGen},
			wantCode: 503, wantCheck: "models", wantReason: `served model "llama" is not in engine GET /v1/models (listed: other, mistral)`},
		{name: "no models", engine: &fakeEngineHandler{health: 200, genStatus: 200, genBody: okGen},
			wantCode: 503, wantCheck: "models", wantReason: "(listed: none)"},
		{name: "generation fails", engine: &fakeEngineHandler{health: 200, models: []string{"llama"}, genStatus: 500, genBody: `{"error":"CUDA out of memory"}`},
			wantCode: 503, wantCheck: "generation", wantReason: `returned 500: {"error":"CUDA out of memory"}`},
		{name: "generation without choices", engine: &fakeEngineHandler{health: 200, models: []string{"llama"}, genStatus: 200, genBody: `{"choices":[]}`},
			wantCode: 503, wantCheck: "generation", wantReason: "without choices"},
		{name: "ready", engine: &fakeEngineHandler{health: 200, models: []string{"llama"}, genStatus: 200, genBody: okGen},
			wantCode: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eng := httptest.NewServer(tt.engine)
			defer eng.Close()
			p := NewProxy(mustURL(t, eng.URL), VersionInfo{ServedModelName: "llama"})
			p.ReadyTTL = time.Hour
			srv := httptest.NewServer(p)
			defer srv.Close()
			ready := func() ReadyStatus {
				resp, err := http.Get(srv.URL + "/ready")
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var st ReadyStatus
				if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != tt.wantCode {
					t.Fatalf("GET /ready = %d %+v, want %d", resp.StatusCode, st, tt.wantCode)
				}
				return st
			}
			st := ready()
			if st.Check != tt.wantCheck || !strings.Contains(st.Reason, tt.wantReason) || st.Model != "llama" {
				t.Fatalf("ready = %+v, want check %q reason containing %q", st, tt.wantCheck, tt.wantReason)
			}
			calls := tt.engine.calls.Load()
			ready()
			if tt.wantCode == 200 {
				if got := tt.engine.calls.Load(); got != calls {
					t.Errorf("a cached success still asked the engine (%d calls, then %d)", calls, got)
				}
				var gen map[string]any
				json.Unmarshal([]byte(tt.engine.lastPrompt.Load().(string)), &gen)
				if gen["model"] != "llama" || gen["max_tokens"] != 1.0 || gen["temperature"] != 0.0 {
					t.Errorf("generation request = %v, want model llama, max_tokens 1, temperature 0", gen)
				}
			} else if got := tt.engine.calls.Load(); got == calls {
				t.Errorf("a failure was cached; probes must re-check")
			}
		})
	}
}

func TestReadyEngineDown(t *testing.T) {
	eng := httptest.NewServer(http.NotFoundHandler())
	eng.Close()
	p := NewProxy(mustURL(t, eng.URL), VersionInfo{ServedModelName: "llama"})
	st := p.Ready(context.Background())
	if st.Ready || st.Check != "health" || !strings.Contains(st.Reason, "connection refused") {
		t.Fatalf("ready = %+v, want not ready at health with connection refused", st)
	}
}

func TestProxyStreamsWithoutBuffering(t *testing.T) {
	release := make(chan struct{})
	eng := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Request-Id", "req-1")
		io.WriteString(w, "data: {\"chunk\":1}\n\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "data: {\"chunk\":2}\n\ndata: [DONE]\n\n")
	}))
	defer eng.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	srv := httptest.NewServer(NewProxy(mustURL(t, eng.URL), VersionInfo{}))
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("X-Request-Id") != "req-1" {
		t.Errorf("headers not passed through: %v", resp.Header)
	}
	rd := bufio.NewReader(resp.Body)
	first := make(chan string, 1)
	go func() {
		line, _ := rd.ReadString('\n')
		first <- line
	}()
	// Chunk 2 is held back until chunk 1 has arrived through the proxy.
	if line := within(t, first, "chunk 1 arriving before chunk 2 is released (the proxy buffers)"); line != "data: {\"chunk\":1}\n" {
		t.Fatalf("first line = %q", line)
	}
	close(release)
	rest, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	if string(rest) != "\ndata: {\"chunk\":2}\n\ndata: [DONE]\n\n" {
		t.Fatalf("rest = %q", rest)
	}
}

// An engine may answer (the first token of a stream) before it has read
// the whole request body. The proxy must keep sending the body while the
// answer streams back (full duplex): by default Go's server discards and
// closes a request body that is unread when the response starts, which
// here blocked the answer or, when the transport was still sending the
// body, closed the engine connection mid-stream (the drain test's flake).
func TestProxyIsFullDuplex(t *testing.T) {
	eng := testenv.DuplexUpstream(t)
	srv := httptest.NewServer(NewProxy(mustURL(t, eng.URL), VersionInfo{}))
	defer srv.Close()
	testenv.CheckDuplex(t, srv.URL+"/v1/chat/completions")
}

func TestProxyPassesThroughStatusHeadersAndBody(t *testing.T) {
	eng := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Echo-Path", r.URL.RequestURI())
		w.Header().Set("X-Echo-Auth", r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusTeapot)
		w.Write(b)
	}))
	defer eng.Close()
	srv := httptest.NewServer(NewProxy(mustURL(t, eng.URL), VersionInfo{}))
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/v1/embeddings?x=1", strings.NewReader(`{"input":"hi"}`))
	req.Header.Set("Authorization", "Bearer k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusTeapot || string(body) != `{"input":"hi"}` ||
		resp.Header.Get("X-Echo-Path") != "/v1/embeddings?x=1" || resp.Header.Get("X-Echo-Auth") != "Bearer k" {
		t.Fatalf("got %d %q %v", resp.StatusCode, body, resp.Header)
	}
}

func TestProxyEngineNotListening(t *testing.T) {
	eng := httptest.NewServer(http.NotFoundHandler())
	eng.Close()
	srv := httptest.NewServer(NewProxy(mustURL(t, eng.URL), VersionInfo{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&e)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(e.Error.Message, "not accepting connections") {
		t.Fatalf("GET /health with the engine down = %d %q, want 503", resp.StatusCode, e.Error.Message)
	}
}

func TestProxyPassesClientCancellationToEngine(t *testing.T) {
	engineSawCancel := make(chan struct{})
	eng := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		close(engineSawCancel)
	}))
	defer eng.Close()
	srv := httptest.NewServer(NewProxy(mustURL(t, eng.URL), VersionInfo{}))
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/completions", strings.NewReader(`{"stream":true}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	cancel() // the client hangs up mid-stream
	within(t, engineSawCancel, "the engine seeing the client's cancellation")
}

// The pre-stop hook: the public port has no drain (one request there
// would empty a Service); on the admin handler, after GET /-/drain every
// response asks the client to close its connection and /ready says the
// replica is going away, and the drain ends when no shutdown follows it.
func TestDrainHook(t *testing.T) {
	eng := httptest.NewServer(&fakeEngineHandler{health: 200, models: []string{"llama"}, genStatus: 200, genBody: `{"choices":[{"text":"!"}]}`})
	defer eng.Close()
	p := NewProxy(mustURL(t, eng.URL), VersionInfo{ServedModelName: "llama"})
	p.DrainHold = 300 * time.Millisecond
	srv := httptest.NewServer(p)
	defer srv.Close()
	admin := httptest.NewServer(p.AdminHandler())
	defer admin.Close()
	get := func(base, path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	if resp, _ := get(srv.URL, "/v1/models"); resp.Close || resp.StatusCode != 200 {
		t.Fatalf("before the drain: status %d, close %v", resp.StatusCode, resp.Close)
	}
	if resp, _ := get(srv.URL, serving.DrainPath+"?wait=10ms"); resp.StatusCode != 404 {
		t.Fatalf("drain on the public port: %d, want 404", resp.StatusCode)
	}
	if resp, body := get(srv.URL, "/ready"); resp.StatusCode != 200 || resp.Close {
		t.Fatalf("after a drain request on the public port /ready = %d %s (close %v), want still ready", resp.StatusCode, body, resp.Close)
	}
	if resp, body := get(admin.URL, serving.DrainPath+"?wait=2m"); resp.StatusCode != 400 || !strings.Contains(body, "0s to 60s") {
		t.Fatalf("wait=2m: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(srv.URL, "/v1/models"); resp.Close {
		t.Fatal("a refused drain request started draining")
	}
	if resp, body := get(admin.URL, serving.DrainPath+"?wait=10ms"); resp.StatusCode != 200 || !strings.Contains(body, `"draining": true`) {
		t.Fatalf("drain: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(srv.URL, "/v1/models"); !resp.Close || resp.StatusCode != 200 {
		t.Fatalf("after the drain: status %d, close %v; want 200 with Connection: close", resp.StatusCode, resp.Close)
	}
	if resp, body := get(srv.URL, "/ready"); resp.StatusCode != 503 || !strings.Contains(body, `"check": "draining"`) {
		t.Fatalf("/ready while draining: %d %s", resp.StatusCode, body)
	}
	testenv.Eventually(t, 5*time.Second, "the drain to end with no shutdown after it", func() bool {
		resp, _ := get(srv.URL, "/ready")
		return resp.StatusCode == 200 && !resp.Close
	})
}

// TestProxyRequiresAPIKey: with a key, /v1/ routes answer 401 without it or
// with a wrong one, and pass with "Authorization: Bearer KEY" or "api-key:
// KEY"; /ready, /version and /health stay open, as vLLM's --api-key leaves
// them. The engine never sees the api-key header.
func TestProxyRequiresAPIKey(t *testing.T) {
	var engineSaw atomic.Value
	eng := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		engineSaw.Store(r.Header.Get("Api-Key"))
		w.Write([]byte(`{"object":"list","data":[]}`))
	}))
	defer eng.Close()
	p := NewProxy(mustURL(t, eng.URL), VersionInfo{})
	p.APIKey = "s3cret"
	srv := httptest.NewServer(p)
	defer srv.Close()
	cases := []struct {
		path, header, value string
		want                int
	}{
		{"/v1/models", "", "", http.StatusUnauthorized},
		{"/v1/models", "Authorization", "Bearer wrong", http.StatusUnauthorized},
		{"/v1/models", "Authorization", "s3cret", http.StatusUnauthorized}, // not a Bearer
		{"/v1/models", "Api-Key", "s3cre", http.StatusUnauthorized},
		{"/v1/models", "Authorization", "Bearer s3cret", http.StatusOK},
		{"/v1/models", "Authorization", "bearer s3cret", http.StatusOK},
		{"/v1/models", "Api-Key", "s3cret", http.StatusOK},
		{"/health", "", "", http.StatusOK},
		{"/version", "", "", http.StatusOK},
	}
	for _, c := range cases {
		req, _ := http.NewRequest("GET", srv.URL+c.path, nil)
		if c.header != "" {
			req.Header.Set(c.header, c.value)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("GET %s with %s %q: %d %s, want %d", c.path, c.header, c.value, resp.StatusCode, body, c.want)
		}
		if resp.StatusCode == http.StatusUnauthorized && strings.Contains(string(body), "s3cret") {
			t.Errorf("the 401 repeats the key: %s", body)
		}
	}
	if v, _ := engineSaw.Load().(string); v != "" {
		t.Errorf("the engine saw api-key %q", v)
	}
}

func TestEngineEnvironHasNoAPIKey(t *testing.T) {
	got := engineEnviron([]string{"PATH=/bin", "VLLM_API_KEY=k", "MODELSHIP_ADMIN_TOKEN=a", "HF_TOKEN=t", "VLLM_API_KEY_X=1"})
	want := []string{"PATH=/bin", "HF_TOKEN=t", "VLLM_API_KEY_X=1"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("engine environment %q, want %q", got, want)
	}
}

// The admin socket: a file left by a serve that is gone is replaced; one a
// live serve answers on is not taken over.
func TestListenAdmin(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := listenAdmin(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := listenAdmin(path); err == nil || !strings.Contains(err.Error(), "another modelship serve is listening") {
		t.Errorf("second serve on a live socket: %v", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // a crashed serve: the file stays, nobody answers
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	ln, err = listenAdmin(path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ln.Close()
}
