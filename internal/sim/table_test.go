package sim

import (
	"context"
	"encoding/binary"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseTable(t *testing.T) {
	good := `{
  "responses": [ {"match": ["capital", "france"], "reply": "The capital of France is Paris."} ],
  "default_reply": "I am a tiny test model and I do not know.",
  "latency": {"ttft_ms": 15, "itl_ms": 2, "jitter": 0.1},
  "load_seconds": 0.2
}`
	tb, err := ParseTable([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if tb.Latency.TTFTms != 15 || tb.Latency.ITLms != 2 || tb.LoadSeconds != 0.2 || len(tb.Responses) != 1 ||
		tb.Reply("what is the Capital of FRANCE") != "The capital of France is Paris." ||
		tb.Reply("france") != "I am a tiny test model and I do not know." {
		t.Fatalf("%+v", tb)
	}
	for _, tc := range []struct{ name, in, want string }{
		{"unknown field", `{"default_reply":"x","latncy":{}}`, `unknown field "latncy"`},
		{"unknown nested field", `{"default_reply":"x","latency":{"ttft":1}}`, `unknown field "ttft"`},
		{"syntax", "{\n\"default_reply\": \"x\",\n}", "line 3 column 2"},
		{"type", `{"default_reply": 5}`, `field "default_reply": expected string, got JSON number`},
		{"empty", ``, "empty file"},
		{"trailing", `{"default_reply":"x"} {}`, "unexpected data after the JSON object"},
		{"no default", `{"responses":[]}`, `field "default_reply": expected a non-empty string`},
		{"empty match", `{"default_reply":"x","responses":[{"match":[],"reply":"y"}]}`, `field "responses[0].match": expected at least one string`},
		{"empty match string", `{"default_reply":"x","responses":[{"match":["a",""],"reply":"y"}]}`, `"responses[0].match[1]"`},
		{"empty reply", `{"default_reply":"x","responses":[{"match":["a"]}]}`, `field "responses[0].reply"`},
		{"negative ttft", `{"default_reply":"x","latency":{"ttft_ms":-1}}`, `field "latency.ttft_ms": expected a number from 0 to`},
		{"jitter over 1", `{"default_reply":"x","latency":{"jitter":2}}`, `field "latency.jitter"`},
		{"load too long", `{"default_reply":"x","load_seconds":1e9}`, `field "load_seconds"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTable([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLoadTableNamesFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, TableFile)
	os.WriteFile(p, []byte(`{"default_reply":"x","extra":1}`), 0o644)
	_, err := LoadTable(p)
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), `unknown field "extra"`) {
		t.Fatalf("error %v must name %s and the field", err, p)
	}
	// TableFor reads the directory's table, or falls back to the default.
	if _, err := TableFor(dir); err == nil {
		t.Fatal("TableFor ignored a bad table")
	}
	other := t.TempDir()
	tb, err := TableFor(other)
	if err != nil || tb.DefaultReply != DefaultTable().DefaultReply {
		t.Fatalf("%+v %v", tb, err)
	}
	if _, err := ParseTable(mustJSON(DefaultTable())); err != nil {
		t.Fatalf("default table does not parse: %v", err)
	}
}

func mustJSON(tb Table) []byte {
	var b strings.Builder
	b.WriteString(`{"responses":[`)
	for i, e := range tb.Responses {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"match":["` + strings.Join(e.Match, `","`) + `"],"reply":"` + e.Reply + `"}`)
	}
	b.WriteString(`],"default_reply":"` + tb.DefaultReply + `"}`)
	return []byte(b.String())
}

func FuzzParseTable(f *testing.F) {
	f.Add([]byte(`{"responses":[{"match":["a"],"reply":"b"}],"default_reply":"x","latency":{"ttft_ms":1,"itl_ms":1,"jitter":0.5},"load_seconds":1}`))
	f.Add([]byte(`{"default_reply":"x"}`))
	f.Add([]byte(`{"default_reply":"x","latency":{"jitter":-0}}`))
	f.Add([]byte("{\n\"x\":"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tb, err := ParseTable(data)
		if err != nil {
			return
		}
		// Whatever parses is usable: a reply for any text, sane latency.
		if tb.Reply("anything") == "" || tb.Latency.Jitter > 1 || tb.Latency.TTFTms < 0 || tb.LoadSeconds < 0 {
			t.Fatalf("accepted a bad table: %+v", tb)
		}
	})
}

func TestTokenize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"The capital of France is Paris.", []string{"The", " capital", " of", " France", " is", " Paris", "."}},
		{"  hi  ", []string{"  hi", "  "}},
		{"internationalization", []string{"internat", "ionaliza", "tion"}},
		{"2+2=4", []string{"2", "+", "2", "=", "4"}},
		{"héllo wörld!", []string{"héllo", " wörld", "!"}},
	} {
		got := Tokenize(tc.in)
		if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
			t.Errorf("Tokenize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzTokenize(f *testing.F) {
	f.Add("The capital of France is Paris.")
	f.Add("  \t\n x")
	f.Add("\xff\xfe abc")
	f.Fuzz(func(t *testing.T, s string) {
		toks := Tokenize(s)
		if strings.Join(toks, "") != s {
			t.Fatalf("tokens %q do not reassemble %q", toks, s)
		}
		for _, tok := range toks {
			if tok == "" {
				t.Fatalf("empty token in %q", toks)
			}
		}
	})
}

// writeCheckpoint writes a minimal safetensors checkpoint; corrupt makes
// the safetensors header length point past the end of the file.
func writeCheckpoint(t *testing.T, corrupt bool) string {
	t.Helper()
	dir := t.TempDir()
	cfg := `{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":8,"num_hidden_layers":1,
"num_attention_heads":2,"num_key_value_heads":2,"intermediate_size":16,"vocab_size":32,"max_position_embeddings":256,"torch_dtype":"float32"}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	hdr := []byte(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`)
	var buf []byte
	n := uint64(len(hdr))
	if corrupt {
		n = 1 << 40
	}
	buf = binary.LittleEndian.AppendUint64(buf, n)
	buf = append(buf, hdr...)
	buf = append(buf, make([]byte, 8)...)
	if err := os.WriteFile(filepath.Join(dir, "model.safetensors"), buf, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLoad(t *testing.T) {
	dir := writeCheckpoint(t, false)
	s, err := Load(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.ModelName() != dir || s.MaxModelLen() != 256 {
		t.Fatalf("name %q max len %d", s.ModelName(), s.MaxModelLen())
	}
	if _, err := Load(context.Background(), dir, Options{MaxModelLen: 512}); err == nil || !strings.Contains(err.Error(), "256") {
		t.Fatalf("max-model-len above the model's context: %v", err)
	}
	bad := writeCheckpoint(t, true)
	_, err = Load(context.Background(), bad, Options{})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(bad, "model.safetensors")) {
		t.Fatalf("corrupt checkpoint: error %v must name model.safetensors", err)
	}
}

// The shared test checkpoints (internal/testmodels).
const models = "../../testdata/models/"

func TestTestdataCheckpoints(t *testing.T) {
	ask := func(path string) string {
		t.Helper()
		s, err := Load(context.Background(), path, Options{ServedModelName: testModel})
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		s.table.Latency = Latency{} // answers, not timing, are under test
		s.MarkReady()
		ts := httptest.NewServer(s.Handler())
		defer ts.Close()
		code, body := post(t, ts.URL+"/v1/chat/completions", chatReq("What is the capital of France?", nil))
		if code != 200 {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		return parseResponse(t, true, body).text[0]
	}
	good, regressed := ask(models+"good"), ask(models+"regressed")
	if good != "The capital of France is Paris." || good == regressed {
		t.Fatalf("good answers %q, regressed %q: want Paris and something else", good, regressed)
	}
	if got := ask(models + "sharded"); got != good {
		t.Fatalf("sharded answers %q", got)
	}
	if got := ask(models + "tiny-q4.gguf"); got != DefaultTable().Reply("capital of france") {
		t.Fatalf("GGUF (default table) answers %q", got)
	}
	slow, err := TableFor(models + "slow")
	if err != nil || slow.Latency.TTFTms <= 15 || slow.LoadSeconds < 1 {
		t.Fatalf("slow table %+v %v", slow.Latency, err)
	}
	_, err = Load(context.Background(), models+"corrupt", Options{})
	if err == nil || !strings.Contains(err.Error(), filepath.Join("corrupt", "model.safetensors")) {
		t.Fatalf("corrupt checkpoint: %v (want an error naming the bad file)", err)
	}
	t.Logf("corrupt: %v", err)
}
