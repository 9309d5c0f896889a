// Package checkpoint inspects model checkpoints (Hugging Face safetensors
// directories and GGUF files): what the model is, how big it is, and a content
// digest that names exactly these bytes.
package checkpoint

// Format names a checkpoint layout.
type Format string

const (
	// FormatSafetensors is a Hugging Face style directory: config.json, one
	// model.safetensors or shards listed in model.safetensors.index.json, and
	// tokenizer files.
	FormatSafetensors Format = "safetensors"
	// FormatGGUF is a single GGUF file (llama.cpp).
	FormatGGUF Format = "gguf"
)

// File is one file of a checkpoint with its content hash. SHA256 is the same
// lower-case hex that sha256sum prints (and the Hugging Face LFS object id).
type File struct {
	Path   string `json:"path"` // relative to the checkpoint root, slash-separated
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
}

// Shape is the transformer geometry that memory estimates need. Zero means
// unknown.
type Shape struct {
	NumLayers         int `json:"num_layers"`
	HiddenSize        int `json:"hidden_size"`
	IntermediateSize  int `json:"intermediate_size,omitempty"`
	NumAttentionHeads int `json:"num_attention_heads"`
	NumKVHeads        int `json:"num_key_value_heads"`
	HeadDim           int `json:"head_dim"`
	VocabSize         int `json:"vocab_size,omitempty"`
}

// Info is what Inspect reports about a checkpoint.
type Info struct {
	Path         string `json:"path"` // as given by the caller
	Format       Format `json:"format"`
	Architecture string `json:"architecture"`
	// Parameters is the exact number of parameters, summed from tensor shapes.
	Parameters int64 `json:"parameters"`
	// Dtype is the dtype holding the most parameters (e.g. "BF16", "Q4_K").
	Dtype string `json:"dtype"`
	// Dtypes counts parameters per dtype.
	Dtypes map[string]int64 `json:"dtypes"`
	// WeightBytes is the size of the tensor data (excluding headers/metadata).
	WeightBytes int64 `json:"weight_bytes"`
	// MaxContext is the longest context the model supports (max_position_embeddings
	// or <arch>.context_length); 0 if unknown.
	MaxContext int   `json:"max_context_length"`
	Shape      Shape `json:"shape"`
	// TorchDtype is config.json's torch_dtype (safetensors only), used as the
	// default KV-cache dtype.
	TorchDtype string `json:"torch_dtype,omitempty"`
	// Files lists every file of the checkpoint, sorted by Path.
	Files []File `json:"files"`
	// Digest is "sha256:<hex>" over the sorted (path, size, sha256) list; empty
	// when hashing was not asked for.
	Digest string `json:"digest,omitempty"`
	// Tensors is the number of tensors in the weight files.
	Tensors int `json:"tensors"`
	// WeightFiles lists the files holding tensors (relative paths), in
	// load order.
	WeightFiles []string `json:"weight_files"`
	// Cache reports digest-cache use; nil when hashing was not asked for.
	Cache *CacheReport `json:"cache,omitempty"`
}

// CacheReport says how the digest cache served an Inspect with Options.Hash.
type CacheReport struct {
	// Dir is the cache directory; empty when no cache was used.
	Dir string `json:"dir,omitempty"`
	// Hits is the number of files whose digest came from the cache.
	Hits int `json:"hits"`
	// Hashed is the number of files hashed now, HashedBytes their size.
	Hashed      int   `json:"hashed"`
	HashedBytes int64 `json:"hashed_bytes"`
	// WriteError is set when the cache could not be updated (not fatal).
	WriteError string `json:"write_error,omitempty"`
}
