package bench

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadPromptsArticleFile(t *testing.T) {
	ps, err := LoadPrompts("../testdata/prompts/benchmark_prompts.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 20 || ps[0].Text != "Tell me a story about a GPU that learned to dream." {
		t.Errorf("%d prompts, first %+v", len(ps), ps[0])
	}
}

func TestParseJSONL(t *testing.T) {
	in := "\ufeff{\"prompt\": \"hi\"}\n\n{\"messages\": [{\"role\": \"system\", \"content\": \"be brief\"}, {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"hello\"}]}], \"max_tokens\": 5}\r\n"
	ps, err := ParseJSONL("p.jsonl", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Text != "hi" || len(ps[1].Messages) != 2 || ps[1].Messages[1].Content != "hello" || ps[1].MaxTokens != 5 {
		t.Errorf("%+v", ps)
	}
}

func TestPromptErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "p.jsonl: no prompts"},
		{"{\"prompt\": \"a\"}\n{\"prompt\": 3}\n", "p.jsonl:2: invalid JSON"},
		{"{\"prompt\": \"a\"}\n\n[1]\n", "p.jsonl:3: expected a JSON object"},
		{"{\"text\": \"a\"}", `p.jsonl:1: expected a "prompt" string or a "messages" list`},
		{"{\"prompt\": \"a\", \"messages\": []}", "p.jsonl:1: both"},
		{"{\"prompt\": \"  \"}", `p.jsonl:1: "prompt" is empty`},
		{"{\"messages\": []}", `p.jsonl:1: "messages" is empty`},
		{"{\"messages\": [{\"content\": \"x\"}]}", `p.jsonl:1: messages[0]: missing "role"`},
		{"{\"messages\": [{\"role\": \"user\"}]}", `p.jsonl:1: messages[0].content: missing`},
		{"{\"prompt\": \"a\", \"max_tokens\": 0}", `p.jsonl:1: "max_tokens" must be at least 1`},
		{"{\"prompt\": \"a\"", "p.jsonl:1: invalid JSON"},
		{"[\n{\"conversations\": []},\n{\"conversations\": 5}\n]", "p.jsonl:3: entry 1: "},
		{"[\n{\"conversations\": [{\"from\": \"human\", \"value\": \"q\"}]}\n]", "p.jsonl: no usable conversations"},
		{"[\n{\"conversations\": []}\n", "p.jsonl:3: invalid JSON"},
		{"[1,", "p.jsonl:1: entry 0"},
	}
	for _, tt := range tests {
		_, err := ParsePrompts("p.jsonl", []byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.in, err, tt.want)
		}
	}
	if _, err := LoadPrompts(filepath.Join(t.TempDir(), "missing.jsonl")); err == nil || !strings.Contains(err.Error(), "missing.jsonl") {
		t.Errorf("missing file: %v", err)
	}
}

func TestParseShareGPT(t *testing.T) {
	in := `[
  {"id": "a", "conversations": [
    {"from": "human", "value": "What is the capital of France?"},
    {"from": "gpt", "value": "The capital of France is Paris."},
    {"from": "human", "value": "And of Spain?"}]},
  {"id": "skip: no reply", "conversations": [{"from": "human", "value": "hello?"}]},
  {"id": "skip: empty", "conversations": []},
  {"id": "system first", "conversations": [
    {"from": "system", "value": "You are terse."},
    {"from": "human", "value": "2+2?"},
    {"from": "gpt", "value": "4"}]}
]`
	ps, err := ParsePrompts("sharegpt.json", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 {
		t.Fatalf("%d prompts, want 2: %+v", len(ps), ps)
	}
	// "The capital of France is Paris." = 6 words + "." = 7 tokens.
	if ps[0].Text != "What is the capital of France?" || ps[0].MaxTokens != 7 || ps[1].Text != "2+2?" || ps[1].MaxTokens != 1 {
		t.Errorf("%+v", ps)
	}
}

func TestCountTokens(t *testing.T) {
	for in, want := range map[string]int{"": 0, "Paris.": 2, "The capital of France is Paris.": 7, "internationalization": 3, "2+2 = 4.": 6, "  héllo wörld ": 2} {
		if got := CountTokens(in); got != want {
			t.Errorf("CountTokens(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestSynthetic(t *testing.T) {
	a, err := Synthetic(50, 100, 32, 7)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Synthetic(50, 100, 32, 7)
	c, _ := Synthetic(50, 100, 32, 8)
	for i := range a {
		if a[i].Text != b[i].Text {
			t.Fatal("same seed, different prompts")
		}
		if n := CountTokens(a[i].Text); n != 100 || a[i].InputTokens != 100 || a[i].MaxTokens != 32 {
			t.Errorf("prompt %d: %d tokens, %+v", i, n, a[i])
		}
	}
	if a[3].Text == c[3].Text || a[3].Text == a[4].Text {
		t.Error("different seeds or indexes gave the same prompt")
	}
	if _, err := Synthetic(0, 1, 1, 0); err == nil {
		t.Error("zero prompts: no error")
	}
}

func TestJSONLRoundTrip(t *testing.T) {
	in := []Result{
		{Seq: 0, Start: time.Unix(1700000000, 5).UTC(), TTFT: 50 * time.Millisecond, ITL: []time.Duration{10 * time.Millisecond, 11 * time.Millisecond},
			E2EL: 71 * time.Millisecond, InputTokens: 9, OutputTokens: 3, UsageReported: true, Status: 200},
		{Seq: 1, Start: time.Unix(1700000001, 0).UTC(), Warmup: true, E2EL: time.Second, Status: 503, ErrorKind: ErrHTTP5xx, Error: "HTTP 503: loading"},
	}
	var buf bytes.Buffer
	for i := range in {
		if err := WriteJSONL(&buf, &in[i]); err != nil {
			t.Fatal(err)
		}
	}
	if bytes.Count(buf.Bytes(), []byte("\n")) != 2 || !bytes.Contains(buf.Bytes(), []byte(`"ttft_ns":50000000`)) {
		t.Errorf("encoded %s", buf.String())
	}
	var out []Result
	if err := ReadJSONL(&buf, "r.jsonl", func(r *Result) error { out = append(out, *r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || !out[0].Start.Equal(in[0].Start) || out[0].ITL[1] != in[0].ITL[1] || out[1].Error != in[1].Error || !out[1].Warmup {
		t.Errorf("read back %+v", out)
	}
	for _, bad := range []struct{ in, want string }{
		{"{\"seq\":0,\"start\":\"2024-01-01T00:00:00Z\"}\nnot json\n", "r.jsonl:2: expected a JSON object"},
		{"{\"seq\":\"x\"}", "r.jsonl:1: field \"seq\""},
		{"{\"seq\":1}", "r.jsonl:1: result without \"start\""},
		{"{\"start\":\"2024-01-01T00:00:00Z\",\"ttft_ns\":-1}", "r.jsonl:1: negative"},
	} {
		err := ReadJSONL(strings.NewReader(bad.in), "r.jsonl", func(*Result) error { return nil })
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want %q", bad.in, err, bad.want)
		}
	}
}

func FuzzParsePrompts(f *testing.F) {
	seed, _ := os.ReadFile("../testdata/prompts/benchmark_prompts.jsonl")
	f.Add(seed)
	f.Add([]byte(`[{"conversations":[{"from":"human","value":"q"},{"from":"gpt","value":"a b"}]}]`))
	f.Add([]byte(`{"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}],"max_tokens":3}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := ParsePrompts("f", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if len(ps) == 0 {
			t.Fatal("no prompts and no error")
		}
		for _, p := range ps {
			if p.Text == "" && len(p.Messages) == 0 || p.MaxTokens < 0 {
				t.Fatalf("bad prompt %+v", p)
			}
		}
	})
}

func FuzzReadJSONL(f *testing.F) {
	f.Add([]byte(`{"seq":0,"start":"2024-01-01T00:00:00Z","ttft_ns":5,"itl_ns":[1,2],"e2el_ns":9,"output_tokens":3}`))
	f.Add([]byte("{}\n\n{\"start\":null}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		err := ReadJSONL(bytes.NewReader(data), "f", func(r *Result) error {
			if r.Start.IsZero() || r.TTFT < 0 {
				t.Fatalf("accepted %+v", r)
			}
			return nil
		})
		if err != nil && !strings.HasPrefix(err.Error(), "f") {
			t.Fatalf("error does not name the file: %v", err)
		}
	})
}

// FuzzStream feeds arbitrary bytes as a streamed response body: the client
// must classify, never panic.
func FuzzStream(f *testing.F) {
	f.Add([]byte(chatEvent("a") + "data: [DONE]\n\n"))
	f.Add([]byte("data: {\"choices\":[{\"text\":\"x\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n"))
	f.Add([]byte("data: {\"error\": 1}\n\n"))
	c, err := NewClient(Target{Endpoint: "http://127.0.0.1:1"}, 1)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &Result{Start: time.Now()}
		c.stream(t.Context(), t.Context(), bufioReader(data), r)
		if r.OK() && (r.OutputTokens < 0 || r.TTFT < 0) {
			t.Fatalf("%+v", r)
		}
		if !r.OK() && r.ErrorKind != ErrBadResponse && r.ErrorKind != ErrEmpty {
			t.Fatalf("kind %q for a complete body", r.ErrorKind)
		}
	})
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReaderSize(bytes.NewReader(b), 16<<10) }
