package checkpoint

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Config is what Inspect uses from a Hugging Face config.json.
type Config struct {
	Architecture string
	Shape        Shape
	MaxContext   int
	TorchDtype   string
}

// ParseConfig parses a Hugging Face config.json. It needs architectures,
// num_hidden_layers, hidden_size and num_attention_heads (at the top level
// or, for multimodal models, under text_config); num_key_value_heads defaults
// to num_attention_heads and head_dim to hidden_size/num_attention_heads.
// Errors name the field and what was expected (the caller adds the file).
func ParseConfig(data []byte) (*Config, error) {
	var top map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&top); err != nil {
		return nil, fmt.Errorf("not valid JSON: %v", err)
	}
	if top == nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data after the JSON object")
	}
	c := &Config{}
	var archs []string
	if v, ok := top["architectures"]; ok {
		if err := json.Unmarshal(v, &archs); err != nil {
			return nil, fmt.Errorf("architectures: expected a list of strings, got %s", short(v))
		}
	}
	if len(archs) == 0 || archs[0] == "" {
		return nil, fmt.Errorf("architectures: missing or empty (expected e.g. [\"LlamaForCausalLM\"])")
	}
	c.Architecture = archs[0]

	fields := top
	prefix := ""
	if _, ok := top["hidden_size"]; !ok {
		if tc, ok := top["text_config"]; ok {
			var sub map[string]json.RawMessage
			d := json.NewDecoder(bytes.NewReader(tc))
			d.UseNumber()
			if err := d.Decode(&sub); err != nil || sub == nil {
				return nil, fmt.Errorf("text_config: expected an object, got %s", short(tc))
			}
			fields, prefix = sub, "text_config."
		}
	}
	var missing []string
	get := func(name string, required bool) (int, error) {
		v, ok := fields[name]
		if !ok || string(v) == "null" {
			if required {
				missing = append(missing, prefix+name)
			}
			return 0, nil
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
		if err != nil || n <= 0 || n > 1<<40 {
			return 0, fmt.Errorf("%s%s: expected a positive integer, got %s", prefix, name, short(v))
		}
		return int(n), nil
	}
	var err error
	s := &c.Shape
	for _, f := range []struct {
		name     string
		dst      *int
		required bool
	}{
		{"num_hidden_layers", &s.NumLayers, true},
		{"hidden_size", &s.HiddenSize, true},
		{"num_attention_heads", &s.NumAttentionHeads, true},
		{"num_key_value_heads", &s.NumKVHeads, false},
		{"head_dim", &s.HeadDim, false},
		{"intermediate_size", &s.IntermediateSize, false},
		{"vocab_size", &s.VocabSize, false},
	} {
		if *f.dst, err = get(f.name, f.required); err != nil {
			return nil, err
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("missing required field(s) %s", strings.Join(missing, ", "))
	}
	if s.NumKVHeads == 0 {
		s.NumKVHeads = s.NumAttentionHeads
	}
	if s.NumKVHeads > s.NumAttentionHeads {
		return nil, fmt.Errorf("%snum_key_value_heads %d exceeds num_attention_heads %d", prefix, s.NumKVHeads, s.NumAttentionHeads)
	}
	if s.HeadDim == 0 {
		if s.HiddenSize%s.NumAttentionHeads != 0 {
			return nil, fmt.Errorf("%shidden_size %d is not divisible by num_attention_heads %d and head_dim is not set", prefix, s.HiddenSize, s.NumAttentionHeads)
		}
		s.HeadDim = s.HiddenSize / s.NumAttentionHeads
	}
	for _, name := range []string{"max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"} {
		if c.MaxContext, err = get(name, false); err != nil {
			return nil, err
		}
		if c.MaxContext > 0 {
			break
		}
	}
	// Newer transformers write "dtype" instead of "torch_dtype".
	for _, key := range []string{"torch_dtype", "dtype"} {
		for _, m := range []map[string]json.RawMessage{fields, top} {
			v, ok := m[key]
			if !ok || c.TorchDtype != "" {
				continue
			}
			var td string
			if err := json.Unmarshal(v, &td); err != nil && string(v) != "null" {
				return nil, fmt.Errorf("%s: expected a string such as \"bfloat16\", got %s", key, short(v))
			}
			c.TorchDtype = td
		}
	}
	return c, nil
}

func short(v json.RawMessage) string {
	s := string(v)
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return s
}
