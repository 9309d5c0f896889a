package suite

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/testenv"
)

func article(t *testing.T) *Suite {
	t.Helper()
	s, err := Load("../testdata/suites/validation_cases.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func fastOptions(endpoint string) Options {
	o := DefaultOptions(endpoint)
	o.Backoff = time.Millisecond
	o.Timeout = 5 * time.Second
	return o
}

func run(t *testing.T, s *Suite, o Options) *Report {
	t.Helper()
	r, err := Run(context.Background(), s, o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRunGoodModelPasses(t *testing.T) {
	base := testenv.Sim(t, "../testdata/models/good", nil)
	r := run(t, article(t), fastOptions(base+"/v1"))
	if r.Verdict != Passed || r.Passed != 6 || r.Model != "good" {
		t.Fatalf("verdict %s (%s), model %q", r.Verdict, r.Reason, r.Model)
	}
	ex, err := Load("../testdata/suites/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if r := run(t, ex, fastOptions(base)); r.Verdict != Passed {
		t.Fatalf("example.yaml on the good model: %s: %s %+v", r.Verdict, r.Reason, r.Cases)
	}
}

func TestRunRegressedModelFails(t *testing.T) {
	base := testenv.Sim(t, "../testdata/models/regressed", nil)
	r := run(t, article(t), fastOptions(base))
	if r.Verdict != Failed || r.Verdict.ExitCode() != 1 {
		t.Fatalf("verdict %s: %s", r.Verdict, r.Reason)
	}
	c := r.Cases[0]
	if c.Name != "capital-of-france" || c.Status != StatusFailed || c.Reason != "missing 'Paris'" || c.Line != 2 {
		t.Errorf("capital-of-france: %+v", c)
	}
	if c.Runs[0].Attempts != 1 {
		t.Errorf("an assertion failure was retried: %d attempts", c.Runs[0].Attempts)
	}
	if !strings.Contains(c.Runs[0].Output, "Lyon") {
		t.Errorf("output not recorded: %q", c.Runs[0].Output)
	}
}

// counting is a server answering every request with handler, counting them.
func counting(t *testing.T, handler http.HandlerFunc) (string, *atomic.Int64) {
	var n atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		handler(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts.URL, &n
}

const goodChat = `{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Paris"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`

func oneCase(t *testing.T) *Suite {
	t.Helper()
	s, err := Parse("one.yaml", []byte("defaults: {model: m}\ncases:\n  - name: capital\n    messages: [{role: user, content: 'capital of France?'}]\n    expect: [{icontains: paris}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRetriesOn503ThenPasses(t *testing.T) {
	var calls atomic.Int64
	url, n := counting(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			http.Error(w, `{"error":{"message":"overloaded"}}`, http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, goodChat)
	})
	r := run(t, oneCase(t), fastOptions(url))
	if r.Verdict != Passed || n.Load() != 3 || r.Cases[0].Runs[0].Attempts != 3 {
		t.Fatalf("verdict %s (%s), %d requests, %d attempts; want passed after 3", r.Verdict, r.Reason, n.Load(), r.Cases[0].Runs[0].Attempts)
	}
}

func TestPersistent5xxIsInconclusive(t *testing.T) {
	url, n := counting(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"message":"engine dead"}}`, http.StatusInternalServerError)
	})
	o := fastOptions(url)
	o.Retries = 2
	r := run(t, oneCase(t), o)
	if r.Verdict != Inconclusive || n.Load() != 3 {
		t.Fatalf("verdict %s (%s), %d requests; want inconclusive after 3", r.Verdict, r.Reason, n.Load())
	}
	if !strings.Contains(r.Cases[0].Reason, "HTTP 500 from the server: engine dead (after 3 attempts)") {
		t.Errorf("reason: %q", r.Cases[0].Reason)
	}
}

func TestNotRetried(t *testing.T) {
	tests := []struct {
		name, body string
		status     int
		want       string
	}{
		{"4xx", `{"error":{"message":"The model m does not exist."}}`, 404, "HTTP 404: The model m does not exist."},
		{"assertion failure", strings.Replace(goodChat, "Paris", "Lyon", 1), 200, "missing 'paris'"},
		{"not JSON", "<html>oops</html>", 200, "response is not JSON"},
		{"wrong shape", `{"result": "Paris"}`, 200, `wrong response shape: no "choices" field`},
		{"choices not a list", `{"choices": {"text": "Paris"}}`, 200, `wrong response shape: "choices" is an object, expected a list`},
		{"empty choices", `{"choices": []}`, 200, `empty "choices"`},
		{"no message", `{"choices": [{"text": "Paris"}]}`, 200, `choices[0] has no "message" object`},
		{"null content", `{"choices": [{"message": {"role": "assistant", "content": null}}]}`, 200, `choices[0].message has no "content" string`},
		{"error object", `{"error": {"message": "boom"}}`, 200, "the server answered with an error: boom"},
		{"empty body", ``, 200, "empty response body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, n := counting(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			r := run(t, oneCase(t), fastOptions(url))
			if r.Verdict != Failed || n.Load() != 1 {
				t.Fatalf("verdict %s (%s), %d requests; want failed after 1", r.Verdict, r.Reason, n.Load())
			}
			if !strings.Contains(r.Cases[0].Reason, tt.want) {
				t.Errorf("reason %q, want %q", r.Cases[0].Reason, tt.want)
			}
		})
	}
}

func TestHangingServerTimesOut(t *testing.T) {
	release := make(chan struct{})
	url, n := counting(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	o := fastOptions(url)
	o.Timeout = 200 * time.Millisecond
	r := run(t, oneCase(t), o)
	if r.Verdict != Failed || n.Load() != 1 || !strings.Contains(r.Cases[0].Reason, "timeout: no response within 200ms") {
		t.Fatalf("verdict %s, reason %q, %d requests", r.Verdict, r.Cases[0].Reason, n.Load())
	}
}

func TestUnreachableIsInconclusive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	o := fastOptions("http://" + addr)
	o.Retries = 2
	r := run(t, article(t), o)
	if r.Verdict != Inconclusive || r.Verdict.ExitCode() != 3 || r.Errored != 6 {
		t.Fatalf("verdict %s: %s", r.Verdict, r.Reason)
	}
	if !strings.Contains(r.Reason, "endpoint unreachable after 3 attempts") || !strings.Contains(r.Reason, "connection refused") {
		t.Errorf("reason: %s", r.Reason)
	}
}

func TestVerdictWithThresholdAndErrors(t *testing.T) {
	mk := func(st ...Status) *Report {
		r := &Report{PassThreshold: 0.5}
		for _, s := range st {
			r.Cases = append(r.Cases, CaseResult{Status: s})
		}
		r.decide("x")
		return r
	}
	P, F, E := StatusPassed, StatusFailed, StatusError
	for _, tt := range []struct {
		r    *Report
		want Verdict
	}{
		{mk(P, P, F, F), Passed},
		{mk(P, F, F, F), Failed},
		{mk(P, F, E, F), Inconclusive},
		{mk(P, P, E, E), Passed},
		{mk(E, E, E, E), Inconclusive},
		{mk(F, F, F, E), Failed},
	} {
		if tt.r.Verdict != tt.want {
			t.Errorf("%+v: got %s, want %s", tt.r.Cases, tt.r.Verdict, tt.want)
		}
	}
}

func TestRepeatPassRate(t *testing.T) {
	var calls atomic.Int64
	url, n := counting(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1)%4 == 0 { // one answer in four is wrong
			io.WriteString(w, strings.Replace(goodChat, "Paris", "Lyon", 1))
			return
		}
		io.WriteString(w, goodChat)
	})
	for _, tt := range []struct {
		rate string
		want Verdict
	}{{"75%", Passed}, {"0.8", Failed}} {
		s, err := Parse("r.yaml", []byte("cases:\n  - name: c\n    model: m\n    messages: [{role: user, content: capital}]\n    repeat: 8\n    pass-rate: "+tt.rate+"\n    expect: [{icontains: paris}]\n"))
		if err != nil {
			t.Fatal(err)
		}
		before := n.Load()
		r := run(t, s, fastOptions(url))
		if r.Verdict != tt.want || n.Load()-before != 8 || r.Cases[0].Passes != 6 {
			t.Errorf("pass-rate %s: verdict %s (%s), %d requests, %d passes", tt.rate, r.Verdict, r.Cases[0].Reason, n.Load()-before, r.Cases[0].Passes)
		}
	}
}

func TestCompletionRequest(t *testing.T) {
	var path atomic.Value
	url, _ := counting(t, func(w http.ResponseWriter, r *http.Request) {
		path.Store(r.URL.Path)
		io.WriteString(w, `{"choices":[{"index":0,"text":" Paris","finish_reason":"length"}]}`)
	})
	s, err := Parse("c.yaml", []byte("cases:\n  - name: c\n    model: m\n    prompt: The capital of France is\n    expect: [{equals: Paris}, {finish-reason: length}, {max-tokens: 1}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, s, fastOptions(url+"/v1/"))
	if r.Verdict != Passed || path.Load() != "/v1/completions" || !r.Cases[0].Runs[0].TokensEstimated {
		t.Fatalf("verdict %s (%s), path %v, run %+v", r.Verdict, r.Cases[0].Reason, path.Load(), r.Cases[0].Runs[0])
	}
}

func TestMockLLM(t *testing.T) {
	// A server that is not ours: mock-llm echoes the last user message
	// unless a rule matches.
	base := testenv.MockLLMConfig(t, `rules:
  - path: "/v1/chat/completions"
    match: "@"
    response:
      status: 200
      content: '{"id":"c","object":"chat.completion","model":"{{jmes request body.model}}","choices":[{"index":0,"message":{"role":"assistant","content":"{{jmes request body.messages[-1].content}}"},"finish_reason":"stop"}]}'
  - path: "/v1/chat/completions"
    match: "contains(body.messages[-1].content, 'France')"
    response:
      status: 200
      content: '{"choices":[{"index":0,"message":{"role":"assistant","content":"The capital of France is Paris."},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":7,"total_tokens":14}}'
  - path: "/v1/chat/completions"
    match: "contains(body.messages[-1].content, 'overloaded')"
    response:
      status: 503
      content: '{"error":{"message":"overloaded"}}'
  - path: "/v1/models"
    response:
      status: 200
      content: '{"object":"list","data":[{"id":"mock-model","object":"model"}]}'
`)
	s, err := Parse("mock.yaml", []byte(`cases:
  - name: capital
    messages: [{role: user, content: 'What is the capital of France?'}]
    expect: [{icontains: paris}, {finish-reason: stop}, {max-tokens: 7}]
  - name: echo
    messages: [{role: user, content: say banana}]
    expect: [{equals: say banana}]
  - name: wrong
    messages: [{role: user, content: 'What is 2+2?'}]
    expect: [{contains: "4"}]
  - name: busy
    messages: [{role: user, content: overloaded}]
`))
	if err != nil {
		t.Fatal(err)
	}
	o := fastOptions(base + "/v1")
	o.Retries = 1
	r := run(t, s, o)
	if r.Model != "mock-model" {
		t.Errorf("model from /v1/models: %q", r.Model)
	}
	want := map[string]Status{"capital": StatusPassed, "echo": StatusPassed, "wrong": StatusFailed, "busy": StatusError}
	for _, c := range r.Cases {
		if c.Status != want[c.Name] {
			t.Errorf("%s: %s (%s), want %s", c.Name, c.Status, c.Reason, want[c.Name])
		}
	}
	if r.Verdict != Failed { // "wrong" failed whatever "busy" would have done
		t.Errorf("verdict %s: %s", r.Verdict, r.Reason)
	}
	if r.Cases[3].Runs[0].Attempts != 2 {
		t.Errorf("503 from mock-llm: %d attempts, want 2", r.Cases[3].Runs[0].Attempts)
	}
}

func TestAPIBase(t *testing.T) {
	for in, want := range map[string]string{
		"http://localhost:8100":      "http://localhost:8100/v1/",
		"http://localhost:8100/":     "http://localhost:8100/v1/",
		"http://localhost:8100/v1":   "http://localhost:8100/v1/",
		"https://h/proxy/v1/":        "https://h/proxy/v1/",
		"http://h:1/openai?x=1#frag": "http://h:1/openai/v1/",
	} {
		if got, err := APIBase(in); err != nil || got != want {
			t.Errorf("APIBase(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "localhost:8100", "ftp://h", "http://user:pw@h/v1"} {
		if _, err := APIBase(in); err == nil {
			t.Errorf("APIBase(%q): no error", in)
		}
	}
}
