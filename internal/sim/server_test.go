package sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelship/modelship/checkpoint"
)

const testModel = "test-model"

func testTable() Table {
	return Table{
		Responses: []Entry{
			{Match: []string{"capital", "france"}, Reply: "The capital of France is Paris."},
			{Match: []string{"capital"}, Reply: "Which country?"},
		},
		DefaultReply: "I am a tiny test model and I do not know.",
	}
}

func testInfo() *checkpoint.Info {
	return &checkpoint.Info{Path: "/models/" + testModel, Format: checkpoint.FormatSafetensors, MaxContext: 4096}
}

// start builds a ready server behind a real HTTP listener.
func start(t testing.TB, table Table, opt Options) (*Server, string) {
	t.Helper()
	if opt.ServedModelName == "" {
		opt.ServedModelName = testModel
	}
	s, err := New(testInfo(), table, opt)
	if err != nil {
		t.Fatal(err)
	}
	s.MarkReady()
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts.URL
}

func post(t testing.TB, url string, body any) (int, []byte) {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case string:
		b = []byte(v)
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

func get(t testing.TB, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func chatReq(text string, extra map[string]any) map[string]any {
	r := map[string]any{"model": testModel, "messages": []map[string]any{
		{"role": "system", "content": "You are helpful."},
		{"role": "user", "content": text},
	}}
	for k, v := range extra {
		r[k] = v
	}
	return r
}

func complReq(prompt string, extra map[string]any) map[string]any {
	r := map[string]any{"model": testModel, "prompt": prompt}
	for k, v := range extra {
		r[k] = v
	}
	return r
}

type result struct {
	text    []string // per choice
	finish  []string
	usage   usage
	chunks  int
	sawDone bool
}

// parseResponse decodes a non-streamed chat or completion response.
func parseResponse(t testing.TB, chat bool, body []byte) result {
	t.Helper()
	var r struct {
		Object  string `json:"object"`
		Model   string `json:"model"`
		Choices []struct {
			Index   int `json:"index"`
			Message struct {
				Role    string `json:"role"`
				Content string `json:"content"`
			} `json:"message"`
			Text         string `json:"text"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage usage `json:"usage"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	wantObj := "text_completion"
	if chat {
		wantObj = "chat.completion"
	}
	if r.Object != wantObj || r.Model != testModel {
		t.Fatalf("object %q model %q, want %q %q", r.Object, r.Model, wantObj, testModel)
	}
	var res result
	for i, c := range r.Choices {
		if c.Index != i {
			t.Fatalf("choice %d has index %d", i, c.Index)
		}
		if chat {
			if c.Message.Role != "assistant" {
				t.Fatalf("role %q", c.Message.Role)
			}
			res.text = append(res.text, c.Message.Content)
		} else {
			res.text = append(res.text, c.Text)
		}
		res.finish = append(res.finish, c.FinishReason)
	}
	res.usage = r.Usage
	return res
}

// stream posts a streaming request and reassembles the SSE chunks, checking
// the protocol on the way: role first (chat), finish_reason once per choice,
// a usage chunk with empty choices when asked, then [DONE].
func stream(t testing.TB, url string, chat bool, body map[string]any) result {
	t.Helper()
	body["stream"] = true
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		out, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), out)
	}
	return readStream(t, resp.Body, chat)
}

func readStream(t testing.TB, r io.Reader, chat bool) result {
	t.Helper()
	var res result
	text := map[int]*strings.Builder{}
	finish := map[int]string{}
	sawRole := map[int]bool{}
	sawUsage := false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("not an SSE data line: %q", line)
		}
		if res.sawDone {
			t.Fatalf("data after [DONE]: %q", line)
		}
		if data == "[DONE]" {
			res.sawDone = true
			continue
		}
		if sawUsage {
			t.Fatalf("chunk after the usage chunk: %s", data)
		}
		res.chunks++
		var c struct {
			Object  string `json:"object"`
			Model   string `json:"model"`
			Choices []struct {
				Index int `json:"index"`
				Delta *struct {
					Role    string  `json:"role"`
					Content *string `json:"content"`
				} `json:"delta"`
				Text         *string `json:"text"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage *usage `json:"usage"`
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("%v: %s", err, data)
		}
		wantObj := "text_completion"
		if chat {
			wantObj = "chat.completion.chunk"
		}
		if c.Object != wantObj || c.Model != testModel {
			t.Fatalf("chunk object %q model %q: %s", c.Object, c.Model, data)
		}
		if c.Usage != nil {
			if len(c.Choices) != 0 || !strings.Contains(data, `"choices":[]`) {
				t.Fatalf("usage chunk must have empty choices: %s", data)
			}
			res.usage, sawUsage = *c.Usage, true
			continue
		}
		for _, ch := range c.Choices {
			if _, done := finish[ch.Index]; done {
				t.Fatalf("chunk for choice %d after its finish_reason: %s", ch.Index, data)
			}
			if text[ch.Index] == nil {
				text[ch.Index] = &strings.Builder{}
			}
			if chat {
				if ch.Delta == nil {
					t.Fatalf("chat chunk without delta: %s", data)
				}
				if !sawRole[ch.Index] {
					if ch.Delta.Role != "assistant" {
						t.Fatalf("first chunk of choice %d has no assistant role: %s", ch.Index, data)
					}
					sawRole[ch.Index] = true
				} else if ch.Delta.Role != "" {
					t.Fatalf("role repeated: %s", data)
				}
				if ch.Delta.Content != nil {
					text[ch.Index].WriteString(*ch.Delta.Content)
				}
			} else if ch.Text != nil {
				text[ch.Index].WriteString(*ch.Text)
			}
			if ch.FinishReason != nil {
				finish[ch.Index] = *ch.FinishReason
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(text); i++ {
		f, ok := finish[i]
		if !ok {
			t.Fatalf("choice %d never got a finish_reason", i)
		}
		res.text = append(res.text, text[i].String())
		res.finish = append(res.finish, f)
	}
	return res
}

// metric sums the samples of name whose labels contain every label given
// (e.g. `finished_reason="stop"`) from a /metrics scrape.
func metric(t testing.TB, base, name string, labels ...string) float64 {
	t.Helper()
	_, body := get(t, base+"/metrics")
	return metricIn(t, string(body), name, labels...)
}

func metricIn(t testing.TB, body, name string, labels ...string) float64 {
	t.Helper()
	sum, found := 0.0, false
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum, found = sum+v, true
	}
	if !found {
		t.Fatalf("metric %s%v not found in:\n%s", name, labels, body)
	}
	return sum
}

// eventually polls cond (not a timing assertion: the deadline only keeps a
// broken server from hanging the test).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	s, err := New(testInfo(), testTable(), Options{ServedModelName: testModel})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	if code, _ := get(t, ts.URL+"/health"); code != 503 {
		t.Fatalf("/health while loading: %d, want 503", code)
	}
	if code, body := post(t, ts.URL+"/v1/chat/completions", chatReq("hi", nil)); code != 503 || !strings.Contains(string(body), `"code":503`) {
		t.Fatalf("chat while loading: %d %s", code, body)
	}
	s.MarkReady()
	if code, _ := get(t, ts.URL+"/health"); code != 200 {
		t.Fatalf("/health after load: %d, want 200", code)
	}
	code, body := get(t, ts.URL+"/version")
	if code != 200 || string(body) != `{"version":"`+Version+`"}` {
		t.Fatalf("/version: %d %s", code, body)
	}
	if code, body := get(t, ts.URL+"/nope"); code != 404 || string(body) != `{"detail":"Not Found"}` {
		t.Fatalf("unknown path: %d %s", code, body)
	}
}

func TestNeverReady(t *testing.T) {
	s, err := New(testInfo(), testTable(), Options{NeverReady: true})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	s.MarkReady()
	if code, _ := get(t, ts.URL+"/health"); code != 503 {
		t.Fatalf("/health with NeverReady: %d, want 503", code)
	}
	if s.Ready() {
		t.Fatal("Ready() with NeverReady")
	}
}

func TestModels(t *testing.T) {
	s, err := New(testInfo(), testTable(), Options{MaxModelLen: 1024})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	code, body := get(t, ts.URL+"/v1/models")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var l struct {
		Object string `json:"object"`
		Data   []struct {
			ID          string           `json:"id"`
			Object      string           `json:"object"`
			Created     int64            `json:"created"`
			OwnedBy     string           `json:"owned_by"`
			Root        string           `json:"root"`
			Parent      *string          `json:"parent"`
			MaxModelLen int              `json:"max_model_len"`
			Permission  []map[string]any `json:"permission"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &l); err != nil {
		t.Fatal(err)
	}
	if l.Object != "list" || len(l.Data) != 1 {
		t.Fatalf("%s", body)
	}
	m := l.Data[0]
	// The default served name is the path as given, like vLLM.
	if m.ID != "/models/test-model" || m.Root != "/models/test-model" || m.Object != "model" || m.OwnedBy != "vllm" ||
		m.MaxModelLen != 1024 || m.Parent != nil || m.Created == 0 || len(m.Permission) != 1 || m.Permission[0]["object"] != "model_permission" {
		t.Fatalf("model card: %s", body)
	}
	if !strings.Contains(string(body), `"parent":null`) {
		t.Fatalf("parent must be null: %s", body)
	}
}

func TestGenerate(t *testing.T) {
	_, url := start(t, testTable(), Options{})
	for _, tc := range []struct {
		name  string
		chat  bool
		body  map[string]any
		reply string
		// prompt tokens: chat = 3 + per message (4 + content tokens);
		// completion = 1 (BOS) + prompt tokens.
		prompt, completion int
	}{
		{"chat match", true, chatReq("What is the CAPITAL of France?", nil), "The capital of France is Paris.",
			3 + (4 + 4) + (4 + 7), 7},
		{"chat first entry wins", true, chatReq("capital of France, or of Spain?", nil), "The capital of France is Paris.",
			3 + (4 + 4) + (4 + 8), 7},
		{"chat second entry", true, chatReq("capital?", nil), "Which country?", 3 + 8 + 4 + 2, 3},
		{"chat default", true, chatReq("hello", nil), "I am a tiny test model and I do not know.", 3 + 8 + 4 + 1, 12},
		{"chat content parts", true, map[string]any{"model": testModel, "messages": []map[string]any{{"role": "user",
			"content": []map[string]any{{"type": "text", "text": "capital of"}, {"type": "text", "text": "france"}}}}},
			"The capital of France is Paris.", 3 + 4 + 3, 7},
		{"chat no model", true, map[string]any{"messages": []map[string]any{{"role": "user", "content": "france capital"}}},
			"The capital of France is Paris.", 3 + 4 + 2, 7},
		{"completion", false, complReq("The capital of France is", nil), "The capital of France is Paris.", 1 + 5, 7},
		{"completion default", false, complReq("Once upon a time", nil), "I am a tiny test model and I do not know.", 1 + 4, 12},
		{"completion token ids", false, map[string]any{"model": testModel, "prompt": []int{1, 2, 3}}, "I am a tiny test model and I do not know.", 3, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/v1/completions"
			if tc.chat {
				path = "/v1/chat/completions"
			}
			code, body := post(t, url+path, tc.body)
			if code != 200 {
				t.Fatalf("%d %s", code, body)
			}
			got := parseResponse(t, tc.chat, body)
			if len(got.text) != 1 || got.text[0] != tc.reply || got.finish[0] != "stop" {
				t.Fatalf("got %q %q, want %q stop", got.text, got.finish, tc.reply)
			}
			want := usage{PromptTokens: tc.prompt, CompletionTokens: tc.completion, TotalTokens: tc.prompt + tc.completion}
			if got.usage != want {
				t.Fatalf("usage %+v, want %+v", got.usage, want)
			}
			// Streaming gives the same text, finish reason and usage.
			b := map[string]any{}
			for k, v := range tc.body {
				b[k] = v
			}
			b["stream_options"] = map[string]any{"include_usage": true}
			st := stream(t, url+path, tc.chat, b)
			if !st.sawDone {
				t.Fatal("no [DONE]")
			}
			if fmt.Sprint(st.text, st.finish) != fmt.Sprint(got.text, got.finish) || st.usage != got.usage {
				t.Fatalf("stream %q %q %+v, non-stream %q %q %+v", st.text, st.finish, st.usage, got.text, got.finish, got.usage)
			}
			// One chunk per token, plus the role chunk (chat) and the usage chunk.
			wantChunks := tc.completion + 1
			if tc.chat {
				wantChunks++
			}
			if st.chunks != wantChunks {
				t.Fatalf("%d chunks, want %d", st.chunks, wantChunks)
			}
		})
	}
}

func TestStreamWithoutUsage(t *testing.T) {
	_, url := start(t, testTable(), Options{})
	st := stream(t, url+"/v1/chat/completions", true, chatReq("capital of france", nil))
	if st.usage != (usage{}) || !st.sawDone || st.text[0] != "The capital of France is Paris." {
		t.Fatalf("%+v", st)
	}
}

func TestMaxTokensAndStop(t *testing.T) {
	_, url := start(t, testTable(), Options{})
	code, body := post(t, url+"/v1/chat/completions", chatReq("capital of france", map[string]any{"max_tokens": 3}))
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	got := parseResponse(t, true, body)
	if got.text[0] != "The capital of" || got.finish[0] != "length" || got.usage.CompletionTokens != 3 {
		t.Fatalf("max_tokens 3: %+v", got)
	}
	st := stream(t, url+"/v1/chat/completions", true, chatReq("capital of france", map[string]any{"max_completion_tokens": 3}))
	if st.text[0] != "The capital of" || st.finish[0] != "length" {
		t.Fatalf("stream max_completion_tokens 3: %+v", st)
	}
	// max_tokens equal to the reply length is not a truncation.
	code, body = post(t, url+"/v1/completions", complReq("capital of france", map[string]any{"max_tokens": 7}))
	if got := parseResponse(t, false, body); code != 200 || got.finish[0] != "stop" || got.usage.CompletionTokens != 7 {
		t.Fatalf("max_tokens 7: %d %s", code, body)
	}
	code, body = post(t, url+"/v1/completions", complReq("capital of france", map[string]any{"stop": []string{" is"}}))
	if got := parseResponse(t, false, body); code != 200 || got.text[0] != "The capital of France" || got.finish[0] != "stop" {
		t.Fatalf("stop: %d %s", code, body)
	}
}

func TestN(t *testing.T) {
	_, url := start(t, testTable(), Options{})
	code, body := post(t, url+"/v1/chat/completions", chatReq("capital of france", map[string]any{"n": 3, "temperature": 0.7, "seed": 42}))
	got := parseResponse(t, true, body)
	if code != 200 || len(got.text) != 3 || got.usage.CompletionTokens != 21 || got.usage.PromptTokens != 3+8+4+3 {
		t.Fatalf("n=3: %d %s", code, body)
	}
	st := stream(t, url+"/v1/chat/completions", true, chatReq("capital of france", map[string]any{"n": 2, "stream_options": map[string]any{"include_usage": true}}))
	if len(st.text) != 2 || st.text[1] != "The capital of France is Paris." || st.usage.CompletionTokens != 14 {
		t.Fatalf("stream n=2: %+v", st)
	}
	code, body = post(t, url+"/v1/completions", map[string]any{"model": testModel, "prompt": []string{"a", "capital france"}, "n": 2})
	got = parseResponse(t, false, body)
	if code != 200 || len(got.text) != 4 || got.text[0] != testTable().DefaultReply || got.text[3] != "The capital of France is Paris." ||
		got.usage.PromptTokens != (1+1)+(1+2) {
		t.Fatalf("batch prompts: %d %s", code, body)
	}
}

func TestRequestErrors(t *testing.T) {
	_, url := start(t, testTable(), Options{MaxModelLen: 32})
	long := strings.Repeat("word ", 40)
	for _, tc := range []struct {
		name, path string
		body       any
		code       int
		typ, msg   string
	}{
		{"unknown model", "/v1/chat/completions", map[string]any{"model": "gpt-4", "messages": []map[string]any{{"role": "user", "content": "hi"}}},
			404, "NotFoundError", "The model `gpt-4` does not exist."},
		{"unknown model completion", "/v1/completions", map[string]any{"model": "x", "prompt": "hi"}, 404, "NotFoundError", "The model `x` does not exist."},
		{"bad JSON", "/v1/chat/completions", `{"model": `, 400, "BadRequestError", "invalid JSON body"},
		{"wrong type", "/v1/chat/completions", `{"model":"test-model","messages":[],"max_tokens":"ten"}`, 400, "BadRequestError", "invalid JSON body"},
		{"no messages", "/v1/chat/completions", map[string]any{"model": testModel, "messages": []any{}}, 400, "BadRequestError", "messages: expected at least one message"},
		{"no prompt", "/v1/completions", map[string]any{"model": testModel}, 400, "BadRequestError", "prompt: required"},
		{"too long with max_tokens", "/v1/completions", complReq("hi there", map[string]any{"max_tokens": 30}), 400, "BadRequestError",
			"This model's maximum context length is 32 tokens. However, you requested 33 tokens (3 in the prompt, 30 in the completion). Please reduce the length of the prompt or completion."},
		{"prompt too long", "/v1/chat/completions", chatReq(long, nil), 400, "BadRequestError",
			"This model's maximum context length is 32 tokens. However, you requested 56 tokens in the messages, Please reduce the length of the messages."},
		{"max_tokens 0", "/v1/completions", complReq("hi", map[string]any{"max_tokens": 0}), 400, "BadRequestError", "max_tokens must be at least 1, got 0."},
		{"n 0", "/v1/completions", complReq("hi", map[string]any{"n": 0}), 400, "BadRequestError", "n must be from 1 to 128, got 0."},
		{"negative temperature", "/v1/completions", complReq("hi", map[string]any{"temperature": -1}), 400, "BadRequestError", "temperature must be non-negative, got -1."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(t, url+tc.path, tc.body)
			var e struct {
				Error struct {
					Message string `json:"message"`
					Type    string `json:"type"`
					Param   any    `json:"param"`
					Code    int    `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			if code != tc.code || e.Error.Code != tc.code || e.Error.Type != tc.typ || !strings.HasPrefix(e.Error.Message, tc.msg) || !strings.Contains(string(body), `"param":null`) {
				t.Fatalf("got %d %s, want %d %s %q", code, body, tc.code, tc.typ, tc.msg)
			}
		})
	}
	// The prompt alone may use the whole remaining context when max_tokens is unset.
	if code, body := post(t, url+"/v1/completions", complReq("capital france", nil)); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
}

func TestAPIKey(t *testing.T) {
	_, url := start(t, testTable(), Options{APIKey: "sekret"})
	if code, _ := get(t, url+"/v1/models"); code != 401 {
		t.Fatalf("no key: %d", code)
	}
	req, _ := http.NewRequest("GET", url+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer sekret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("with key: %d", resp.StatusCode)
	}
	if code, _ := get(t, url+"/health"); code != 200 {
		t.Fatalf("/health needs no key: %d", code)
	}
}

// TestQueueAndAbort holds requests in flight with a long TTFT, checks that
// at most MaxNumSeqs run and the rest wait (as the gauges report), then
// disconnects the clients and checks every request is aborted and freed.
func TestQueueAndAbort(t *testing.T) {
	tb := testTable()
	tb.Latency = Latency{TTFTms: 3.6e6}
	_, url := start(t, tb, Options{MaxNumSeqs: 2})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			b, _ := json.Marshal(chatReq(fmt.Sprint("question ", i), map[string]any{"stream": i%2 == 0}))
			req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/chat/completions", bytes.NewReader(b))
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}(i)
	}
	eventually(t, "2 running and 3 waiting", func() bool {
		return metric(t, url, "vllm:num_requests_running") == 2 && metric(t, url, "vllm:num_requests_waiting") == 3
	})
	if u := metric(t, url, "vllm:kv_cache_usage_perc"); u != 1 {
		t.Fatalf("kv cache usage %g with all slots busy, want 1", u)
	}
	cancel()
	wg.Wait()
	eventually(t, "all requests aborted", func() bool {
		return metric(t, url, "vllm:num_requests_running") == 0 && metric(t, url, "vllm:num_requests_waiting") == 0 &&
			metric(t, url, "vllm:request_success_total", `finished_reason="abort"`) == 5
	})
	if n := metric(t, url, "vllm:request_success_total", `finished_reason="stop"`); n != 0 {
		t.Fatalf("%g requests finished although all were cancelled", n)
	}
}

// TestDisconnectMidStream cancels a stream after its first chunk and checks
// generation stops (the request is counted aborted, its slot freed).
func TestDisconnectMidStream(t *testing.T) {
	tb := testTable()
	tb.DefaultReply = strings.Repeat("token ", 1000)
	tb.Latency = Latency{ITLms: 50}
	_, url := start(t, tb, Options{MaxNumSeqs: 1})
	ctx, cancel := context.WithCancel(context.Background())
	b, _ := json.Marshal(chatReq("go on", map[string]any{"stream": true}))
	req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/chat/completions", bytes.NewReader(b))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "data: ") {
		t.Fatalf("first line %q %v", line, err)
	}
	cancel()
	resp.Body.Close()
	eventually(t, "stream aborted", func() bool {
		return metric(t, url, "vllm:request_success_total", `finished_reason="abort"`) == 1 &&
			metric(t, url, "vllm:num_requests_running") == 0
	})
	if g := metric(t, url, "vllm:generation_tokens_total"); g >= 1000 {
		t.Fatalf("generated %g tokens after the client left", g)
	}
}

func TestErrorRate(t *testing.T) {
	failures := func(seed int64) []int {
		_, url := start(t, testTable(), Options{ErrorRate: 0.25, Seed: seed})
		var failed []int
		for i := 0; i < 40; i++ {
			code, body := post(t, url+"/v1/completions", complReq("hi", nil))
			switch code {
			case 200:
			case 500:
				if !strings.Contains(string(body), `"type":"InternalServerError"`) {
					t.Fatalf("500 body %s", body)
				}
				failed = append(failed, i)
			default:
				t.Fatalf("%d %s", code, body)
			}
		}
		if n := metric(t, url, "vllm:request_success_total", `finished_reason="stop"`); n != float64(40-len(failed)) {
			t.Fatalf("request_success_total %g, want %d", n, 40-len(failed))
		}
		return failed
	}
	a, b := failures(7), failures(7)
	if len(a) != 10 {
		t.Fatalf("%d of 40 requests failed at error rate 0.25, want 10: %v", len(a), a)
	}
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("same seed, different failures: %v vs %v", a, b)
	}
	if _, err := New(testInfo(), testTable(), Options{ErrorRate: 1.5}); err == nil {
		t.Fatal("error rate 1.5 accepted")
	}
}

func TestCrashAfter(t *testing.T) {
	var crashes atomic.Int32
	_, url := start(t, testTable(), Options{CrashAfter: 3, OnCrash: func() { crashes.Add(1) }})
	for i := 1; i <= 4; i++ {
		code, body := post(t, url+"/v1/chat/completions", chatReq("capital of france", nil))
		if code != 200 || parseResponse(t, true, body).text[0] != "The capital of France is Paris." {
			t.Fatalf("request %d: %d %s", i, code, body)
		}
		want := int32(0)
		if i >= 3 {
			want = 1
			// The crash follows the flush of the third reply: wait, bounded.
			for deadline := time.Now().Add(5 * time.Second); crashes.Load() == 0 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
		}
		if c := crashes.Load(); c != want {
			t.Fatalf("after %d requests OnCrash called %d times, want %d", i, c, want)
		}
	}
}

func TestMetrics(t *testing.T) {
	_, url := start(t, testTable(), Options{})
	var prompt, gen int
	reqs := 0
	for _, q := range []string{"capital of france", "hello", "capital?"} {
		code, body := post(t, url+"/v1/chat/completions", chatReq(q, nil))
		if code != 200 {
			t.Fatal(code)
		}
		u := parseResponse(t, true, body).usage
		prompt, gen, reqs = prompt+u.PromptTokens, gen+u.CompletionTokens, reqs+1
		st := stream(t, url+"/v1/completions", false, complReq(q, map[string]any{"max_tokens": 2, "stream_options": map[string]any{"include_usage": true}}))
		prompt, gen, reqs = prompt+st.usage.PromptTokens, gen+st.usage.CompletionTokens, reqs+1
	}
	_, body := get(t, url+"/metrics")
	m := string(body)
	lbl := `model_name="test-model"`
	checks := []struct {
		name  string
		label string
		want  float64
	}{
		{"vllm:request_success_total", `finished_reason="stop"`, 3},
		{"vllm:request_success_total", `finished_reason="length"`, 3},
		{"vllm:request_success_total", "", float64(reqs)},
		{"vllm:prompt_tokens_total", "", float64(prompt)},
		{"vllm:generation_tokens_total", "", float64(gen)},
		{"vllm:time_to_first_token_seconds_count", "", float64(reqs)},
		{"vllm:e2e_request_latency_seconds_count", "", float64(reqs)},
		// one inter-token gap per token after the first
		{"vllm:inter_token_latency_seconds_count", "", float64(gen - reqs)},
		{"vllm:time_per_output_token_seconds_count", "", float64(gen - reqs)},
		{"vllm:num_requests_running", "", 0},
		{"vllm:num_requests_waiting", "", 0},
	}
	for _, c := range checks {
		labels := []string{lbl}
		if c.label != "" {
			labels = append(labels, c.label)
		}
		if got := metricIn(t, m, c.name, labels...); got != c.want {
			t.Errorf("%s{%s} = %g, want %g", c.name, c.label, got, c.want)
		}
	}
	for _, typ := range []string{
		"# TYPE vllm:time_to_first_token_seconds histogram",
		"# TYPE vllm:inter_token_latency_seconds histogram",
		"# TYPE vllm:time_per_output_token_seconds histogram",
		"# TYPE vllm:e2e_request_latency_seconds histogram",
		"# TYPE vllm:num_requests_running gauge",
		"# TYPE vllm:num_requests_waiting gauge",
		"# TYPE vllm:request_success_total counter",
		"# TYPE vllm:prompt_tokens_total counter",
		"# TYPE vllm:generation_tokens_total counter",
	} {
		if !strings.Contains(m, typ+"\n") {
			t.Errorf("/metrics lacks %q", typ)
		}
	}
}

func TestLatencyIsSimulatedAndDeterministic(t *testing.T) {
	tb := testTable()
	tb.Latency = Latency{TTFTms: 100, ITLms: 10, Jitter: 0.5}
	a, _ := New(testInfo(), tb, Options{Seed: 1})
	b, _ := New(testInfo(), tb, Options{Seed: 1})
	c, _ := New(testInfo(), tb, Options{Seed: 2})
	body := []byte(`{"prompt":"x"}`)
	draw := func(s *Server, body []byte) []time.Duration {
		r := s.rng(body)
		var ds []time.Duration
		for i := 0; i < 5; i++ {
			ds = append(ds, s.delay(r, tb.Latency.ITLms))
		}
		return ds
	}
	da, db, dc := draw(a, body), draw(b, body), draw(c, body)
	if fmt.Sprint(da) != fmt.Sprint(db) {
		t.Fatalf("same seed and request, different delays: %v %v", da, db)
	}
	if fmt.Sprint(da) == fmt.Sprint(dc) || fmt.Sprint(da) == fmt.Sprint(draw(a, []byte(`{"prompt":"y"}`))) {
		t.Fatalf("delays do not depend on seed and request: %v", da)
	}
	for _, d := range da {
		if d < 5*time.Millisecond || d > 15*time.Millisecond {
			t.Fatalf("delay %v outside 10ms ± 50%%", d)
		}
	}
	// The simulated TTFT shows in the histogram: no observation below the
	// 0.04s bucket for a 100ms ± 50% TTFT (the sim sleeps at least that).
	_, url := start(t, tb, Options{})
	post(t, url+"/v1/completions", complReq("hi", map[string]any{"max_tokens": 2}))
	if n := metric(t, url, "vllm:time_to_first_token_seconds_bucket", `le="0.04"`); n != 0 {
		t.Fatalf("%g requests had TTFT under 40ms with a 50-150ms TTFT", n)
	}
}

func TestServeAndDrain(t *testing.T) {
	tb := testTable()
	tb.LoadSeconds = 0.05
	tb.Latency = Latency{ITLms: 20}
	s, err := New(testInfo(), tb, Options{ServedModelName: testModel})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	eventually(t, "/health 200 after loading", func() bool {
		resp, err := http.Get(url + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	// A stream in flight when shutdown starts still finishes.
	b, _ := json.Marshal(chatReq("capital of france", map[string]any{"stream": true}))
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	first, _ := br.ReadString('\n')
	cancel()
	res := readStream(t, io.MultiReader(strings.NewReader(first), br), true)
	if !res.sawDone || res.text[0] != "The capital of France is Paris." {
		t.Fatalf("stream cut by shutdown: %+v", res)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := http.Get(url + "/health"); err == nil {
		t.Fatal("still accepting after shutdown")
	}
}

func TestDrainTimeoutAborts(t *testing.T) {
	tb := testTable()
	tb.Latency = Latency{TTFTms: 3.6e6}
	s, _ := New(testInfo(), tb, Options{ServedModelName: testModel, DrainTimeout: time.Millisecond})
	s.MarkReady()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	url := "http://" + ln.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		b, _ := json.Marshal(chatReq("x", nil))
		if resp, err := http.Post(url+"/v1/chat/completions", "application/json", bytes.NewReader(b)); err == nil {
			resp.Body.Close()
		}
	}()
	eventually(t, "request running", func() bool { return metric(t, url, "vllm:num_requests_running") == 1 })
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	<-done
}

// Aliases: /v1/models lists every served name, as vLLM does for
// --served-model-name NAME ALIAS, and a request may name any of them;
// another name is not found.
func TestServedAliases(t *testing.T) {
	s, err := New(testInfo(), testTable(), Options{ServedModelName: "current", Aliases: []string{"llm-v2"}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	s.MarkReady()
	_, body := get(t, ts.URL+"/v1/models")
	var l struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &l); err != nil || len(l.Data) != 2 || l.Data[0].ID != "current" || l.Data[1].ID != "llm-v2" {
		t.Fatalf("/v1/models = %s", body)
	}
	for name, want := range map[string]int{"llm-v2": 200, "current": 200, "other": 404} {
		resp, err := http.Post(ts.URL+"/v1/completions", "application/json", strings.NewReader(`{"model": "`+name+`", "prompt": "hi", "max_tokens": 2}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("model %q: %d, want %d", name, resp.StatusCode, want)
		}
	}
}
