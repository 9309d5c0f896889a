package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/serve"
	"github.com/modelship/modelship/internal/sim"
	"github.com/modelship/modelship/internal/testenv"
)

const models = "../../testdata/models/"

// release starts a sim engine on a test checkpoint behind modelship
// serve's proxy (real /ready and /version), serving the model "m" fast,
// and returns the release's base URL.
func release(t *testing.T, model, digest string, opt sim.Options) string {
	t.Helper()
	opt.ServedModelName = "m"
	_, eng := testenv.SimServer(t, models+model, func(tb *sim.Table) {
		tb.Latency = sim.Latency{TTFTms: 1, ITLms: 0.2}
	}, opt)
	u, _ := url.Parse(eng)
	p := serve.NewProxy(u, serve.VersionInfo{ServedModelName: "m", Digest: digest, DigestStatus: serve.DigestProvided})
	ts := httptest.NewServer(p)
	t.Cleanup(ts.Close)
	return ts.URL
}

// load sends chat completions through the gateway from workers goroutines
// without pause, alternating streamed and not, until stopped, counting the
// replies naming Paris (the good model) and Lyon (the regressed one);
// anything else is a failure.
type load struct {
	*testenv.Load
	paris, lyon atomic.Int64
}

func startLoad(base string, workers int) *load {
	l := &load{}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: workers}}
	l.Load = testenv.StartLoad(workers, func(w, i int) error {
		reply, err := chat(context.Background(), client, base, (i+w)%2 == 0, "What is the capital of France?")
		switch {
		case err != nil:
			return err
		case strings.Contains(reply, "Paris"):
			l.paris.Add(1)
		case strings.Contains(reply, "Lyon"):
			l.lyon.Add(1)
		default:
			return fmt.Errorf("unexpected reply %q", reply)
		}
		return nil
	})
	return l
}

// running is a gateway served on loopback TCP and a unix admin socket.
type running struct {
	g      *Gateway
	url    string // public base URL
	sock   string
	client *Client
	stop   func() error // cancels Serve and returns its error
}

func startGateway(t *testing.T, opt Options) *running {
	t.Helper()
	if opt.Logger == nil {
		opt.Logger = testLogger(t)
	}
	g, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A short directory: unix socket paths are limited to ~108 bytes.
	dir, err := os.MkdirTemp("", "gw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "admin.sock")
	adm, err := ListenAdmin(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, pub, adm, 10*time.Second) }()
	var once sync.Once
	var serr error
	stop := func() error {
		once.Do(func() { cancel(); serr = <-done })
		return serr
	}
	t.Cleanup(func() { stop() })
	return &running{g: g, url: "http://" + pub.Addr().String(), sock: sock, client: &Client{Socket: "unix://" + sock}, stop: stop}
}

// chat sends one chat completion, streamed or not, and returns the reply
// text; any non-200, malformed or truncated answer is an error.
func chat(ctx context.Context, c *http.Client, base string, stream bool, prompt string) (string, error) {
	body, _ := json.Marshal(map[string]any{
		"model": "m", "stream": stream, "max_tokens": 16, "temperature": 0,
		"messages": []map[string]string{{"role": "user", "content": prompt}},
	})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	if !stream {
		var out struct {
			Choices []struct {
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return "", err
		}
		if len(out.Choices) == 0 || out.Choices[0].Message.Content == "" {
			return "", errors.New("empty completion")
		}
		return out.Choices[0].Message.Content, nil
	}
	var text strings.Builder
	sc := bufio.NewScanner(resp.Body)
	done := false
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if line == "[DONE]" {
			done = true
			break
		}
		var ch struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(line), &ch); err != nil {
			return "", fmt.Errorf("bad event %q: %v", line, err)
		}
		for _, c := range ch.Choices {
			text.WriteString(c.Delta.Content)
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if !done {
		return "", errors.New("stream ended without [DONE]")
	}
	return text.String(), nil
}

func TestSwitchUnderLoadLosesNothing(t *testing.T) {
	a := release(t, "good", "sha256:aaaa", sim.Options{})
	b := release(t, "regressed", "sha256:bbbb", sim.Options{})
	gw := startGateway(t, Options{Upstream: a})
	ctx := context.Background()

	const workers = 8
	const minRequests = 2000
	const minSwitches = 6
	l := startLoad(gw.url, workers)
	// Switch back and forth while the load runs, each time once enough
	// requests went through, and wait for the old release to drain; an
	// even number of times, so that a is active at the end.
	switches := 0
	targets := []string{b, a}
	for switches < minSwitches || l.Requests() < minRequests || switches%2 != 0 {
		l.WaitMore(minRequests / minSwitches / 2)
		to := targets[switches%2]
		res, err := gw.client.Switch(ctx, to, SwitchOptions{})
		if err != nil {
			t.Fatalf("switch %d to %s: %v", switches+1, to, err)
		}
		if !res.Changed || res.Active != to {
			t.Fatalf("switch %d: %+v", switches+1, res)
		}
		dr, err := gw.client.WaitDrained(ctx, res.Previous, 30*time.Second)
		if err != nil || !dr.Drained || dr.InFlight != 0 {
			t.Fatalf("drain of %s after switch %d: %+v, %v", res.Previous, switches+1, dr, err)
		}
		switches++
	}
	sent, failed, errs := l.Stop()
	fromA, fromB := l.paris.Load(), l.lyon.Load()
	// A client can read the end of a reply a moment before the gateway's
	// handler returns and counts the request out: wait for that, bounded.
	var st State
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		s, err := gw.client.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st = *s
		if st.InFlight == 0 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("gateway under load: %d requests (streamed and non-streamed alternating, %d workers), %d failed, %d switches, each followed by a drain of the old release; answered by good %d, by regressed %d; gateway errors %d, retries %d",
		sent, workers, failed, switches, fromA, fromB, st.Errors, st.Retries)
	if failed != 0 {
		t.Fatalf("%d of %d requests failed across %d switches; first: %q", failed, sent, switches, errs)
	}
	if sent < minRequests {
		t.Fatalf("only %d requests", sent)
	}
	if fromA == 0 || fromB == 0 {
		t.Fatalf("both releases should have answered: good %d, regressed %d", fromA, fromB)
	}
	if st.Errors != 0 || st.InFlight != 0 || st.Requests != uint64(sent) {
		t.Fatalf("state after the load: %+v (sent %d)", st, sent)
	}
	if st.Active != a || st.Previous != b {
		t.Fatalf("after an even number of switches active should be %s and previous %s: %+v", a, b, st)
	}
}

// TestDeployCyclesLoseNothing runs what a deploy does, several times under
// load: start a new release, switch to it, wait for the old one to drain,
// then stop the old one. No request may reach a stopped release.
func TestDeployCyclesLoseNothing(t *testing.T) {
	type rel struct {
		url  string
		stop func()
	}
	start := func(model string) rel {
		_, eng := testenv.SimServer(t, models+model, func(tb *sim.Table) {
			tb.Latency = sim.Latency{TTFTms: 1, ITLms: 0.2}
		}, sim.Options{ServedModelName: "m"})
		u, _ := url.Parse(eng)
		ts := httptest.NewServer(serve.NewProxy(u, serve.VersionInfo{ServedModelName: "m"}))
		t.Cleanup(ts.Close)
		return rel{ts.URL, ts.Close}
	}
	cur := start("good")
	gw := startGateway(t, Options{Upstream: cur.url})
	l := startLoad(gw.url, 8)
	const deploys = 5
	for i := range deploys {
		l.WaitMore(200)
		next := start([]string{"regressed", "good"}[i%2])
		res, err := gw.client.Switch(context.Background(), next.url, SwitchOptions{})
		if err != nil || res.Previous != cur.url {
			t.Fatalf("deploy %d: switch %+v, %v", i+1, res, err)
		}
		if dr, err := gw.client.WaitDrained(context.Background(), cur.url, 30*time.Second); err != nil || !dr.Drained {
			t.Fatalf("deploy %d: drain %+v, %v", i+1, dr, err)
		}
		cur.stop() // the old release's container is removed
		cur = next
	}
	l.WaitMore(200)
	sent, failed, errs := l.Stop()
	st := gw.g.State()
	t.Logf("%d deploys (start, switch, drain, stop old) under load: %d requests, %d failed; gateway errors %d, retries %d", deploys, sent, failed, st.Errors, st.Retries)
	if failed != 0 || st.Errors != 0 {
		t.Fatalf("%d of %d requests failed; first: %q", failed, sent, errs)
	}
	if len(st.Upstreams) > 2 {
		t.Fatalf("the gateway should forget releases it no longer needs: %+v", st.Upstreams)
	}
}

// gatedStream is a release whose streamed answers send a first event, then
// wait for release before finishing; other requests answer at once with
// its name.
type gatedStream struct {
	name    string
	started chan struct{} // one value per stream that sent its first event
	release chan struct{}
	srv     *httptest.Server
}

func newGatedStream(t *testing.T, name string) *gatedStream {
	gs := &gatedStream{name: name, started: make(chan struct{}, 16), release: make(chan struct{})}
	gs.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/ready" {
			w.WriteHeader(http.StatusOK)
			return
		}
		if r.URL.Query().Get("stream") == "" {
			io.WriteString(w, name)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: %s-1\n\n", name)
		w.(http.Flusher).Flush()
		gs.started <- struct{}{}
		select {
		case <-gs.release:
		case <-r.Context().Done():
			return
		}
		fmt.Fprintf(w, "data: %s-2\n\ndata: [DONE]\n\n", name)
	}))
	t.Cleanup(gs.srv.Close)
	return gs
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return send(t, http.DefaultClient, req)
}

// send does req with c and returns the answer's status and body.
func send(t *testing.T, c *http.Client, req *http.Request) (int, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestStreamInFlightAcrossSwitchFinishesOnOld(t *testing.T) {
	a, b := newGatedStream(t, "A"), newGatedStream(t, "B")
	gw := startGateway(t, Options{Upstream: a.srv.URL})
	ctx := context.Background()

	resp, err := http.Get(gw.url + "/stream?stream=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, _ := br.ReadString('\n'); line != "data: A-1\n" {
		t.Fatalf("first event %q", line)
	}
	<-a.started

	if _, err := gw.client.Switch(ctx, b.srv.URL, SwitchOptions{}); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, gw.url+"/x"); code != 200 || body != "B" {
		t.Fatalf("a new request after the switch went to %q (%d), want B", body, code)
	}
	st, _ := gw.client.State(ctx)
	if st.Active != b.srv.URL || st.Previous != a.srv.URL || st.Upstreams[1].URL != a.srv.URL || st.Upstreams[1].InFlight != 1 {
		t.Fatalf("state with one stream left on A: %+v", st)
	}
	// Not drained while the stream runs: a short wait times out with 408.
	_, err = gw.client.WaitDrained(ctx, a.srv.URL, 20*time.Millisecond)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusRequestTimeout || ae.InFlight != 1 || !strings.Contains(ae.Message, "1 request(s) in flight") {
		t.Fatalf("wait-drained with a stream in flight: %v", err)
	}
	// Waiting on the active release is refused.
	if _, err := gw.client.WaitDrained(ctx, b.srv.URL, time.Second); !errors.As(err, &ae) || ae.Status != http.StatusConflict {
		t.Fatalf("wait-drained on the active release: %v", err)
	}

	drained := make(chan *DrainResult, 1)
	go func() {
		dr, err := gw.client.WaitDrained(ctx, a.srv.URL, time.Minute)
		if err != nil {
			t.Error(err)
		}
		drained <- dr
	}()
	close(a.release)
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	if string(rest) != "\ndata: A-2\n\ndata: [DONE]\n\n" {
		t.Fatalf("rest of the stream %q, want it from A", rest)
	}
	dr := <-drained
	if dr == nil || !dr.Drained || dr.InFlight != 0 || dr.Upstream != a.srv.URL {
		t.Fatalf("drain result %+v", dr)
	}
}

func TestSwitchRefusedUnlessReady(t *testing.T) {
	good := release(t, "good", "sha256:aaaa", sim.Options{})
	never := release(t, "good", "sha256:cccc", sim.Options{NeverReady: true})
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	gw := startGateway(t, Options{Upstream: good})
	ctx := context.Background()

	for _, tc := range []struct {
		name, to, want string
	}{
		{"engine never ready", never, "GET " + never + "/ready answered 503: health check: engine GET /health returned 503"},
		{"nothing listening", gone.URL, "GET " + gone.URL + "/ready: "},
	} {
		_, err := gw.client.Switch(ctx, tc.to, SwitchOptions{ReadyTimeout: 5 * time.Second})
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusConflict || !strings.Contains(ae.Message, tc.want) || !strings.HasPrefix(ae.Message, "switch refused: upstream is not ready") {
			t.Errorf("%s: switch error %v, want 409 containing %q", tc.name, err, tc.want)
		}
		if a := gw.g.Active(); a != good {
			t.Errorf("%s: active is %s after a refused switch", tc.name, a)
		}
	}
	// A malformed upstream is a 400 naming the field.
	_, err := gw.client.Switch(ctx, "release-b:8000", SwitchOptions{})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, "field upstream") {
		t.Errorf("malformed upstream: %v", err)
	}
	// --skip-ready switches anyway.
	if res, err := gw.client.Switch(ctx, never, SwitchOptions{SkipReady: true}); err != nil || res.Active != never || res.Previous != good {
		t.Errorf("skip-ready switch: %+v, %v", res, err)
	}
}

func TestNoActiveReleaseAndHealth(t *testing.T) {
	gw := startGateway(t, Options{})
	code, body := get(t, gw.url+"/v1/models")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"message": "no release is active"`) {
		t.Fatalf("no upstream: %d %s", code, body)
	}
	code, body = get(t, gw.url+HealthPath)
	if code != http.StatusOK || !strings.Contains(body, `"active": false`) {
		t.Fatalf("health: %d %s", code, body)
	}
	st, _ := gw.client.State(context.Background())
	if st.NoActive != 1 || st.Active != "" {
		t.Fatalf("state %+v", st)
	}
}

// The gateway lets an answer start while the request body is still being
// sent, as modelship serve's proxy does (see testenv.CheckDuplex).
func TestGatewayIsFullDuplex(t *testing.T) {
	up := testenv.DuplexUpstream(t)
	gw := startGateway(t, Options{Upstream: up.URL})
	testenv.CheckDuplex(t, gw.url+"/v1/chat/completions")
}

func TestUpstreamDownIsA503(t *testing.T) {
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	gw := startGateway(t, Options{Upstream: gone.URL})
	code, body := get(t, gw.url+"/v1/models")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "is not accepting connections") || !strings.Contains(body, `"type": "release_unavailable"`) {
		t.Fatalf("%d %s", code, body)
	}
	st, _ := gw.client.State(context.Background())
	if st.Errors != 1 || st.Retries != 0 || st.Upstreams[0].Errors != 1 { // no other release to send it to
		t.Fatalf("state %+v", st)
	}
}

// switchingDialer refuses the first dial to old and switches the gateway
// to new in that same moment: a connection failing right at the switch.
type switchingDialer struct {
	old, new string
	g        atomic.Pointer[Gateway]
	once     sync.Once
}

func (d *switchingDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if "http://"+addr == d.old {
		refused := false
		d.once.Do(func() {
			refused = true
			if _, err := d.g.Load().Switch(ctx, d.new, false, 0); err != nil {
				panic(err)
			}
		})
		if refused {
			return nil, &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("connect", errConnRefused)}
		}
	}
	return (&net.Dialer{}).DialContext(ctx, network, addr)
}

func TestRefusedAtTheSwitchIsRetriedOnTheNewRelease(t *testing.T) {
	var gotBody atomic.Value
	newRel := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotBody.Store(string(b))
		io.WriteString(w, "new")
	}))
	defer newRel.Close()
	oldRel := httptest.NewServer(http.NotFoundHandler())
	defer oldRel.Close()
	d := &switchingDialer{old: oldRel.URL, new: newRel.URL}
	gw := startGateway(t, Options{Upstream: oldRel.URL, Transport: &http.Transport{Proxy: nil, DialContext: d.dial}})
	d.g.Store(gw.g)

	resp, err := http.Post(gw.url+"/v1/chat/completions", "application/json", strings.NewReader(`{"prompt":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "new" || gotBody.Load() != `{"prompt":"x"}` {
		t.Fatalf("retried request: %d %q, new release got body %v", resp.StatusCode, body, gotBody.Load())
	}
	// The client has the whole answer before the gateway's handler returns.
	testenv.Eventually(t, 5*time.Second, "the request out of flight", func() bool { return gw.g.State().InFlight == 0 })
	st := gw.g.State()
	if st.Retries != 1 || st.Errors != 0 || st.InFlight != 0 {
		t.Fatalf("state %+v", st)
	}
}

func TestNotRetriedOnceSent(t *testing.T) {
	// The release reads the request and drops the connection: the request
	// reached it, so it must not be sent again (generation is not
	// idempotent).
	var seen atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err == nil {
					io.Copy(io.Discard, req.Body)
					seen.Add(1)
				}
				c.Close()
			}()
		}
	}()
	gw := startGateway(t, Options{Upstream: "http://" + ln.Addr().String()})
	resp, err := http.Post(gw.url+"/v1/chat/completions", "application/json", strings.NewReader(`{"prompt":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || seen.Load() != 1 {
		t.Fatalf("status %d (%s), release saw %d requests; want 502 and exactly 1", resp.StatusCode, body, seen.Load())
	}
	if st := gw.g.State(); st.Retries != 0 || st.Errors != 1 {
		t.Fatalf("state %+v", st)
	}
}

func TestStateFileSurvivesRestart(t *testing.T) {
	a, b := newGatedStream(t, "A"), newGatedStream(t, "B")
	path := filepath.Join(t.TempDir(), "state", "gateway.json")
	gw := startGateway(t, Options{StatePath: path, Upstream: a.srv.URL})
	if _, err := gw.client.Switch(context.Background(), b.srv.URL, SwitchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := gw.stop(); err != nil {
		t.Fatal(err)
	}
	// The restarted container has the same flags (--upstream A), but the
	// state file says B is live.
	gw2 := startGateway(t, Options{StatePath: path, Upstream: a.srv.URL})
	if code, body := get(t, gw2.url+"/x"); code != 200 || body != "B" {
		t.Fatalf("after restart the gateway sent to %q (%d), want B", body, code)
	}
	st := gw2.g.State()
	if st.Active != b.srv.URL || st.Previous != a.srv.URL || st.SwitchedAt.IsZero() {
		t.Fatalf("state after restart %+v", st)
	}
	// No temporary files are left beside it.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("state directory holds %d entries, want only gateway.json", len(entries))
	}

	// A state file that cannot be understood stops the gateway with its name.
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"active": "ftp://x"}`), 0o644)
	_, err := New(Options{StatePath: bad, Upstream: a.srv.URL})
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "field active") {
		t.Fatalf("bad state file: %v", err)
	}
}

func TestAdminIsNotOnThePublicPort(t *testing.T) {
	var paths []string
	var mu sync.Mutex
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.Method+" "+r.URL.Path)
		mu.Unlock()
		http.NotFound(w, r)
	}))
	defer up.Close()
	other := newGatedStream(t, "B")
	gw := startGateway(t, Options{Upstream: up.URL})
	for _, p := range []string{"/state", "/switch", "/drain-wait"} {
		resp, err := http.Post(gw.url+p, "application/json", strings.NewReader(`{"upstream":"`+other.srv.URL+`","require_ready":false}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s on the public port: %d, want the release's 404", p, resp.StatusCode)
		}
	}
	if gw.g.Active() != up.URL {
		t.Fatalf("a POST /switch on the public port switched to %s", gw.g.Active())
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(paths, ",") != "POST /state,POST /switch,POST /drain-wait" {
		t.Fatalf("release saw %v; the public port must proxy these paths", paths)
	}
}

func TestStopDrainsInFlight(t *testing.T) {
	a := newGatedStream(t, "A")
	gw := startGateway(t, Options{Upstream: a.srv.URL})
	resp, err := http.Get(gw.url + "/s?stream=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-a.started
	stopped := make(chan error, 1)
	go func() { stopped <- gw.stop() }()
	// Serve is draining: it must not return while the stream runs. New
	// connections are refused meanwhile.
	testenv.Eventually(t, 10*time.Second, "the draining gateway refuses new connections", func() bool {
		c, err := net.Dial("tcp", strings.TrimPrefix(gw.url, "http://"))
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	select {
	case err := <-stopped:
		t.Fatalf("Serve returned (%v) with a stream in flight", err)
	default:
	}
	close(a.release)
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != "data: A-1\n\ndata: A-2\n\ndata: [DONE]\n\n" {
		t.Fatalf("stream during shutdown: %q, %v", body, err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

func TestParseUpstream(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"http://release-a:8000", "http://release-a:8000", ""},
		{"http://release-a:8000/", "http://release-a:8000", ""},
		{"https://10.0.0.2", "https://10.0.0.2", ""},
		{"", "", "upstream is empty"},
		{"release-a:8000", "", "scheme must be http or https"},
		{"http://", "", "has no host"},
		{"http://a:8000/v1", "", "without path or query"},
		{"http://a:8000?x=1", "", "without path or query"},
		{"http://u:p@a:8000", "", "credentials"},
	} {
		u, err := ParseUpstream(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseUpstream(%q) error %v, want %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || u.String() != tc.want):
			t.Errorf("ParseUpstream(%q) = %v, %v; want %s", tc.in, u, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), ":p@") {
			t.Errorf("ParseUpstream(%q) error shows the password: %v", tc.in, err)
		}
	}
}

func TestParseAdmin(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"unix:///run/modelship/gateway.sock", "/run/modelship/gateway.sock", ""},
		{"/tmp/gw.sock", "/tmp/gw.sock", ""},
		{"unix://", "", "has no path"},
		{"tcp://127.0.0.1:9000", "", "only unix sockets"},
		{"", "", "empty"},
	} {
		got, err := ParseAdmin(tc.in)
		if (tc.err == "" && (err != nil || got != tc.want)) || (tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err))) {
			t.Errorf("ParseAdmin(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func TestAdminSocketInUse(t *testing.T) {
	gw := startGateway(t, Options{})
	if _, err := ListenAdmin(gw.sock); err == nil || !strings.Contains(err.Error(), "another gateway is listening") {
		t.Fatalf("second listener on a live socket: %v", err)
	}
	f := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(f, nil, 0o644)
	if _, err := ListenAdmin(f); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("regular file in the way: %v", err)
	}
}

// The active release's engine dies right after the switch (before the
// deploy notices and switches back): requests it refuses go to the
// previous release, still up, instead of failing.
func TestActiveDownFallsBackToPrevious(t *testing.T) {
	oldRel := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "old") }))
	defer oldRel.Close()
	newRel := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "new") }))
	gw := startGateway(t, Options{Upstream: oldRel.URL})
	if _, err := gw.g.Switch(context.Background(), newRel.URL, false, 0); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, gw.url+"/v1/models"); code != 200 || body != "new" {
		t.Fatalf("after the switch: %d %q", code, body)
	}
	newRel.Close() // its engine dies
	for i := 0; i < 5; i++ {
		if code, body := get(t, gw.url+"/v1/models"); code != 200 || body != "old" {
			t.Fatalf("request %d with the active release down: %d %q, want the previous release's answer", i, code, body)
		}
	}
	// A request leaves the gateway's count just after its answer is sent.
	testenv.Eventually(t, 5*time.Second, "the last request out of flight", func() bool { return gw.g.State().InFlight == 0 })
	if st := gw.g.State(); st.Errors != 0 || st.Retries != 5 {
		t.Errorf("state %+v", st)
	}
}
