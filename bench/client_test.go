package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// sse serves the given events as a server-sent event stream, flushing
// after each.
func sse(events ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, e := range events {
			io.WriteString(w, e)
			w.(http.Flusher).Flush()
		}
	}
}

func chatEvent(content string) string {
	return fmt.Sprintf(`data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":%q},"finish_reason":null}]}`+"\n\n", content)
}

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL
}

func doOne(t *testing.T, tg Target) *Result {
	t.Helper()
	c, err := NewClient(tg, 1)
	if err != nil {
		t.Fatal(err)
	}
	var r Result
	if !c.Do(context.Background(), &Prompt{Text: "hello"}, &r) {
		t.Fatal("Do reported an abort without cancellation")
	}
	return &r
}

func TestStreamParse(t *testing.T) {
	role := `data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}` + "\n\n"
	usage := `data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":42,"total_tokens":49}}` + "\n\n"
	done := "data: [DONE]\n\n"
	tests := []struct {
		name       string
		api        API
		events     []string
		wantOut    int
		wantIn     int
		wantUsage  bool
		wantITL    int
		wantKind   string
		wantErrSub string
	}{
		{name: "chat with usage", events: []string{role, chatEvent("Hel"), chatEvent("lo"), chatEvent("!"), usage, done},
			wantOut: 42, wantIn: 7, wantUsage: true, wantITL: 2},
		{name: "no usage: chunks counted", events: []string{role, chatEvent("a"), chatEvent("b"), done}, wantOut: 2, wantITL: 1},
		{name: "no [DONE]: clean end accepted", events: []string{chatEvent("a"), chatEvent("b"), chatEvent("c")}, wantOut: 3, wantITL: 2},
		{name: "comments, event and CRLF lines ignored", events: []string{": ping\r\n\r\n", "event: message\r\n", "data:" + strings.TrimPrefix(chatEvent("x"), "data: "), "data: [DONE]\r\n\r\n"}, wantOut: 1},
		{name: "completions text", api: Completions, events: []string{`data: {"choices":[{"index":0,"text":"Par"}]}` + "\n\n", `data: {"choices":[{"index":0,"text":"is"}]}` + "\n\n", done}, wantOut: 2, wantITL: 1},
		{name: "reasoning content counts as output", events: []string{`data: {"choices":[{"delta":{"reasoning_content":"hmm"}}]}` + "\n\n", chatEvent("ok"), done}, wantOut: 2, wantITL: 1},
		{name: "empty", events: []string{role, usage[:len(usage)-2] + "\n\n", done}, wantKind: ErrEmpty, wantOut: 42, wantIn: 7, wantUsage: true},
		{name: "chunk not JSON", events: []string{chatEvent("a"), "data: {oops\n\n"}, wantKind: ErrBadResponse, wantErrSub: "not JSON"},
		{name: "error event", events: []string{`data: {"error":{"message":"engine died","code":500}}` + "\n\n"}, wantKind: ErrBadResponse, wantErrSub: "engine died"},
		{name: "long line", events: []string{chatEvent(strings.Repeat("x", 100_000)), done}, wantOut: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got map[string]any
			url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				json.NewDecoder(r.Body).Decode(&got)
				sse(tt.events...)(w, r)
			}))
			api := tt.api
			if api == "" {
				api = Chat
			}
			r := doOne(t, Target{Endpoint: url, API: api, MaxTokens: 16})
			if r.ErrorKind != tt.wantKind {
				t.Fatalf("kind %q (%s), want %q", r.ErrorKind, r.Error, tt.wantKind)
			}
			if tt.wantErrSub != "" && !strings.Contains(r.Error, tt.wantErrSub) {
				t.Errorf("error %q does not mention %q", r.Error, tt.wantErrSub)
			}
			if tt.wantKind == ErrBadResponse {
				return
			}
			if r.OutputTokens != tt.wantOut || r.InputTokens != tt.wantIn || r.UsageReported != tt.wantUsage {
				t.Errorf("tokens in %d out %d usage %v, want %d %d %v", r.InputTokens, r.OutputTokens, r.UsageReported, tt.wantIn, tt.wantOut, tt.wantUsage)
			}
			if len(r.ITL) != tt.wantITL {
				t.Errorf("%d ITL gaps, want %d", len(r.ITL), tt.wantITL)
			}
			if tt.wantKind == "" && (r.TTFT <= 0 || r.E2EL < r.TTFT) {
				t.Errorf("TTFT %v, E2EL %v", r.TTFT, r.E2EL)
			}
			if got["stream"] != true || got["stream_options"].(map[string]any)["include_usage"] != true || got["max_tokens"] != 16.0 || got["temperature"] != 0.0 {
				t.Errorf("request body %v", got)
			}
			if api == Chat && got["messages"] == nil || api == Completions && got["prompt"] != "hello" {
				t.Errorf("request body %v", got)
			}
		})
	}
}

func TestTimingOfChunks(t *testing.T) {
	// The server waits 60 ms before the first token and 30 ms between
	// tokens; measured figures cannot be below those.
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.(http.Flusher).Flush()
		time.Sleep(60 * time.Millisecond)
		for i := range 3 {
			if i > 0 {
				time.Sleep(30 * time.Millisecond)
			}
			io.WriteString(w, chatEvent("t"))
			w.(http.Flusher).Flush()
		}
		io.WriteString(w, "data: [DONE]\n\n")
	}))
	r := doOne(t, Target{Endpoint: url})
	if !r.OK() || r.TTFT < 60*time.Millisecond || len(r.ITL) != 2 || r.ITL[0] < 30*time.Millisecond || r.ITL[1] < 30*time.Millisecond || r.E2EL < 120*time.Millisecond {
		t.Fatalf("%+v", r)
	}
}

func TestFailureKinds(t *testing.T) {
	refused := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return "http://" + addr
	}()
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	tests := []struct {
		name     string
		url      string
		h        http.HandlerFunc
		kind     string
		status   int
		contains string
	}{
		{name: "500", h: func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"error":"boom"}`, 500)
		}, kind: ErrHTTP5xx, status: 500, contains: "boom"},
		{name: "429", h: func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "slow down", 429)
		}, kind: ErrHTTP4xx, status: 429, contains: "HTTP 429"},
		{name: "404", h: func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, kind: ErrHTTP4xx, status: 404},
		{name: "non-JSON 200", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<html>hello</html>")
		}, kind: ErrBadResponse, status: 200, contains: "<html>"},
		{name: "JSON without choices", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"object":"error"}`)
		}, kind: ErrBadResponse, status: 200, contains: "no choices"},
		{name: "invalid JSON body", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"choices": [`)
		}, kind: ErrBadResponse, status: 200, contains: "not JSON"},
		{name: "hang", h: func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body) // lets the server notice the client leaving
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		}, kind: ErrTimeout},
		{name: "hang mid-stream", h: func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			sse(chatEvent("a"))(w, r)
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		}, kind: ErrTimeout, status: 200},
		{name: "connection dropped mid-stream", h: func(w http.ResponseWriter, r *http.Request) {
			sse(chatEvent("a"))(w, r)
			conn, _, _ := http.NewResponseController(w).Hijack()
			conn.Close()
		}, kind: ErrTransport, status: 200},
		{name: "connection refused", url: refused, kind: ErrTransport, contains: "refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := tt.url
			if url == "" {
				url = serve(t, tt.h)
			}
			r := doOne(t, Target{Endpoint: url, Timeout: 300 * time.Millisecond, APIKey: "sk-secret-key"})
			if r.ErrorKind != tt.kind || r.Status != tt.status {
				t.Fatalf("kind %q status %d (%s), want %q %d", r.ErrorKind, r.Status, r.Error, tt.kind, tt.status)
			}
			if !strings.Contains(r.Error, tt.contains) {
				t.Errorf("error %q does not contain %q", r.Error, tt.contains)
			}
			if strings.Contains(r.Error, "sk-secret") {
				t.Errorf("error shows the API key: %q", r.Error)
			}
			if r.OK() {
				t.Error("OK() on a failure")
			}
		})
	}
}

func TestNotStreamedJSON(t *testing.T) {
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"choices":[{"index":0,"message":{"role":"assistant","content":"Paris."}}],"usage":{"prompt_tokens":5,"completion_tokens":2}}`)
	}))
	r := doOne(t, Target{Endpoint: url})
	if !r.OK() || !r.NotStreamed || r.TTFT != r.E2EL || r.OutputTokens != 2 || r.InputTokens != 5 || len(r.ITL) != 0 {
		t.Fatalf("%+v", r)
	}
}

func TestRequestHeadersAndURL(t *testing.T) {
	var mu sync.Mutex
	var got []string
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.URL.Path+" "+r.Header.Get("Authorization")+" "+r.Header.Get("Accept-Encoding"))
		mu.Unlock()
		sse(chatEvent("a"), "data: [DONE]\n\n")(w, r)
	}))
	for _, base := range []string{url, url + "/", url + "/v1", url + "/v1/"} {
		doOne(t, Target{Endpoint: base, APIKey: "k"})
		doOne(t, Target{Endpoint: base, API: Completions})
	}
	for i, g := range got {
		want := "/v1/chat/completions Bearer k "
		if i%2 == 1 {
			want = "/v1/completions  "
		}
		if g != want {
			t.Errorf("request %d: %q, want %q", i, g, want)
		}
	}
}

func TestNewClientErrors(t *testing.T) {
	for _, tg := range []Target{
		{},
		{Endpoint: "localhost:8000"},
		{Endpoint: "ftp://x"},
		{Endpoint: "http://x", API: "embeddings"},
		{Endpoint: "http://x", MaxTokens: -1},
		{Endpoint: "http://x", Timeout: -time.Second},
	} {
		if _, err := NewClient(tg, 1); err == nil {
			t.Errorf("%+v: no error", tg)
		}
	}
	_, err := NewClient(Target{Endpoint: "http://user:hunter2@[::1"}, 1)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %v", err)
	}
}
