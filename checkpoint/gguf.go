package checkpoint

import (
	"io"
	"os"

	gguf "github.com/gpustack/gguf-parser-go"
)

// inspectGGUF parses the GGUF file at path (header, metadata and tensor
// infos only) into info.
func inspectGGUF(path string, info *Info) (err error) {
	f, err := os.Open(path)
	if err != nil {
		return openError(path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return errorf(path, "%v", unwrapPath(err))
	}
	var magic [4]byte
	_, rerr := io.ReadFull(f, magic[:])
	f.Close()
	if !fi.Mode().IsRegular() {
		return errorf(path, "is not a regular file (%s)", fi.Mode().Type())
	}
	if rerr != nil {
		return errorf(path, "file is %d bytes, too short for a GGUF header", fi.Size())
	}
	if string(magic[:]) != "GGUF" {
		return errorf(path, "bad magic %q (0x%x), expected \"GGUF\"", magic[:], magic[:])
	}
	defer func() {
		// The parser panics on some arithmetic overflows; report them as errors.
		if r := recover(); r != nil {
			err = errorf(path, "invalid GGUF: %v", r)
		}
	}()
	gf, err := gguf.ParseGGUFFile(path)
	if err != nil {
		return errorf(path, "invalid GGUF: %v", unwrapPath(err))
	}
	if gf.Header.Version < gguf.GGUFVersionV2 {
		return errorf(path, "GGUF version %d is not supported (need 2 or 3)", gf.Header.Version)
	}
	kv := gf.Header.MetadataKV
	arch := ""
	if v, ok := kv.Get("general.architecture"); ok && v.ValueType == gguf.GGUFMetadataValueTypeString {
		arch = v.ValueString()
	}
	if arch == "" {
		return errorf(path, "metadata general.architecture is missing")
	}
	info.Architecture = arch
	num := func(key string) int {
		v, ok := kv.Get(arch + "." + key)
		if !ok || !v.ValueType.IsNumeric() {
			return 0
		}
		return int(gguf.ValueNumeric[uint64](v))
	}
	s := &info.Shape
	s.NumLayers = num("block_count")
	s.HiddenSize = num("embedding_length")
	s.NumAttentionHeads = num("attention.head_count")
	s.NumKVHeads = num("attention.head_count_kv")
	s.IntermediateSize = num("feed_forward_length")
	s.HeadDim = num("attention.key_length")
	s.VocabSize = num("vocab_size")
	info.MaxContext = num("context_length")
	if s.NumKVHeads == 0 {
		s.NumKVHeads = s.NumAttentionHeads
	}
	if s.HeadDim == 0 && s.NumAttentionHeads > 0 {
		s.HeadDim = s.HiddenSize / s.NumAttentionHeads
	}
	if s.VocabSize == 0 {
		if v, ok := kv.Get("tokenizer.ggml.tokens"); ok && v.ValueType == gguf.GGUFMetadataValueTypeArray {
			s.VocabSize = int(v.ValueArray().Len)
		}
	}
	// Bounds are checked for single files; for splits the parser concatenates
	// tensor infos of all files and offsets are per split.
	split := len(gf.SplitSizes) > 1
	dataEnd := fi.Size() - gf.TensorDataStartOffset
	for _, t := range gf.TensorInfos {
		if _, ok := t.Type.Trait(); !ok {
			return errorf(path, "tensor %q: unknown GGML type %d", t.Name, uint32(t.Type))
		}
		n := int64(t.Elements())
		b := int64(t.Bytes())
		if !split && int64(t.Offset) > dataEnd || b > dataEnd-int64(t.Offset) {
			return errorf(path, "tensor %q: data [%d, %d) runs past the end of the %d-byte data section", t.Name, t.Offset, int64(t.Offset)+b, dataEnd)
		}
		info.Parameters += n
		info.WeightBytes += b
		info.Dtypes[t.Type.String()] += n
		info.Tensors++
	}
	return nil
}
