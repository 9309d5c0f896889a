package shadow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// llm is a stand-in OpenAI server: it answers each generation with
// answer(prompt) (the last user message, or the prompt), as JSON, or as
// server-sent events when the request asks to stream (or stream is set).
type llm struct {
	answer func(prompt string) string
	stream bool // always stream
	status func(prompt string) int
}

func (l llm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Messages []struct{ Role, Content string }
		Prompt   string
		Stream   bool
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, `{"error":{"message":"bad json"}}`, http.StatusBadRequest)
		return
	}
	prompt, chat := req.Prompt, r.URL.Path == ChatPath
	if chat {
		prompt = req.Messages[len(req.Messages)-1].Content
	}
	if l.status != nil && l.status(prompt) != http.StatusOK {
		w.WriteHeader(l.status(prompt))
		io.WriteString(w, `{"error":{"message":"engine failed"}}`)
		return
	}
	text := l.answer(prompt)
	if req.Stream || l.stream {
		writeStream(w, text, chat)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if chat {
		fmt.Fprintf(w, `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}]}`, text)
	} else {
		fmt.Fprintf(w, `{"id":"x","object":"text_completion","choices":[{"index":0,"text":%q,"finish_reason":"stop"}]}`, text)
	}
}

// writeStream sends text as vLLM streams it: a role chunk (chat), a chunk
// per word, a usage chunk without choices, and [DONE].
func writeStream(w http.ResponseWriter, text string, chat bool) {
	w.Header().Set("Content-Type", "text/event-stream")
	if chat {
		io.WriteString(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n")
	}
	for i, word := range strings.SplitAfter(text, " ") {
		if chat {
			fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n", word)
		} else {
			fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"text\":%q}]}\n\n", word)
		}
		if i == 0 {
			w.(http.Flusher).Flush()
		}
	}
	io.WriteString(w, "data: {\"choices\":[],\"usage\":{\"completion_tokens\":3}}\n\ndata: [DONE]\n\n")
}

func same(prompt string) string { return "The answer to " + prompt + " is forty-two." }

// chatBody is a chat request whose last user message is prompt.
func chatBody(prompt string, stream bool) []byte {
	b, _ := json.Marshal(map[string]any{
		"model":    "m",
		"messages": []map[string]string{{"role": "system", "content": "be brief"}, {"role": "user", "content": prompt}},
		"stream":   stream,
	})
	return b
}

func completionBody(prompt string, stream bool) []byte {
	b, _ := json.Marshal(map[string]any{"model": "m", "prompt": prompt, "stream": stream})
	return b
}

// capture sends a request to stable and returns the exchange as the
// gateway hands it to the mirror.
func capture(t *testing.T, stable, path string, body []byte, h http.Header) Exchange {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, stable+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h.Clone()
	if req.Header == nil {
		req.Header = http.Header{"Content-Type": {"application/json"}}
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ttfb := time.Since(start)
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return Exchange{Method: http.MethodPost, Path: path, Header: req.Header, Body: body,
		Status: resp.StatusCode, Response: out, TTFB: ttfb, Total: time.Since(start)}
}

// server starts h for the test.
func server(t *testing.T, h http.Handler) string {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}

// mirror starts a mirror (of every request, unless opt says; logging
// nowhere, unless opt says), closed with the test.
func mirror(t *testing.T, opt Options) *Mirror {
	t.Helper()
	if opt.Percent == 0 {
		opt.Percent = 100
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// offerAll offers every exchange, failing the test if one is not queued.
func offerAll(t *testing.T, m *Mirror, exs []Exchange) {
	t.Helper()
	for i, ex := range exs {
		if !m.Offer(ex) {
			t.Fatalf("exchange %d was not queued: %+v", i, m.Report())
		}
	}
}

// settle waits until the mirror has counted n outcomes (the test's own
// timeout ends a wait that never does).
func settle(m *Mirror, n uint64) Report {
	for {
		m.t.mu.Lock()
		added := m.t.added
		m.t.mu.Unlock()
		if added >= n {
			return m.Report()
		}
		time.Sleep(time.Millisecond)
	}
}
