// Package testmodels writes the tiny, deterministic test checkpoints under
// testdata/models: Hugging Face llama-shaped safetensors directories (good,
// regressed, slow, sharded, corrupt) with simulator answer tables, and a
// small GGUF v3 file. Every byte is a pure function of the code, so
// regenerating gives identical files (a test checks the committed copy).
package testmodels

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"

	"github.com/modelship/modelship/internal/sim/simtable"
)

// Tiny llama geometry shared by the safetensors test models.
const (
	Layers       = 2
	Hidden       = 64
	Heads        = 4
	KVHeads      = 2
	HeadDim      = Hidden / Heads
	Intermediate = 128
	Vocab        = 256
	MaxPositions = 2048
)

// LlamaParameters is the exact parameter count of the safetensors test
// models (good, regressed, slow, sharded).
const LlamaParameters = 2*Vocab*Hidden + Hidden + Layers*(2*Hidden+Hidden*Hidden*2+2*KVHeads*HeadDim*Hidden+3*Hidden*Intermediate)

// GGUF test model geometry (Q4_K needs rows that are multiples of 256).
const (
	GGUFHidden  = 256
	GGUFLayers  = 1
	GGUFHeads   = 4
	GGUFKVHeads = 2
	GGUFFF      = 256
	GGUFVocab   = 32
	GGUFContext = 4096
)

// GGUFParameters is the exact parameter count of tiny-q4.gguf.
const GGUFParameters = 2*GGUFVocab*GGUFHidden + GGUFHidden + GGUFLayers*(2*GGUFHidden+2*GGUFHidden*GGUFHidden+2*GGUFHidden*(GGUFKVHeads*GGUFHidden/GGUFHeads)+3*GGUFHidden*GGUFFF)

// rng is splitmix64: tiny, fast, and stable forever (unlike library PRNGs
// whose streams may change between releases).
type rng uint64

func (r *rng) next() uint64 {
	*r += 0x9e3779b97f4a7c15
	z := uint64(*r)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// normal returns an approximately N(0,1) value (sum of 4 uniforms).
func (r *rng) normal() float32 {
	var s float64
	for i := 0; i < 4; i++ {
		s += float64(r.next()>>11) / (1 << 53)
	}
	return float32((s - 2) * math.Sqrt(3))
}

// tensor is one tensor to write.
type tensor struct {
	name  string
	dtype string // "BF16" or "F32"
	shape []int64
}

func (t tensor) elements() int64 {
	n := int64(1)
	for _, d := range t.shape {
		n *= d
	}
	return n
}

// llamaTensors lists the tensors of the tiny llama model in HF naming.
func llamaTensors() []tensor {
	ts := []tensor{
		{"model.embed_tokens.weight", "BF16", []int64{Vocab, Hidden}},
		{"model.norm.weight", "F32", []int64{Hidden}},
		{"lm_head.weight", "BF16", []int64{Vocab, Hidden}},
	}
	for l := 0; l < Layers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		ts = append(ts,
			tensor{p + "input_layernorm.weight", "F32", []int64{Hidden}},
			tensor{p + "post_attention_layernorm.weight", "F32", []int64{Hidden}},
			tensor{p + "self_attn.q_proj.weight", "BF16", []int64{Heads * HeadDim, Hidden}},
			tensor{p + "self_attn.k_proj.weight", "BF16", []int64{KVHeads * HeadDim, Hidden}},
			tensor{p + "self_attn.v_proj.weight", "BF16", []int64{KVHeads * HeadDim, Hidden}},
			tensor{p + "self_attn.o_proj.weight", "BF16", []int64{Hidden, Heads * HeadDim}},
			tensor{p + "mlp.gate_proj.weight", "BF16", []int64{Intermediate, Hidden}},
			tensor{p + "mlp.up_proj.weight", "BF16", []int64{Intermediate, Hidden}},
			tensor{p + "mlp.down_proj.weight", "BF16", []int64{Hidden, Intermediate}},
		)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].name < ts[j].name })
	return ts
}

// tensorData returns t's bytes: norms are ~1, weights ~N(0, 0.02²).
func tensorData(t tensor, r *rng) []byte {
	n := t.elements()
	var buf bytes.Buffer
	for i := int64(0); i < n; i++ {
		v := r.normal() * 0.02
		if t.dtype == "F32" {
			v = 1 + v
			binary.Write(&buf, binary.LittleEndian, math.Float32bits(v))
		} else {
			binary.Write(&buf, binary.LittleEndian, uint16(math.Float32bits(v)>>16)) // BF16 by truncation
		}
	}
	return buf.Bytes()
}

// safetensors encodes tensors (with data from r) as a safetensors file,
// header padded with spaces to a multiple of 8 like the reference library.
func safetensors(ts []tensor, r *rng) []byte {
	var data bytes.Buffer
	var hdr bytes.Buffer
	hdr.WriteString(`{"__metadata__":{"format":"pt"}`)
	for _, t := range ts {
		b := tensorData(t, r)
		begin := data.Len()
		data.Write(b)
		shape, _ := json.Marshal(t.shape)
		fmt.Fprintf(&hdr, `,%q:{"dtype":%q,"shape":%s,"data_offsets":[%d,%d]}`, t.name, t.dtype, shape, begin, data.Len())
	}
	hdr.WriteString("}")
	for (8+hdr.Len())%8 != 0 {
		hdr.WriteByte(' ')
	}
	var out bytes.Buffer
	binary.Write(&out, binary.LittleEndian, uint64(hdr.Len()))
	out.Write(hdr.Bytes())
	out.Write(data.Bytes())
	return out.Bytes()
}

// writeJSON writes v indented with a trailing newline.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Config is the config.json of the tiny llama models.
func Config() map[string]any {
	return map[string]any{
		"architectures":           []string{"LlamaForCausalLM"},
		"model_type":              "llama",
		"hidden_size":             Hidden,
		"intermediate_size":       Intermediate,
		"num_hidden_layers":       Layers,
		"num_attention_heads":     Heads,
		"num_key_value_heads":     KVHeads,
		"head_dim":                HeadDim,
		"vocab_size":              Vocab,
		"max_position_embeddings": MaxPositions,
		"rms_norm_eps":            1e-5,
		"rope_theta":              10000.0,
		"hidden_act":              "silu",
		"tie_word_embeddings":     false,
		"torch_dtype":             "bfloat16",
		"bos_token_id":            1,
		"eos_token_id":            2,
		"transformers_version":    "4.44.0",
	}
}

// writeHF writes config, generation config, tokenizer files and the sim
// table into dir (created).
func writeHF(dir string, sim simtable.Table) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, "config.json"), Config()); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, "generation_config.json"), map[string]any{
		"bos_token_id": 1, "eos_token_id": 2, "do_sample": false, "transformers_version": "4.44.0",
	}); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, "tokenizer.json"), tokenizer()); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, "tokenizer_config.json"), map[string]any{
		"model_max_length":             MaxPositions,
		"tokenizer_class":              "PreTrainedTokenizerFast",
		"clean_up_tokenization_spaces": false,
		"chat_template":                "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}",
	}); err != nil {
		return err
	}
	return writeJSON(filepath.Join(dir, "modelship-sim.json"), sim)
}

// byteLevel is GPT-2's bytes_to_unicode table: byte b is token b.
func byteLevel() []rune {
	var bs []int
	for b := '!'; b <= '~'; b++ {
		bs = append(bs, int(b))
	}
	for b := 0xA1; b <= 0xAC; b++ {
		bs = append(bs, b)
	}
	for b := 0xAE; b <= 0xFF; b++ {
		bs = append(bs, b)
	}
	in := map[int]bool{}
	for _, b := range bs {
		in[b] = true
	}
	out := make([]rune, 256)
	n := 0
	for b := 0; b < 256; b++ {
		if in[b] {
			out[b] = rune(b)
		} else {
			out[b] = rune(256 + n)
			n++
		}
	}
	return out
}

// tokenizer returns a minimal valid byte-level BPE tokenizer.json whose
// vocabulary is the 256 bytes (ids 0..255), with no merges.
func tokenizer() map[string]any {
	vocab := map[string]int{}
	for b, r := range byteLevel() {
		vocab[string(r)] = b
	}
	bl := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
	return map[string]any{
		"version":        "1.0",
		"truncation":     nil,
		"padding":        nil,
		"added_tokens":   []any{},
		"normalizer":     nil,
		"pre_tokenizer":  bl,
		"post_processor": bl,
		"decoder":        bl,
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false,
			"vocab": vocab, "merges": []string{},
		},
	}
}
