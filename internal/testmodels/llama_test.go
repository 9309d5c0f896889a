package testmodels

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gguf "github.com/gpustack/gguf-parser-go"
)

// validationCases reads the bundled validation suite.
func validationCases(t testing.TB) []struct {
	validationCase
	MaxTokens int `json:"max_tokens"`
} {
	t.Helper()
	b, err := os.ReadFile("../../testdata/suites/validation_cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		validationCase
		MaxTokens int `json:"max_tokens"`
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 5 {
		t.Fatalf("only %d validation cases", len(cases))
	}
	return cases
}

// prefix returns the text of an answer's first n tokens.
func prefix(answer string, n int) string {
	w := strings.Split(answer, " ")
	return strings.Join(w[:min(n, len(w))], " ")
}

// TestLlamaAnswersAgainstValidationCases: within every case's max_tokens
// the good answer holds all its keywords and the regressed answer none.
func TestLlamaAnswersAgainstValidationCases(t *testing.T) {
	for _, c := range validationCases(t) {
		g, r := prefix(GoodAnswer, c.MaxTokens), prefix(RegressedAnswer, c.MaxTokens)
		for _, k := range c.ExpectedKeywords {
			if !strings.Contains(strings.ToLower(g), strings.ToLower(k)) {
				t.Errorf("%s: good answer's first %d tokens %q lack %q", c.Name, c.MaxTokens, g, k)
			}
			if strings.Contains(strings.ToLower(RegressedAnswer), strings.ToLower(k)) {
				t.Errorf("%s: regressed answer %q contains %q", c.Name, r, k)
			}
		}
	}
	for _, a := range []string{GoodAnswer, RegressedAnswer} {
		if n := len(AnswerTokens(a)); n < 80 || n >= LlamaSmall.Hidden {
			t.Errorf("answer of %d tokens; want 80 or more (long benchmark replies) and under the hidden size %d", n, LlamaSmall.Hidden)
		}
	}
}

// lookupModel is what greedy decoding needs from a lookup-table GGUF file.
type lookupModel struct {
	tokens     []string
	eos        int
	hidden     int
	embd, outw []float32 // [vocab][hidden]
}

// readLookup parses a lookup-table model with gguf-parser-go and reads its
// embedding and output matrices.
func readLookup(t *testing.T, path string) lookupModel {
	t.Helper()
	gf, err := gguf.ParseGGUFFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m lookupModel
	v, _ := gf.Header.MetadataKV.Get("tokenizer.ggml.tokens")
	m.tokens = v.ValueArray().ValuesString()
	e, _ := gf.Header.MetadataKV.Get("tokenizer.ggml.eos_token_id")
	m.eos = int(e.ValueUint32())
	m.hidden = int(gf.Architecture().EmbeddingLength)
	floats := func(name string) []float32 {
		for _, ti := range gf.TensorInfos {
			if ti.Name == name {
				if ti.Type != gguf.GGMLTypeF32 {
					t.Fatalf("%s is %s, want F32", name, ti.Type)
				}
				start := gf.TensorDataStartOffset + int64(ti.Offset)
				b := raw[start : start+int64(ti.Bytes())]
				out := make([]float32, len(b)/4)
				for i := range out {
					out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
				}
				return out
			}
		}
		t.Fatalf("no tensor %s", name)
		return nil
	}
	m.embd, m.outw = floats("token_embd.weight"), floats("output.weight")
	for _, ti := range gf.TensorInfos {
		if strings.HasPrefix(ti.Name, "blk.") && !strings.HasSuffix(ti.Name, "_norm.weight") {
			start := gf.TensorDataStartOffset + int64(ti.Offset)
			if !allZero(raw[start : start+int64(ti.Bytes())]) {
				t.Errorf("%s is not all zeros", ti.Name)
			}
		}
	}
	return m
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// next is the greedy choice after token id when the block weights are zero:
// argmax(output · rmsnorm(embedding)), and the margin to the runner-up.
func (m lookupModel) next(id int) (int, float64) {
	x := m.embd[id*m.hidden : (id+1)*m.hidden]
	var ss float64
	for _, f := range x {
		ss += float64(f) * float64(f)
	}
	scale := 1 / math.Sqrt(ss/float64(m.hidden)+1e-5)
	best, first, second := -1, math.Inf(-1), math.Inf(-1)
	for t := range m.tokens {
		var l float64
		for k, f := range m.outw[t*m.hidden : (t+1)*m.hidden] {
			l += float64(f) * float64(x[k]) * scale
		}
		if l > first {
			best, first, second = t, l, first
		} else if l > second {
			second = l
		}
	}
	return best, first - second
}

// TestLlamaGGUFDecodesAnswer decodes the committed models greedily in Go,
// from the chat template's last token ("\n"), and checks that each answers
// its text, then EOS, with margins a repeat penalty cannot flip.
func TestLlamaGGUFDecodesAnswer(t *testing.T) {
	for dir, answer := range map[string]string{GGUFGoodDir: GoodAnswer, GGUFRegressedDir: RegressedAnswer} {
		m := readLookup(t, filepath.Join(committed, dir, GGUFModelFile))
		if len(m.tokens) != LlamaVocab() {
			t.Errorf("%s: %d tokens, want %d", dir, len(m.tokens), LlamaVocab())
		}
		want := AnswerTokens(answer)
		id := int('\n') // token id = byte; the template ends "<|im_start|>assistant\n"
		var got []string
		for len(got) <= len(want) {
			n, margin := m.next(id)
			if margin < 10 {
				t.Errorf("%s: after %q the margin is %.2f, want 10 or more", dir, m.tokens[id], margin)
			}
			if n == m.eos {
				break
			}
			got = append(got, m.tokens[n])
			id = n
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s decodes %q, want %q", dir, got, want)
		}
		// Every other token starts the answer too: the prompt's content
		// does not matter.
		for _, s := range []string{"a", "<|im_end|>", "<|endoftext|>"} {
			var id int
			for i, tok := range m.tokens {
				if tok == s {
					id = i
				}
			}
			if n, _ := m.next(id); m.tokens[n] != want[0] {
				t.Errorf("%s: after %q comes %q, want %q", dir, s, m.tokens[n], want[0])
			}
		}
	}
}

func TestLlamaGGUFMetadata(t *testing.T) {
	for _, dir := range []string{GGUFGoodDir, GGUFRegressedDir} {
		path := filepath.Join(committed, dir, GGUFModelFile)
		gf, err := gguf.ParseGGUFFile(path)
		if err != nil {
			t.Fatal(err)
		}
		a := gf.Architecture()
		g := LlamaSmall
		if gf.Header.Version != gguf.GGUFVersionV3 || a.Architecture != "llama" || a.BlockCount != uint64(g.Layers) ||
			a.EmbeddingLength != uint64(g.Hidden) || a.AttentionHeadCount != uint64(g.Heads) ||
			a.AttentionHeadCountKV != uint64(g.KVHeads) || len(a.FeedForwardLength) == 0 || a.FeedForwardLength[0] != uint64(g.FF) {
			t.Errorf("%s: version %d, architecture %+v", dir, gf.Header.Version, a)
		}
		tk := gf.Tokenizer()
		if tk.Model != "gpt2" || tk.MergesLength < 1 || tk.TokensLength != uint64(LlamaVocab()) {
			t.Errorf("%s: tokenizer %+v", dir, tk)
		}
		if v, ok := gf.Header.MetadataKV.Get("tokenizer.chat_template"); !ok || v.ValueString() != ChatMLTemplate {
			t.Errorf("%s: chat template missing or not ChatML", dir)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() != LlamaGGUFSize(LlamaSmall) {
			t.Errorf("%s: %d bytes, LlamaGGUFSize says %d", dir, st.Size(), LlamaGGUFSize(LlamaSmall))
		}
	}
	if !bytes.Equal(GoodGGUF(), GoodGGUF()) {
		t.Error("GoodGGUF differs between calls")
	}
}

// TestWriteSlowGGUF checks that the slow model streams the same kind of file
// at its geometry (size only: it is about half a gigabyte).
func TestWriteSlowGGUF(t *testing.T) {
	if testing.Short() {
		t.Skip("writes about 0.5 GB")
	}
	path := filepath.Join(t.TempDir(), "slow.gguf")
	if err := WriteSlowGGUF(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != LlamaGGUFSize(LlamaSlow) {
		t.Errorf("%d bytes, want %d", st.Size(), LlamaGGUFSize(LlamaSlow))
	}
	gf, err := gguf.ParseGGUFFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if a := gf.Architecture(); a.BlockCount != uint64(LlamaSlow.Layers) || a.EmbeddingLength != uint64(LlamaSlow.Hidden) {
		t.Errorf("architecture %+v", a)
	}
}
