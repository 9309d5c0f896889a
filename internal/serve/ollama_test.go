package serve

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/testenv"
	"github.com/modelship/modelship/internal/testmodels"
	"github.com/modelship/modelship/serving"
)

// startOllama runs serve with engine ollama (the real engine) on model.
func startOllama(t testing.TB, model string, mod func(*Config)) *harness {
	bin := testenv.Ollama(t)
	return startRun(t, func(c *Config) {
		c.Engine = EngineOllama
		c.EngineCommand = []string{bin, "serve"}
		c.ModelPath = model
		c.ServedModelName = "current"
		c.StopTimeout = 15 * time.Second
		if mod != nil {
			mod(c)
		}
	})
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, b)
	}
	return resp.StatusCode
}

// TestServeOllama: `modelship serve` with engine ollama makes the GGUF an
// Ollama model under the served name and its alias, with the settings
// that map (max-model-len is num_ctx, max-num-seqs OLLAMA_NUM_PARALLEL),
// loads it, and only then is ready; clients see exactly the served names
// and get the model's answers through the proxy; SIGTERM stops Ollama and
// its runner.
func TestServeOllama(t *testing.T) {
	h := startOllama(t, filepath.Join(testenv.RepoRoot(), "testdata/models", testmodels.GGUFGoodDir), func(c *Config) {
		c.ServedAliases = []string{"llm-v2"}
		c.Settings = serving.Settings{MaxModelLen: 512, MaxNumSeqs: 3}
	})
	h.waitReady()
	if !strings.Contains(h.logs.String(), "model loaded") {
		t.Errorf("ready before the model was loaded:\n%s", h.logs.String())
	}

	var models struct {
		Data []struct{ ID string } `json:"data"`
	}
	getJSON(t, h.base+"/v1/models", &models)
	var ids []string
	for _, m := range models.Data {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	if strings.Join(ids, ",") != "current,llm-v2" {
		t.Errorf("GET /v1/models ids %q, want exactly the served names current and llm-v2", ids)
	}

	for _, name := range []string{"current", "llm-v2"} {
		body := `{"model": "` + name + `", "messages": [{"role": "user", "content": "What is 2+2?"}], "max_tokens": 16, "temperature": 0}`
		resp, err := http.Post(h.base+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Model   string
			Choices []struct{ Message struct{ Content string } }
		}
		json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(out.Choices) == 0 || !strings.HasPrefix(testmodels.GoodAnswer, out.Choices[0].Message.Content) ||
			!strings.Contains(out.Choices[0].Message.Content, "4") || out.Model != name {
			t.Errorf("chat completion as %s: %d %+v, want the good model's answer", name, resp.StatusCode, out)
		}
	}

	// vLLM's /health, which probes ask, answers for Ollama too.
	if resp, err := http.Get(h.base + "/health"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET /health: %v %v, want 200", resp, err)
	} else {
		resp.Body.Close()
	}

	// Ollama exports no metrics: the proxy's own, under vLLM's names.
	resp, err := http.Post(h.base+"/v1/chat/completions", "application/json", strings.NewReader(
		`{"model": "current", "stream": true, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "temperature": 0}`))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	resp, err = http.Get(h.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`vllm:request_success_total{finished_reason="length",model_name="current"} 3`,
		`vllm:generation_tokens_total{model_name="current"} 37`, // 16 + 16 from usage, 5 streamed chunks
		`vllm:time_to_first_token_seconds_count{model_name="current"} 3`,
		`vllm:e2e_request_latency_seconds_count{model_name="current"} 3`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("GET /metrics lacks %s:\n%s", want, grepLines(string(metrics), "vllm:"))
		}
	}

	var v VersionInfo
	getJSON(t, h.base+"/version", &v)
	if v.Engine != "ollama" || v.EngineVersion != serving.OllamaVersion || !slices.Contains(v.EngineEnv, "OLLAMA_NUM_PARALLEL=3") ||
		!strings.Contains(v.EngineModelfile, "PARAMETER num_ctx 512") || strings.Join(v.EngineArgv, " ") != "ollama serve" && !strings.HasSuffix(strings.Join(v.EngineArgv, " "), "ollama serve") {
		t.Errorf("/version = %+v", v)
	}
	// What Ollama itself made of the Modelfile.
	resp, err = http.Post(h.base+"/api/show", "application/json", strings.NewReader(`{"model": "current"}`))
	if err != nil {
		t.Fatal(err)
	}
	show, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(show), `num_ctx`) || !strings.Contains(string(show), `512`) {
		t.Errorf("ollama's /api/show of the model has no num_ctx 512: %.300s", show)
	}

	h.sigs <- syscall.SIGTERM
	if err := h.wait(); err != nil {
		t.Errorf("Run after SIGTERM: %v", err)
	}
}

// TestServeOllamaBrokenModel: a GGUF that `ollama create` accepts but that
// cannot load never makes the server ready; /ready says why.
func TestServeOllamaBrokenModel(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "model.gguf"), testmodels.BrokenGGUF(), 0o644); err != nil {
		t.Fatal(err)
	}
	h := startOllama(t, dir, nil)
	var st ReadyStatus
	deadline := time.Now().Add(60 * time.Second)
	for {
		code := getJSON(t, h.base+"/ready", &st)
		if code == http.StatusOK {
			t.Fatalf("a broken model became ready: %+v", st)
		}
		if st.Check == "load" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no load failure reported within 60s; last /ready %+v", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(st.Reason, "loading current: ollama answered 500") {
		t.Errorf("/ready reason %q, want Ollama's load error", st.Reason)
	}
	h.sigs <- syscall.SIGTERM
	if err := h.wait(); err != nil {
		t.Errorf("Run after SIGTERM: %v", err)
	}
}

// A directory with no GGUF, or two, is refused before anything starts.
func TestFindGGUF(t *testing.T) {
	dir := t.TempDir()
	if _, err := FindGGUF(dir); err == nil || !strings.Contains(err.Error(), "has no *.gguf") {
		t.Errorf("empty dir: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "a.gguf"), nil, 0o644)
	if p, err := FindGGUF(dir); err != nil || filepath.Base(p) != "a.gguf" {
		t.Errorf("one file: %q %v", p, err)
	}
	os.WriteFile(filepath.Join(dir, "b.gguf"), nil, 0o644)
	if _, err := FindGGUF(dir); err == nil || !strings.Contains(err.Error(), "has 2") {
		t.Errorf("two files: %v", err)
	}
}

// BenchmarkOllamaProxyCost measures the serving proxy's cost on decode
// throughput: the same streamed chat completion (the good model's whole
// answer, about 100 tokens) straight to Ollama and through modelship
// serve, in pairs (which goes first alternates), one at a time. It reports
// tokens/s both ways and the median of the pairs' cost in percent (the
// goal is under 2%).
func BenchmarkOllamaProxyCost(b *testing.B) {
	h := startOllama(b, filepath.Join(testenv.RepoRoot(), "testdata/models", testmodels.GGUFGoodDir), func(c *Config) {
		c.Stdout, c.Stderr = io.Discard, io.Discard
	})
	h.waitReady()
	body := `{"model": "current", "stream": true, "temperature": 0, "max_tokens": 128, "messages": [{"role": "user", "content": "Tell me a story."}]}`
	stream := func(base string) (tokens int, d time.Duration) {
		t0 := time.Now()
		resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		buf, _ := io.ReadAll(resp.Body)
		return strings.Count(string(buf), `"delta":{"role":"assistant","content"`), time.Since(t0)
	}
	stream(h.engineBase) // warm
	var direct, proxied time.Duration
	var nd, np int
	var costs []float64 // per pair, so a noisy moment on a shared machine moves one sample, not the figure
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Which goes first alternates: no side always gets a warm engine.
		var n1, n2 int
		var d1, d2 time.Duration
		if i%2 == 0 {
			n1, d1 = stream(h.engineBase)
			n2, d2 = stream(h.base)
		} else {
			n2, d2 = stream(h.base)
			n1, d1 = stream(h.engineBase)
		}
		nd, direct, np, proxied = nd+n1, direct+d1, np+n2, proxied+d2
		if n1 > 0 && n2 > 0 {
			dt, pt := float64(n1)/d1.Seconds(), float64(n2)/d2.Seconds()
			costs = append(costs, 100*(dt-pt)/dt)
		}
	}
	b.StopTimer()
	if len(costs) == 0 {
		b.Fatal("no streamed tokens counted")
	}
	slices.Sort(costs)
	b.ReportMetric(float64(nd)/direct.Seconds(), "direct_tok/s")
	b.ReportMetric(float64(np)/proxied.Seconds(), "proxied_tok/s")
	b.ReportMetric(costs[len(costs)/2], "median_proxy_cost_%")
}

// grepLines is the lines of s that contain sub and are not comments.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
