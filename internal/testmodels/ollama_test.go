package testmodels

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/testenv"
)

// The tests here run the GGUF models on a real engine, Ollama (llama.cpp):
// the binary MODELSHIP_OLLAMA_BIN names, else `ollama` on PATH
// (.ci/deps/ollama-build.sh builds one). Without one they skip, except under
// CI=true where they fail.

// ollamaServer is an `ollama serve` of its own: a free loopback port, its
// own models folder and HOME.
type ollamaServer struct {
	bin, url string
	env      []string
	log      *testenv.SyncBuffer
	hc       *http.Client
}

func startOllama(tb testing.TB) *ollamaServer {
	tb.Helper()
	bin := testenv.Ollama(tb)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := tb.TempDir()
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "OLLAMA_") && !strings.HasPrefix(e, "HOME=") {
			env = append(env, e)
		}
	}
	env = append(env, "OLLAMA_HOST="+addr, "OLLAMA_MODELS="+filepath.Join(dir, "models"),
		"HOME="+dir, "OLLAMA_KEEP_ALIVE=-1", "OLLAMA_NOPRUNE=1")
	s := &ollamaServer{bin: bin, url: "http://" + addr, env: env, log: &testenv.SyncBuffer{},
		hc: &http.Client{Timeout: 2 * time.Minute}}
	cmd := exec.Command(bin, "serve")
	cmd.Env, cmd.Stdout, cmd.Stderr = env, s.log, s.log
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tb.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
			tb.Errorf("ollama serve did not stop within 15s of SIGTERM")
		}
		if tb.Failed() {
			tb.Logf("ollama serve log (end):\n%s", tail(s.log.String(), 4000))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.url + "/api/version")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		select {
		case err := <-done:
			tb.Fatalf("ollama serve exited: %v\n%s", err, tail(s.log.String(), 4000))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("ollama serve did not answer on %s within 30s", s.url)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// create makes model name from the GGUF file at path (ollama create with a
// Modelfile "FROM path").
func (s *ollamaServer) create(tb testing.TB, name, path string) {
	tb.Helper()
	mf := filepath.Join(tb.TempDir(), "Modelfile")
	if err := os.WriteFile(mf, []byte("FROM "+path+"\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(s.bin, "create", name, "-f", mf)
	cmd.Env = s.env
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("ollama create %s: %v\n%s", name, err, tail(string(out), 2000))
	}
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatReply struct {
	Content      string
	FinishReason string
	Tokens       int
}

// chat sends a /v1/chat/completions request at temperature 0.
func (s *ollamaServer) chat(model string, messages []chatMessage, maxTokens int) (chatReply, error) {
	body, _ := json.Marshal(map[string]any{"model": model, "messages": messages, "max_tokens": maxTokens, "temperature": 0})
	resp, err := s.hc.Post(s.url+"/v1/chat/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		return chatReply{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return chatReply{}, fmt.Errorf("HTTP %d: %s", resp.StatusCode, tail(string(b), 500))
	}
	var r struct {
		Choices []struct {
			Message      chatMessage `json:"message"`
			FinishReason string      `json:"finish_reason"`
		} `json:"choices"`
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(b, &r); err != nil || len(r.Choices) != 1 {
		return chatReply{}, fmt.Errorf("bad reply %s: %v", tail(string(b), 500), err)
	}
	return chatReply{r.Choices[0].Message.Content, r.Choices[0].FinishReason, r.Usage.CompletionTokens}, nil
}

// writeGGUF writes b to a temporary file and returns its path.
func writeGGUF(tb testing.TB, name string, b []byte) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), name+".gguf")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

// TestOllamaRunsCommittedGGUF serves the committed good and regressed models
// on Ollama and checks, through /v1/chat/completions at temperature 0, that
// good answers every validation case's keywords within its max_tokens and
// regressed none, that answers repeat exactly, and that the broken model is
// created but fails its first request.
func TestOllamaRunsCommittedGGUF(t *testing.T) {
	s := startOllama(t)
	abs := func(dir string) string {
		p, err := filepath.Abs(filepath.Join(committed, dir, GGUFModelFile))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	t0 := time.Now()
	s.create(t, "good", abs(GGUFGoodDir))
	s.create(t, "regressed", abs(GGUFRegressedDir))
	t.Logf("created good and regressed in %v", time.Since(t0).Round(time.Millisecond))

	cases := validationCases(t)
	for _, m := range []struct {
		name, answer string
		good         bool
	}{{"good", GoodAnswer, true}, {"regressed", RegressedAnswer, false}} {
		for _, c := range cases {
			msgs := make([]chatMessage, len(c.Messages))
			for i, cm := range c.Messages {
				msgs[i] = chatMessage{cm.Role, cm.Content}
			}
			t1 := time.Now()
			r, err := s.chat(m.name, msgs, c.MaxTokens)
			if err != nil {
				t.Fatalf("%s/%s: %v", m.name, c.Name, err)
			}
			t.Logf("%s/%s: %d tokens in %v", m.name, c.Name, r.Tokens, time.Since(t1).Round(time.Millisecond))
			if r.Tokens > c.MaxTokens {
				t.Errorf("%s/%s: %d completion tokens, max_tokens %d", m.name, c.Name, r.Tokens, c.MaxTokens)
			}
			// The answer, cut at max_tokens.
			if want := prefix(m.answer, c.MaxTokens); r.Content != want {
				t.Errorf("%s/%s: answered %q, want %q", m.name, c.Name, r.Content, want)
			}
			for _, k := range c.ExpectedKeywords {
				if has := strings.Contains(strings.ToLower(r.Content), strings.ToLower(k)); has != m.good {
					t.Errorf("%s/%s: contains %q = %v in %q", m.name, c.Name, k, has, r.Content)
				}
			}
		}
	}

	// A prompt outside the suite, twice: the same full answer, ending in EOS.
	msgs := []chatMessage{{"user", "Tell me a story about a GPU that learned to dream."}}
	first, err := s.chat("good", msgs, 256)
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.chat("good", msgs, 256)
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Errorf("the same prompt answered %+v, then %+v", first, second)
	}
	// Ollama counts the EOS token in completion_tokens.
	if n := len(AnswerTokens(GoodAnswer)); first.Content != GoodAnswer || first.FinishReason != "stop" || first.Tokens < n || first.Tokens > n+1 {
		t.Errorf("full answer %+v, want %q (%d tokens, and EOS) and finish_reason stop", first, GoodAnswer, n)
	}

	// broken: create accepts it, the first request fails.
	s.create(t, "broken", writeGGUF(t, "broken", BrokenGGUF()))
	if r, err := s.chat("broken", msgs, 8); err == nil {
		t.Errorf("the broken model answered %+v", r)
	} else {
		t.Logf("broken: %v", err)
	}
}

// decodeStats streams one /api/chat request and returns the time to the
// first content chunk and Ollama's decode rate (eval_count/eval_duration).
func (s *ollamaServer) decodeStats(tb testing.TB, model string, maxTokens int) (ttft time.Duration, tokPerS float64, tokens int) {
	tb.Helper()
	body, _ := json.Marshal(map[string]any{"model": model, "stream": true,
		"messages": []chatMessage{{"user", "Explain how a transformer decoder generates text one token at a time."}},
		"options":  map[string]any{"temperature": 0, "num_predict": maxTokens}})
	req, _ := http.NewRequestWithContext(context.Background(), "POST", s.url+"/api/chat", bytes.NewReader(body))
	t0 := time.Now()
	resp, err := s.hc.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var ch struct {
			Message      chatMessage `json:"message"`
			Done         bool        `json:"done"`
			EvalCount    int         `json:"eval_count"`
			EvalDuration int64       `json:"eval_duration"`
			Error        string      `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ch); err != nil {
			tb.Fatalf("%s: %v", sc.Text(), err)
		}
		if ch.Error != "" {
			tb.Fatal(ch.Error)
		}
		if ttft == 0 && ch.Message.Content != "" {
			ttft = time.Since(t0)
		}
		if ch.Done {
			return ttft, float64(ch.EvalCount) / (float64(ch.EvalDuration) / 1e9), ch.EvalCount
		}
	}
	tb.Fatalf("stream ended early: %v", sc.Err())
	return
}

// benchmarkDecode reports the decode rate and warm time to first token of
// a model (loaded before the timer starts).
func benchmarkDecode(b *testing.B, path string) {
	s := startOllama(b)
	t0 := time.Now()
	s.create(b, "m", path)
	create := time.Since(t0)
	t0 = time.Now()
	s.decodeStats(b, "m", 1) // loads the model
	b.Logf("create %v, load and first request %v", create.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	b.ResetTimer()
	var ttft time.Duration
	var rate float64
	for i := 0; i < b.N; i++ {
		t, r, n := s.decodeStats(b, "m", 64)
		if n < 64 {
			b.Fatalf("%d tokens, want 64", n)
		}
		ttft += t
		rate += r
	}
	b.ReportMetric(rate/float64(b.N), "tok/s")
	b.ReportMetric(float64(ttft.Milliseconds())/float64(b.N), "ttft-ms")
}

// BenchmarkOllamaDecodeGood: go test -run '^$' -bench OllamaDecode -benchtime 5x ./internal/testmodels
func BenchmarkOllamaDecodeGood(b *testing.B) {
	benchmarkDecode(b, writeGGUF(b, "good", GoodGGUF()))
}

// BenchmarkOllamaDecodeSlow measures the slow model (WriteSlowGGUF).
func BenchmarkOllamaDecodeSlow(b *testing.B) {
	p := filepath.Join(b.TempDir(), "slow.gguf")
	t0 := time.Now()
	if err := WriteSlowGGUF(p); err != nil {
		b.Fatal(err)
	}
	b.Logf("wrote the slow model (%d bytes) in %v", LlamaGGUFSize(LlamaSlow), time.Since(t0).Round(time.Millisecond))
	benchmarkDecode(b, p)
}
