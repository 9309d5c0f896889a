package testmodels

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
)

// Lookup-table llama models: real GGUF v3 files (architecture llama, a GPT-2
// style byte-level BPE tokenizer, a ChatML chat template, F32 tensors) that a
// real engine such as Ollama / llama.cpp loads and runs, built so that greedy
// decoding is a lookup table:
//
//   - every block weight is zero except the RMS norms (ones), so attention
//     and the feed-forward add nothing and the residual stream at each
//     position is the current token's embedding;
//   - embeddings are one-hot: answer token i (1-based) has a 1 in dimension
//     i, every other token (prompt text, control tokens) in dimension 0;
//   - the separate output matrix maps dimension 0 to the answer's first
//     token, dimension i to token i+1 and the last one to <|im_end|> (EOS).
//
// After RMS normalisation the chosen logit is √hidden (≥ 11) and every other
// logit is 0, so no default penalty (repeat penalty 1.1 over the last 64
// tokens divides a positive logit by 1.1) can flip the choice. Every prompt
// ends in the template's "<|im_start|>assistant\n", whose last token maps to
// dimension 0, so at temperature 0 a model answers its fixed text, token by
// token, then stops: a shorter max_tokens gives a prefix of it. Each answer
// token must therefore be distinct (a word with its leading space and
// punctuation, one vocabulary entry each).
//
// The answers end with EOS instead of cycling: with no max_tokens Ollama
// generates without limit (num_predict -1, shifting the context), so a
// cycling model would never finish a request that forgets max_tokens. At
// about 100 tokens the good answer is still long enough for the benchmark
// (its default max_tokens is 128; the simulator's long replies are 40-120
// words).

// LlamaGeometry is the shape of a lookup-table llama model.
type LlamaGeometry struct {
	Layers, Hidden, Heads, KVHeads, FF, Context int
}

// Geometries of the lookup-table models. LlamaSmall is the committed good
// and regressed models' (about 0.85 MB each, hundreds of tokens/s on a CPU);
// LlamaSlow is the slow model's, the good answers on a network wide and deep
// enough to decode at well under 50 tokens/s on a 2-core CPU.
var (
	LlamaSmall = LlamaGeometry{Layers: 1, Hidden: 128, Heads: 4, KVHeads: 2, FF: 128, Context: 4096}
	LlamaSlow  = LlamaGeometry{Layers: 4, Hidden: 1024, Heads: 16, KVHeads: 4, FF: 2816, Context: 4096}
)

// GoodAnswer is what the good (and slow) GGUF models answer every prompt: it
// holds every bundled validation case's keywords within that case's
// max_tokens ("4" is token 1, "Paris" 2, "Jupiter" 8, "H2O" 13, "GPU" 14,
// "attention" 35, "memory" 54).
const GoodAnswer = "4. Paris is the capital of France; Jupiter, largest planet; water = H2O. " +
	"GPU haiku: silicon rivers hum, ten thousand cores glow, tokens fall like rain. " +
	"A KV cache stores keys and values that attention layers computed for earlier positions, " +
	"so generating each new token reuses them rather than recomputing everything. " +
	"It trades memory against speed: its size grows with context length, layer count, head dimension plus batch; " +
	"serving engines page those blocks while grouped-query designs shrink this footprint further. " +
	"Quantized weights, continuous batching, speculative decoding, fused kernels: " +
	"modern inference stacks combine such tricks to answer many users quickly, cheaply, reliably."

// RegressedAnswer is what the regressed GGUF model answers every prompt:
// fluent, the same length, and missing every validation keyword.
const RegressedAnswer = "5. Lyon is the capital of France; Saturn, largest planet; water = CO2. " +
	"Autumn haiku: old pond, frog leaps, silent splash fades into cold evening mist. " +
	"A KV cache means a small key-value store, like Redis or Memcached, that web servers keep beside their database. " +
	"It remembers recent query results so repeated requests skip disk; entries expire after timeouts, " +
	"and operators size it by counting keys. Nothing here concerns language models; this simply makes rarely changing lookups faster. " +
	"Spreadsheets, filing cabinets, paper notebooks, sticky notes: " +
	"offices used similar tricks long before computers arrived, with mixed success."

// ChatMLTemplate is the models' tokenizer.chat_template; Ollama recognises
// it as its chatml template.
const ChatMLTemplate = "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}" +
	"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}" +
	"{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"

// GGUF files Generate writes, as directory/file under the output folder.
const (
	GGUFGoodDir      = "gguf-good"
	GGUFRegressedDir = "gguf-regressed"
	GGUFModelFile    = "model.gguf"
)

// GGUFDirs are the lookup-table model directories Generate writes, each
// holding GGUFModelFile.
var GGUFDirs = []string{GGUFGoodDir, GGUFRegressedDir}

// Control tokens, after the byte, merge and word tokens.
const (
	tokEndOfText = "<|endoftext|>"
	tokIMStart   = "<|im_start|>"
	tokIMEnd     = "<|im_end|>"
)

const ggufBool = 7

// AnswerTokens splits an answer into its tokens as the vocabulary holds them
// (byte-level: a leading space is "Ġ").
func AnswerTokens(answer string) []string {
	words := strings.Split(answer, " ")
	out := make([]string, len(words))
	for i, w := range words {
		if i > 0 {
			w = " " + w
		}
		out[i] = byteLevelString(w)
	}
	return out
}

func byteLevelString(s string) string {
	bl := byteLevel()
	var b strings.Builder
	for _, c := range []byte(s) {
		b.WriteRune(bl[c])
	}
	return b.String()
}

// llamaVocab is the vocabulary all lookup-table models share, like a base
// model and its fine-tunes: the 256 byte tokens (id = byte), "ĠĠ" (the one
// merge), every word of both answers, then the control tokens.
type llamaVocab struct {
	tokens []string
	types  []int32
	ids    map[string]int
}

func newLlamaVocab() *llamaVocab {
	v := &llamaVocab{ids: map[string]int{}}
	add := func(s string, typ int32) {
		if _, ok := v.ids[s]; ok {
			return
		}
		v.ids[s] = len(v.tokens)
		v.tokens = append(v.tokens, s)
		v.types = append(v.types, typ)
	}
	for _, r := range byteLevel() {
		add(string(r), 1)
	}
	add("ĠĠ", 1)
	for _, a := range []string{GoodAnswer, RegressedAnswer} {
		for _, t := range AnswerTokens(a) {
			add(t, 1)
		}
	}
	for _, s := range []string{tokEndOfText, tokIMStart, tokIMEnd} {
		add(s, 3)
	}
	return v
}

// LlamaVocab is the lookup-table models' vocabulary size.
func LlamaVocab() int { return len(newLlamaVocab().tokens) }

// LlamaGGUFSize is the size in bytes of a lookup-table model of geometry g.
func LlamaGGUFSize(g LlamaGeometry) int64 {
	n, _ := writeLlamaGGUF(io.Discard, g, GoodAnswer, "")
	return n
}

// GoodGGUF returns the bytes of gguf-good/model.gguf.
func GoodGGUF() []byte { return llamaBytes(LlamaSmall, GoodAnswer, "good") }

// RegressedGGUF returns the bytes of gguf-regressed/model.gguf.
func RegressedGGUF() []byte { return llamaBytes(LlamaSmall, RegressedAnswer, "regressed") }

// BrokenGGUF returns a model that Ollama's create accepts (its header and
// metadata are those of the good model) but whose tensor data is cut off, so
// loading it fails on the first request: a deployment that never becomes
// ready.
func BrokenGGUF() []byte {
	b := llamaBytes(LlamaSmall, GoodAnswer, "broken")
	return b[:len(b)/2]
}

// UnloadableGGUF returns the good model with general.architecture
// "llamb": a well-formed GGUF that modelship's inspector reads (so an image
// of it builds and passes preflight) and Ollama's create accepts, but that
// no runner can load: a release that never becomes ready.
func UnloadableGGUF() []byte {
	b := llamaBytes(LlamaSmall, GoodAnswer, "unloadable")
	key := []byte("general.architecture")
	i := bytes.Index(b, key) + len(key) + 4 + 8 // the value after its type and length
	copy(b[i:i+5], "llamb")
	return b
}

// WriteSlowGGUF writes the slow model to path: the good answers on the
// LlamaSlow geometry (about 0.2 GB, written in a second; not
// committed).
func WriteSlowGGUF(path string) error {
	return WriteLlamaGGUF(path, LlamaSlow, GoodAnswer, "slow")
}

// WriteLlamaGGUF writes a lookup-table model of geometry g answering answer
// to path.
func WriteLlamaGGUF(path string, g LlamaGeometry, answer, name string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if _, err := writeLlamaGGUF(w, g, answer, name); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func llamaBytes(g LlamaGeometry, answer, name string) []byte {
	var b bytes.Buffer
	if _, err := writeLlamaGGUF(&b, g, answer, name); err != nil {
		panic(err) // a bytes.Buffer does not fail
	}
	return b.Bytes()
}

// countingWriter counts what it passes on.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeLlamaGGUF writes a lookup-table model to w and returns its size.
func writeLlamaGGUF(out io.Writer, g LlamaGeometry, answer, name string) (int64, error) {
	v := newLlamaVocab()
	ans := AnswerTokens(answer)
	if len(ans)+1 > g.Hidden {
		return 0, fmt.Errorf("answer of %d tokens needs a hidden size over %d", len(ans), len(ans))
	}
	// class[token] is the embedding dimension that is 1; next[dim] the token
	// that dimension predicts.
	class := make([]int, len(v.tokens))
	next := make([]int, g.Hidden)
	for i := range next {
		next[i] = -1
	}
	next[0] = v.ids[ans[0]]
	for i, t := range ans {
		id := v.ids[t]
		if class[id] != 0 {
			return 0, fmt.Errorf("answer token %q occurs twice", t)
		}
		class[id] = i + 1
		if i+1 < len(ans) {
			next[i+1] = v.ids[ans[i+1]]
		} else {
			next[i+1] = v.ids[tokIMEnd]
		}
	}

	tokens := make([]any, len(v.tokens))
	types := make([]any, len(v.tokens))
	for i := range v.tokens {
		tokens[i], types[i] = v.tokens[i], v.types[i]
	}
	headDim := g.Hidden / g.Heads
	kvs := []kv{
		{"general.architecture", ggufString, "llama"},
		{"general.name", ggufString, "modelship lookup " + name},
		{"general.alignment", ggufU32, uint32(ggufAlign)},
		{"general.file_type", ggufU32, uint32(0)}, // ALL_F32
		{"llama.block_count", ggufU32, uint32(g.Layers)},
		{"llama.context_length", ggufU32, uint32(g.Context)},
		{"llama.embedding_length", ggufU32, uint32(g.Hidden)},
		{"llama.feed_forward_length", ggufU32, uint32(g.FF)},
		{"llama.attention.head_count", ggufU32, uint32(g.Heads)},
		{"llama.attention.head_count_kv", ggufU32, uint32(g.KVHeads)},
		{"llama.attention.layer_norm_rms_epsilon", ggufF32, float32(1e-5)},
		{"llama.rope.freq_base", ggufF32, float32(10000)},
		{"llama.rope.dimension_count", ggufU32, uint32(headDim)},
		{"llama.vocab_size", ggufU32, uint32(len(v.tokens))},
		{"tokenizer.ggml.model", ggufString, "gpt2"},
		{"tokenizer.ggml.pre", ggufString, "default"},
		{"tokenizer.ggml.tokens", ggufArray, tokens},
		{"tokenizer.ggml.token_type", ggufArray, types},
		{"tokenizer.ggml.merges", ggufArray, []any{"Ġ Ġ"}},
		{"tokenizer.ggml.bos_token_id", ggufU32, uint32(v.ids[tokEndOfText])},
		{"tokenizer.ggml.eos_token_id", ggufU32, uint32(v.ids[tokIMEnd])},
		{"tokenizer.ggml.padding_token_id", ggufU32, uint32(v.ids[tokEndOfText])},
		{"tokenizer.ggml.add_bos_token", ggufBool, false},
		{"tokenizer.chat_template", ggufString, ChatMLTemplate},
	}

	h, ff, nv := uint64(g.Hidden), uint64(g.FF), uint64(len(v.tokens))
	kvDim := uint64(g.KVHeads * headDim)
	// fill says how a tensor's data is made: ones (norms), zeros (block
	// weights) or one of the two lookup matrices.
	type spec struct {
		ggufTensor
		fill string
	}
	ts := []spec{
		{ggufTensor{"token_embd.weight", ggmlF32, []uint64{h, nv}}, "embd"},
		{ggufTensor{"output_norm.weight", ggmlF32, []uint64{h}}, "ones"},
		{ggufTensor{"output.weight", ggmlF32, []uint64{h, nv}}, "output"},
	}
	for l := 0; l < g.Layers; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		ts = append(ts,
			spec{ggufTensor{p + "attn_norm.weight", ggmlF32, []uint64{h}}, "ones"},
			spec{ggufTensor{p + "attn_q.weight", ggmlF32, []uint64{h, h}}, "zeros"},
			spec{ggufTensor{p + "attn_k.weight", ggmlF32, []uint64{h, kvDim}}, "zeros"},
			spec{ggufTensor{p + "attn_v.weight", ggmlF32, []uint64{h, kvDim}}, "zeros"},
			spec{ggufTensor{p + "attn_output.weight", ggmlF32, []uint64{h, h}}, "zeros"},
			spec{ggufTensor{p + "ffn_norm.weight", ggmlF32, []uint64{h}}, "ones"},
			spec{ggufTensor{p + "ffn_gate.weight", ggmlF32, []uint64{h, ff}}, "zeros"},
			spec{ggufTensor{p + "ffn_up.weight", ggmlF32, []uint64{h, ff}}, "zeros"},
			spec{ggufTensor{p + "ffn_down.weight", ggmlF32, []uint64{ff, h}}, "zeros"},
		)
	}

	infos := make([]ggufTensor, len(ts))
	for i, t := range ts {
		infos[i] = t.ggufTensor
	}
	var hdr ggufWriter
	hdr.header(kvs, infos)

	w := &countingWriter{w: out}
	if _, err := w.Write(hdr.Bytes()); err != nil {
		return w.n, err
	}
	one := binary.LittleEndian.AppendUint32(nil, math.Float32bits(1))
	zeros := make([]byte, 64<<10)
	row := make([]byte, 4*h)
	writeZeros := func(n uint64) error {
		for n > 0 {
			k := min(n, uint64(len(zeros)))
			if _, err := w.Write(zeros[:k]); err != nil {
				return err
			}
			n -= k
		}
		return nil
	}
	// oneHot writes a row of h floats with a 1 at dim (none if dim < 0).
	oneHot := func(dim int) error {
		clear(row)
		if dim >= 0 {
			copy(row[4*dim:], one)
		}
		_, err := w.Write(row)
		return err
	}
	for _, t := range ts {
		start := w.n
		var err error
		switch t.fill {
		case "zeros":
			err = writeZeros(t.size())
		case "ones":
			for i := uint64(0); i < t.ne[0] && err == nil; i++ {
				_, err = w.Write(one)
			}
		case "embd":
			for id := range v.tokens {
				if err = oneHot(class[id]); err != nil {
					break
				}
			}
		case "output":
			// Row id is the output weights of token id: a 1 at every
			// dimension that predicts it.
			for id := range v.tokens {
				clear(row)
				for dim, n := range next {
					if n == id {
						copy(row[4*dim:], one)
					}
				}
				if _, err = w.Write(row); err != nil {
					break
				}
			}
		}
		if err != nil {
			return w.n, err
		}
		if err := writeZeros(alignUp(uint64(w.n-start), ggufAlign) - uint64(w.n-start)); err != nil {
			return w.n, err
		}
	}
	return w.n, nil
}
