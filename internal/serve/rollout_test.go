package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/measure"
	"github.com/modelship/modelship/internal/shadow"
	"github.com/modelship/modelship/internal/sticky"
	"github.com/modelship/modelship/serving"
	"github.com/modelship/modelship/suite"
)

const (
	testAdminToken = "adm1n-t0ken-never-shown"
	testAPIKey     = "k3y"
	convHeader     = "X-Conversation-Id"
)

// lockedBuffer is a log destination the mirror's workers and the test
// may use at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// llmEngine is a stand-in engine: it answers every generation with
// answer(prompt) (the last user message, or the prompt) as JSON, and says
// in X-Engine which engine it is; it counts the conversations it
// answered and the API keys it was sent.
type llmEngine struct {
	name   string
	answer func(prompt string) string

	mu    sync.Mutex
	convs map[string]int // conversation id → requests answered
	keys  map[string]int // Authorization seen → requests
	n     int
}

func newEngine(t *testing.T, name string, answer func(string) string) (*llmEngine, string) {
	e := &llmEngine{name: name, answer: answer, convs: map[string]int{}, keys: map[string]int{}}
	s := httptest.NewServer(e)
	t.Cleanup(s.Close)
	return e, s.URL
}

func (e *llmEngine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Messages []struct{ Role, Content string }
		Prompt   string
	}
	if r.URL.Path == "/version" { // a route's probe: not a generation
		fmt.Fprint(w, `{"version":"test"}`)
		return
	}
	json.NewDecoder(r.Body).Decode(&req)
	prompt := req.Prompt
	if len(req.Messages) > 0 {
		prompt = req.Messages[len(req.Messages)-1].Content
	}
	e.mu.Lock()
	e.n++
	if id := r.Header.Get(convHeader); id != "" {
		e.convs[id]++
	}
	e.keys[r.Header.Get("Authorization")]++
	e.mu.Unlock()
	w.Header().Set("X-Engine", e.name)
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}]}`, e.answer(prompt))
}

func (e *llmEngine) answered() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n
}

func sameAnswer(prompt string) string { return "The answer to " + prompt + " is forty-two." }

// replica is one serving pod's proxy in front of an engine, with the API
// key and the admin token, logging into log.
type replica struct {
	p   *Proxy
	url string
	log *lockedBuffer
}

func newReplica(t *testing.T, engine string) *replica {
	t.Helper()
	log := &lockedBuffer{}
	p := NewProxy(mustURL(t, engine), VersionInfo{ServedModelName: "m"})
	p.APIKey, p.AdminToken = testAPIKey, testAdminToken
	p.Logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := httptest.NewServer(p)
	t.Cleanup(func() { s.Close(); p.closeRoute() })
	return &replica{p: p, url: s.URL, log: log}
}

// call sends method path with body and headers (name, value pairs) and
// returns the status, the X-Engine header and the body.
func call(t *testing.T, method, url string, body []byte, header ...string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("X-Engine"), out
}

func chat(prompt string) []byte {
	b, _ := json.Marshal(map[string]any{"model": "m", "messages": []map[string]string{{"role": "user", "content": prompt}}})
	return b
}

// setRoute posts rt to r's RoutePath and returns the answer.
func (r *replica) setRoute(t *testing.T, rt Route) RouteState {
	t.Helper()
	b, _ := json.Marshal(rt)
	code, _, body := call(t, http.MethodPost, r.url+RoutePath, b, serving.HeaderAdminToken, testAdminToken)
	if code != http.StatusOK {
		t.Fatalf("POST route: %d %s", code, body)
	}
	var st RouteState
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func (r *replica) getRoute(t *testing.T) RouteState {
	t.Helper()
	code, _, body := call(t, http.MethodGet, r.url+RoutePath, nil, serving.HeaderAdminToken, testAdminToken)
	if code != http.StatusOK {
		t.Fatalf("GET route: %d %s", code, body)
	}
	var st RouteState
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// samples is how many /v1/ requests r recorded.
func (r *replica) samples(t *testing.T) int {
	t.Helper()
	_, _, body := call(t, http.MethodGet, r.url+SamplesPath+"?since=0", nil)
	var s measure.Samples
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	return len(s.Samples)
}

// The rollout endpoint: off without an admin token, 401 without the right
// one, 400 naming the field of a bad route, and a route posted is the
// route read back. The token is in no answer and no log line.
func TestRouteEndpoint(t *testing.T) {
	_, eng := newEngine(t, "stable", sameAnswer)
	_, cand := newEngine(t, "candidate", sameAnswer)
	r := newReplica(t, eng)
	var answers []string
	note := func(code int, body []byte) { answers = append(answers, fmt.Sprint(code, " ", string(body))) }

	off := NewProxy(mustURL(t, eng), VersionInfo{})
	offSrv := httptest.NewServer(off)
	defer offSrv.Close()
	if code, _, body := call(t, http.MethodGet, offSrv.URL+RoutePath, nil, serving.HeaderAdminToken, ""); code != http.StatusNotFound {
		t.Errorf("no token configured: %d %s, want 404", code, body)
	}

	for _, token := range []string{"", "wrong", testAdminToken + "x", strings.ToUpper(testAdminToken)} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			code, _, body := call(t, method, r.url+RoutePath, []byte(`{}`), serving.HeaderAdminToken, token)
			note(code, body)
			if code != http.StatusUnauthorized || !strings.Contains(string(body), `"error"`) {
				t.Errorf("%s with token %q: %d %s, want 401", method, token, code, body)
			}
		}
	}
	if code, _, body := call(t, http.MethodPut, r.url+RoutePath, nil, serving.HeaderAdminToken, testAdminToken); code != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d %s, want 405", code, body)
	}

	good := func() Route {
		return Route{
			Sticky: &StickyRoute{Header: convHeader, Percent: 10, Self: SelfStable, Stable: r.url, Canary: cand},
			Shadow: &ShadowRoute{Upstream: cand, Percent: 50, Queue: 8, Checks: []suite.TextCheck{{Case: "c", Prompt: "p", Assertions: []suite.TextAssertion{{Kind: "contains", Value: json.RawMessage(`"x"`)}}}}},
		}
	}
	for _, c := range []struct {
		change func(*Route)
		want   string
	}{
		{func(r *Route) { r.Sticky.Header = "" }, "sticky.header: empty"},
		{func(r *Route) { r.Sticky.Header = "X Conversation" }, `sticky.header: "X Conversation" is not a header name`},
		{func(r *Route) { r.Sticky.Percent = 150 }, "sticky.percent: 150 is not between 0 and 100"},
		{func(r *Route) { r.Sticky.Percent = 0 }, "sticky.percent: 0: want more than 0"},
		{func(r *Route) { r.Sticky.Self = "blue" }, `sticky.self: "blue" is not "stable" or "canary"`},
		{func(r *Route) { r.Sticky.Stable = "10.0.0.1:8000" }, `sticky.stable: "10.0.0.1:8000" is not a base http(s) URL`},
		{func(r *Route) { r.Sticky.Canary = "" }, "sticky.canary: empty"},
		{func(r *Route) { r.Sticky.Canary = "http://u:pw@10.0.0.2:8000?x=1" }, `sticky.canary: "http://u:xxxxx@10.0.0.2:8000?x=1" is not a base`},
		{func(r *Route) { r.Shadow.Upstream = "ftp://candidate" }, `shadow.upstream: "ftp://candidate" is not a base http(s) URL`},
		{func(r *Route) { r.Shadow.Percent = -1 }, "shadow.percent: -1 is not between 0 and 100"},
		{func(r *Route) { r.Shadow.Queue = -1 }, "shadow.queue: -1 is negative"},
		{func(r *Route) { r.Shadow.Checks[0].Prompt = "" }, `shadow: checks[0] (case "c"): expected a prompt`},
	} {
		rt := good()
		c.change(&rt)
		b, _ := json.Marshal(rt)
		code, _, body := call(t, http.MethodPost, r.url+RoutePath, b, serving.HeaderAdminToken, testAdminToken)
		note(code, body)
		if msg := errorMessage(body); code != http.StatusBadRequest || !strings.HasPrefix(msg, c.want) {
			t.Errorf("%s: %d %q, want 400 with %q", b, code, msg, c.want)
		}
	}
	code, _, body := call(t, http.MethodPost, r.url+RoutePath, []byte(`{"stickyy":{}}`), serving.HeaderAdminToken, testAdminToken)
	note(code, body)
	if code != http.StatusBadRequest || !strings.Contains(string(body), "body: ") {
		t.Errorf("unknown field: %d %s, want 400", code, body)
	}
	if st := r.getRoute(t); st.Route.Sticky != nil || st.Route.Shadow != nil || st.Shadow != nil {
		t.Fatalf("a refused route was set: %+v", st)
	}

	want := good()
	posted := r.setRoute(t, want)
	got := r.getRoute(t)
	for _, st := range []RouteState{posted, got} {
		b, _ := json.Marshal(st.Route)
		w, _ := json.Marshal(want)
		if !bytes.Equal(b, w) || st.Shadow == nil || st.Shadow.Upstream != cand || st.Shadow.Percent != 50 {
			t.Errorf("route state %s shadow %+v, want route %s with its mirror's report", b, st.Shadow, w)
		}
	}
	cleared := r.setRoute(t, Route{})
	if cleared.Route.Sticky != nil || cleared.Route.Shadow != nil || cleared.Shadow == nil {
		t.Errorf("clearing: %+v, want no route and the mirror's final report", cleared)
	}

	_, _, v := call(t, http.MethodGet, r.url+"/version", nil)
	answers = append(answers, string(v))
	for _, a := range append(answers, r.log.String()) {
		if strings.Contains(a, testAdminToken) {
			t.Fatalf("the admin token shows in %s", a)
		}
	}
	if !strings.Contains(r.log.String(), "msg=route") {
		t.Errorf("no route logged: %s", r.log.String())
	}
}

// Two replicas, stable's and canary's, each in front of its engine and
// both with the sticky route: whichever replica a request reaches, a
// conversation is answered by one version, the one its id hashes to, and
// counted once, in that replica's samples. A request without the header
// is answered where it arrived; one without the API key is refused where
// it arrived; a forwarded request is never forwarded again.
func TestStickyRoute(t *testing.T) {
	const percent = 30
	stableEng, stableURL := newEngine(t, "stable", sameAnswer)
	canaryEng, canaryURL := newEngine(t, "canary", sameAnswer)
	st, ca := newReplica(t, stableURL), newReplica(t, canaryURL)
	route := func(self string) Route {
		return Route{Sticky: &StickyRoute{Header: convHeader, Percent: percent, Self: self, Stable: st.url, Canary: ca.url}}
	}
	st.setRoute(t, route(SelfStable))
	ca.setRoute(t, route(SelfCanary))

	on := map[string]map[string]bool{} // id → engines that answered it
	for i := range 200 {
		id := fmt.Sprintf("conversation-%d", i%50)
		to := []*replica{st, ca}[(i/50)%2]
		key := []string{"Authorization", "Bearer " + testAPIKey}
		if i%3 == 0 {
			key = []string{serving.HeaderAPIKey, testAPIKey}
		}
		code, eng, body := call(t, http.MethodPost, to.url+"/v1/chat/completions?trace=1", chat("q"), key[0], key[1], convHeader, id)
		if code != http.StatusOK {
			t.Fatalf("request %d (%s): %d %s", i, id, code, body)
		}
		if on[id] == nil {
			on[id] = map[string]bool{}
		}
		on[id][eng] = true
	}
	canaryIDs := 0
	for id, engines := range on {
		want := "stable"
		if sticky.Canary(id, percent) {
			want = "canary"
		}
		if len(engines) != 1 || !engines[want] {
			t.Errorf("%s answered by %v, want %s only", id, engines, want)
		}
		if want == "canary" {
			canaryIDs++
		}
	}
	if share := 100 * canaryIDs / len(on); share < percent-15 || share > percent+15 {
		t.Errorf("%d%% of the conversations on the canary, want about %d%%", share, percent)
	}
	// A replica records a request once its answer is sent: wait for it.
	var s, c int
	if !eventually(func() bool {
		s, c = st.samples(t), ca.samples(t)
		return s == stableEng.answered() && c == canaryEng.answered() && s+c == 200
	}) {
		t.Errorf("samples: stable %d, canary %d; engines answered %d and %d (200 requests)", s, c, stableEng.answered(), canaryEng.answered())
	}

	// Without the header: answered where it arrives.
	for _, r := range []*replica{st, ca} {
		for range 5 {
			_, eng, _ := call(t, http.MethodPost, r.url+"/v1/chat/completions", chat("q"), "Authorization", "Bearer "+testAPIKey)
			if want := map[*replica]string{st: "stable", ca: "canary"}[r]; eng != want {
				t.Errorf("a request without %s at %s answered by %q", convHeader, want, eng)
			}
		}
	}

	// Without the API key: refused where it arrives, never forwarded.
	var toCanary string
	for id := range on {
		if sticky.Canary(id, percent) {
			toCanary = id
			break
		}
	}
	before, samplesBefore := canaryEng.answered(), st.samples(t)
	code, _, body := call(t, http.MethodPost, st.url+"/v1/chat/completions", chat("q"), convHeader, toCanary)
	if code != http.StatusUnauthorized || canaryEng.answered() != before || !eventually(func() bool { return st.samples(t) == samplesBefore+1 }) {
		t.Errorf("no API key: %d %s; the canary answered %d more; stable recorded %d more", code, body, canaryEng.answered()-before, st.samples(t)-samplesBefore)
	}
	canaryEng.mu.Lock()
	for auth := range canaryEng.keys {
		if auth != "" && auth != "Bearer "+testAPIKey {
			t.Errorf("the canary's engine was sent Authorization %q", auth)
		}
	}
	canaryEng.mu.Unlock()

	// Marked routed: answered here, whatever the header says.
	_, eng, _ := call(t, http.MethodPost, st.url+"/v1/chat/completions", chat("q"), "Authorization", "Bearer "+testAPIKey, convHeader, toCanary, HeaderRouted, "1")
	if eng != "stable" {
		t.Errorf("a routed request was answered by %q, want stable (where it arrived)", eng)
	}
	// A route whose canary is this replica itself: forwarded once, then
	// answered, and counted once.
	loop := newReplica(t, stableURL)
	loop.setRoute(t, Route{Sticky: &StickyRoute{Header: convHeader, Percent: 100, Self: SelfStable, Stable: loop.url, Canary: loop.url}})
	before = stableEng.answered()
	code, eng, body = call(t, http.MethodPost, loop.url+"/v1/chat/completions", chat("q"), "Authorization", "Bearer "+testAPIKey, convHeader, "any")
	if code != http.StatusOK || eng != "stable" || stableEng.answered() != before+1 || !eventually(func() bool { return loop.samples(t) == 1 }) {
		t.Errorf("loop: %d %q %s; engine answered %d; samples %d", code, eng, body, stableEng.answered()-before, loop.samples(t))
	}
}

// A canary with no ready pod refuses the connection before anything was
// sent: the replica answers the request itself (and measures it). One
// that takes the request and fails it: the client gets a 502 in OpenAI's
// form that does not name the canary's address.
func TestStickyForwardError(t *testing.T) {
	stableEng, eng := newEngine(t, "stable", sameAnswer)
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL
	gone.Close()
	r := newReplica(t, eng)
	r.setRoute(t, Route{Sticky: &StickyRoute{Header: convHeader, Percent: 100, Self: SelfStable, Stable: r.url, Canary: goneURL}})
	code, by, body := call(t, http.MethodPost, r.url+"/v1/chat/completions", chat("q"), "Authorization", "Bearer "+testAPIKey, convHeader, "c1")
	if code != http.StatusOK || by != "stable" || stableEng.answered() != 1 || !eventually(func() bool { return r.samples(t) == 1 }) {
		t.Errorf("canary refusing connections: %d by %q %s, want answered here by stable (engine answered %d)", code, by, body, stableEng.answered())
	}

	// A canary that accepts the connection and closes it unanswered.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Read(make([]byte, 1024))
			c.Close()
		}
	}()
	// (Set directly: the rollout endpoint would refuse an address that
	// does not answer as a release, see TestRouteProbe.)
	if _, err := r.p.SetRoute(Route{Sticky: &StickyRoute{Header: convHeader, Percent: 100, Self: SelfStable, Stable: r.url, Canary: "http://" + ln.Addr().String()}}); err != nil {
		t.Fatal(err)
	}
	code, _, body = call(t, http.MethodPost, r.url+"/v1/chat/completions", chat("q"), "Authorization", "Bearer "+testAPIKey, convHeader, "c1")
	var e struct {
		Error struct {
			Message string
			Code    int
		}
	}
	json.Unmarshal(body, &e)
	if code != http.StatusBadGateway || e.Error.Code != http.StatusBadGateway || e.Error.Message == "" || strings.Contains(string(body), ln.Addr().String()) {
		t.Errorf("canary failing the request: %d %s", code, body)
	}
	if stableEng.answered() != 1 {
		t.Errorf("the stable engine answered %d requests, want only the first: a failed forward must not be answered twice", stableEng.answered())
	}
}

// eventually reports whether ok becomes true within a generous bound; it
// guards against hangs, it does not measure speed.
func eventually(ok func() bool) bool {
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// errorMessage is the message of an OpenAI-style error body.
func errorMessage(body []byte) string {
	var e struct{ Error struct{ Message string } }
	json.Unmarshal(body, &e)
	return e.Error.Message
}

// waitCompared polls r's route until its mirror compared n exchanges.
func waitCompared(t *testing.T, r *replica, n uint64) shadow.Report {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := r.getRoute(t)
		if st.Shadow != nil && st.Shadow.Compared >= n {
			return *st.Shadow
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mirror compared %+v, want %d", st.Shadow, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A replica with a shadow mirrors what it answers itself to the
// candidate, the API key with it, and compares the answers; posting the
// same shadow keeps the mirror's counts, another one or none returns the
// final report.
func TestShadowRoute(t *testing.T) {
	_, stableURL := newEngine(t, "stable", sameAnswer)
	twin, twinURL := newEngine(t, "twin", sameAnswer)
	differ, differURL := newEngine(t, "differ", func(p string) string {
		if strings.HasSuffix(p, "odd") {
			return "Something else entirely."
		}
		return sameAnswer(p)
	})
	r := newReplica(t, stableURL)
	first := Route{Shadow: &ShadowRoute{Upstream: twinURL, Percent: 100}}
	if st := r.setRoute(t, first); st.Shadow == nil || st.Shadow.Offered != 0 {
		t.Fatalf("a new shadow: %+v", st.Shadow)
	}
	ask := func(n int) {
		for i := range n {
			code, eng, body := call(t, http.MethodPost, r.url+"/v1/chat/completions", chat(fmt.Sprint("q", i, []string{"even", "odd"}[i%2])), "Authorization", "Bearer "+testAPIKey)
			if code != http.StatusOK || eng != "stable" {
				t.Fatalf("request %d: %d %q %s", i, code, eng, body)
			}
		}
	}
	ask(10)
	// Refused: not mirrored.
	call(t, http.MethodPost, r.url+"/v1/chat/completions", chat("q"), "Authorization", "Bearer wrong")
	rep := waitCompared(t, r, 10)
	if rep.Offered != 10 || rep.Comparable != 10 || rep.Agreed != 10 || rep.AgreementRate != 1 || len(rep.Worst) != 0 {
		t.Errorf("identical answers: %+v", rep)
	}
	twin.mu.Lock()
	if twin.keys["Bearer "+testAPIKey] != 10 {
		t.Errorf("the candidate was sent Authorization %v, want the client's key on each of 10", twin.keys)
	}
	twin.mu.Unlock()

	if st := r.setRoute(t, first); st.Shadow == nil || st.Shadow.Compared != 10 || st.Shadow.Offered != 10 {
		t.Errorf("posting the same shadow again: %+v, want the running mirror's counts", st.Shadow)
	}
	st := r.setRoute(t, Route{Shadow: &ShadowRoute{Upstream: differURL, Percent: 100}})
	if st.Shadow == nil || st.Shadow.Upstream != twinURL || st.Shadow.Compared != 10 {
		t.Errorf("another shadow: %+v, want the first one's final report", st.Shadow)
	}
	ask(10)
	rep = waitCompared(t, r, 10)
	if rep.Upstream != differURL || rep.Comparable != 10 || rep.Agreed != 5 || rep.AgreementRate != 0.5 || len(rep.Worst) == 0 || differ.answered() != 10 {
		t.Errorf("differing answers: %+v", rep)
	}
	st = r.setRoute(t, Route{})
	if st.Shadow == nil || st.Shadow.Upstream != differURL || st.Shadow.Compared != 10 || st.Route.Shadow != nil {
		t.Errorf("no shadow: %+v, want the final report", st)
	}
	if st := r.getRoute(t); st.Shadow != nil {
		t.Errorf("a report after the mirror stopped: %+v", st.Shadow)
	}
	ask(2)
	if differ.answered() != 10 {
		t.Errorf("mirrored after the shadow stopped: %d", differ.answered())
	}
}

// Every request carrying the header goes to its version, not only the
// API's: GET /version with a conversation's header says which release
// answers that conversation.
func TestStickyRouteCoversVersion(t *testing.T) {
	_, stableURL := newEngine(t, "stable", sameAnswer)
	_, canaryURL := newEngine(t, "canary", sameAnswer)
	st, cn := newReplica(t, stableURL), newReplica(t, canaryURL)
	st.p.info.ReleaseID, cn.p.info.ReleaseID = "r1", "r2"
	for _, r := range []*replica{st, cn} {
		self := SelfStable
		if r == cn {
			self = SelfCanary
		}
		r.setRoute(t, Route{Sticky: &StickyRoute{Header: convHeader, Percent: 100, Self: self, Stable: st.url, Canary: cn.url}})
	}
	code, _, body := call(t, http.MethodGet, st.url+"/version", nil, convHeader, "c1")
	var v VersionInfo
	if json.Unmarshal(body, &v); code != http.StatusOK || v.ReleaseID != "r2" {
		t.Errorf("GET /version of conversation c1 at 100%% through the stable replica: %d %s, want release r2's", code, body)
	}
	if code, _, body = call(t, http.MethodGet, st.url+"/version", nil); json.Unmarshal(body, &v) != nil || v.ReleaseID != "r1" {
		t.Errorf("GET /version without the header: %d %s, want the replica's own (r1)", code, body)
	}
}

// Before a route is put in force, the replica checks that each address
// leads to a serving release or, for a sticky split, refuses connections
// (its pods are not ready yet); an address where something else answers (a Service not yet
// programmed on the node, whose connections leave by the default route)
// gets a 503 naming it, and the route in force is unchanged.
func TestRouteProbe(t *testing.T) {
	_, eng := newEngine(t, "stable", sameAnswer)
	r := newReplica(t, eng)
	other := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(other.Close)
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL
	gone.Close()

	refused := Route{Sticky: &StickyRoute{Header: convHeader, Percent: 10, Self: SelfStable, Stable: r.url, Canary: goneURL}}
	r.setRoute(t, refused)
	b, _ := json.Marshal(Route{Shadow: &ShadowRoute{Upstream: other.URL, Percent: 10}})
	code, _, body := call(t, http.MethodPost, r.url+RoutePath, b, serving.HeaderAdminToken, testAdminToken)
	if msg := errorMessage(body); code != http.StatusServiceUnavailable || !strings.Contains(msg, other.URL+" answers GET /version with 404, not as a serving release") {
		t.Errorf("route to a server that is not a release: %d %q, want 503 naming it", code, msg)
	}
	// A shadow's release runs already: refusing connections is not ready.
	b, _ = json.Marshal(Route{Shadow: &ShadowRoute{Upstream: goneURL, Percent: 10}})
	code, _, body = call(t, http.MethodPost, r.url+RoutePath, b, serving.HeaderAdminToken, testAdminToken)
	if msg := errorMessage(body); code != http.StatusServiceUnavailable || !strings.Contains(msg, goneURL+" does not answer from this replica yet") {
		t.Errorf("shadow to an address that refuses connections: %d %q, want 503 naming it", code, msg)
	}
	if st := r.getRoute(t); st.Route.Sticky == nil || st.Route.Shadow != nil {
		t.Errorf("route after the refused POSTs: %+v, want the earlier one unchanged", st.Route)
	}
}
