package testmodels

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
)

// GGUF value types and GGML tensor types used here.
const (
	ggufU32    = 4
	ggufI32    = 5
	ggufF32    = 6
	ggufString = 8
	ggufArray  = 9

	ggmlF32  = 0
	ggmlQ4_0 = 2
	ggmlQ4_K = 12

	ggufAlign = 32
)

type ggufWriter struct{ bytes.Buffer }

func (w *ggufWriter) u32(v uint32) { binary.Write(w, binary.LittleEndian, v) }
func (w *ggufWriter) u64(v uint64) { binary.Write(w, binary.LittleEndian, v) }
func (w *ggufWriter) str(s string) { w.u64(uint64(len(s))); w.WriteString(s) }

type kv struct {
	key string
	typ uint32
	val any
}

type ggufTensor struct {
	name string
	typ  uint32
	ne   []uint64 // ggml order: ne[0] is the row length
}

// bytes returns the tensor's data size.
func (t ggufTensor) size() uint64 {
	n := uint64(1)
	for _, d := range t.ne {
		n *= d
	}
	switch t.typ {
	case ggmlF32:
		return n * 4
	case ggmlQ4_0:
		return n / 32 * 18
	case ggmlQ4_K:
		return n / 256 * 144
	}
	panic("unknown type")
}

// data returns plausible block data: small positive f16 scales and random
// 4-bit quants.
func (t ggufTensor) data(r *rng) []byte {
	var b bytes.Buffer
	f16 := func() { binary.Write(&b, binary.LittleEndian, uint16(0x1400+r.next()%0x400)) }
	rnd := func(n int) {
		for i := 0; i < n; i++ {
			b.WriteByte(byte(r.next()))
		}
	}
	size := t.size()
	for uint64(b.Len()) < size {
		switch t.typ {
		case ggmlF32:
			binary.Write(&b, binary.LittleEndian, math.Float32bits(1+r.normal()*0.02))
		case ggmlQ4_0:
			f16()
			rnd(16)
		case ggmlQ4_K:
			f16()
			f16()
			rnd(12 + 128)
		}
	}
	return b.Bytes()
}

// GGUF returns the bytes of tiny-q4.gguf: a GGUF v3 llama model with Q4_0,
// Q4_K and F32 tensors and a small tokenizer vocabulary.
func GGUF() []byte {
	r := rng(0x6767)
	kvH := GGUFHidden / GGUFHeads * GGUFKVHeads
	tokens := make([]any, GGUFVocab)
	scores := make([]any, GGUFVocab)
	types := make([]any, GGUFVocab)
	for i := range tokens {
		switch i {
		case 0:
			tokens[i], types[i] = "<unk>", int32(2)
		case 1:
			tokens[i], types[i] = "<s>", int32(3)
		case 2:
			tokens[i], types[i] = "</s>", int32(3)
		default:
			tokens[i], types[i] = string(rune('a'+i-3)), int32(1)
		}
		scores[i] = float32(-i)
	}
	kvs := []kv{
		{"general.architecture", ggufString, "llama"},
		{"general.name", ggufString, "modelship tiny q4"},
		{"general.alignment", ggufU32, uint32(ggufAlign)},
		{"general.file_type", ggufU32, uint32(15)}, // MOSTLY_Q4_K_M
		{"llama.block_count", ggufU32, uint32(GGUFLayers)},
		{"llama.context_length", ggufU32, uint32(GGUFContext)},
		{"llama.embedding_length", ggufU32, uint32(GGUFHidden)},
		{"llama.feed_forward_length", ggufU32, uint32(GGUFFF)},
		{"llama.attention.head_count", ggufU32, uint32(GGUFHeads)},
		{"llama.attention.head_count_kv", ggufU32, uint32(GGUFKVHeads)},
		{"llama.attention.layer_norm_rms_epsilon", ggufF32, float32(1e-5)},
		{"llama.rope.freq_base", ggufF32, float32(10000)},
		{"llama.vocab_size", ggufU32, uint32(GGUFVocab)},
		{"tokenizer.ggml.model", ggufString, "llama"},
		{"tokenizer.ggml.tokens", ggufArray, tokens},
		{"tokenizer.ggml.scores", ggufArray, scores},
		{"tokenizer.ggml.token_type", ggufArray, types},
		{"tokenizer.ggml.bos_token_id", ggufU32, uint32(1)},
		{"tokenizer.ggml.eos_token_id", ggufU32, uint32(2)},
	}
	h, ff, v := uint64(GGUFHidden), uint64(GGUFFF), uint64(GGUFVocab)
	ts := []ggufTensor{
		{"token_embd.weight", ggmlQ4_0, []uint64{h, v}},
		{"output_norm.weight", ggmlF32, []uint64{h}},
		{"output.weight", ggmlQ4_0, []uint64{h, v}},
	}
	for l := 0; l < GGUFLayers; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		ts = append(ts,
			ggufTensor{p + "attn_norm.weight", ggmlF32, []uint64{h}},
			ggufTensor{p + "attn_q.weight", ggmlQ4_K, []uint64{h, h}},
			ggufTensor{p + "attn_k.weight", ggmlQ4_K, []uint64{h, uint64(kvH)}},
			ggufTensor{p + "attn_v.weight", ggmlQ4_0, []uint64{h, uint64(kvH)}},
			ggufTensor{p + "attn_output.weight", ggmlQ4_K, []uint64{h, h}},
			ggufTensor{p + "ffn_norm.weight", ggmlF32, []uint64{h}},
			ggufTensor{p + "ffn_gate.weight", ggmlQ4_K, []uint64{h, ff}},
			ggufTensor{p + "ffn_up.weight", ggmlQ4_K, []uint64{h, ff}},
			ggufTensor{p + "ffn_down.weight", ggmlQ4_K, []uint64{ff, h}},
		)
	}

	var w ggufWriter
	w.header(kvs, ts)
	for _, t := range ts {
		w.Write(t.data(&r))
		w.pad()
	}
	return w.Bytes()
}

func alignUp(n, a uint64) uint64 { return (n + a - 1) / a * a }

func (w *ggufWriter) pad() {
	for w.Len()%ggufAlign != 0 {
		w.WriteByte(0)
	}
}

func (w *ggufWriter) value(typ uint32, v any) {
	switch typ {
	case ggufString:
		w.str(v.(string))
	case ggufArray:
		arr := v.([]any)
		var et uint32
		switch arr[0].(type) {
		case string:
			et = ggufString
		case float32:
			et = ggufF32
		case int32:
			et = ggufI32
		}
		w.u32(et)
		w.u64(uint64(len(arr)))
		for _, e := range arr {
			w.value(et, e)
		}
	default:
		binary.Write(w, binary.LittleEndian, v)
	}
}

// header writes a GGUF v3 header: the metadata kvs and the tensor infos
// of ts (data offsets aligned), padded to where the tensor data starts.
func (w *ggufWriter) header(kvs []kv, ts []ggufTensor) {
	w.WriteString("GGUF")
	w.u32(3)
	w.u64(uint64(len(ts)))
	w.u64(uint64(len(kvs)))
	for _, e := range kvs {
		w.str(e.key)
		w.u32(e.typ)
		w.value(e.typ, e.val)
	}
	var off uint64
	for _, t := range ts {
		w.str(t.name)
		w.u32(uint32(len(t.ne)))
		for _, d := range t.ne {
			w.u64(d)
		}
		w.u32(t.typ)
		w.u64(off)
		off = alignUp(off+t.size(), ggufAlign)
	}
	w.pad()
}
