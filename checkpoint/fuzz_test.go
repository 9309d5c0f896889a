package checkpoint

import (
	"os"
	"path/filepath"
	"testing"
)

func FuzzSafetensorsHeader(f *testing.F) {
	f.Add([]byte(okTensor), int64(8))
	f.Add([]byte(`{"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[],"data_offsets":[0,2]}}`), int64(2))
	f.Add([]byte(`{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}`), int64(2))
	f.Add([]byte(`{"a":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[4],"data_offsets":[4,12]}}`), int64(12))
	f.Add([]byte(`{"a":{"dtype":"I64","shape":[9223372036854775807,2],"data_offsets":[0,0]}}`), int64(0))
	f.Add([]byte(`{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}    `), int64(1))
	if b, err := os.ReadFile(filepath.Join(models, "good", "model.safetensors")); err == nil && len(b) > 8 {
		n := int(b[0]) | int(b[1])<<8 | int(b[2])<<16
		f.Add(b[8:8+n], int64(len(b)-8-n))
	}
	f.Fuzz(func(t *testing.T, hdr []byte, dataLen int64) {
		if dataLen < 0 {
			dataLen = -dataLen
		}
		st, err := parseSafetensorsHeader(hdr, dataLen)
		if err != nil {
			return
		}
		// Accepted headers must be self-consistent.
		var end int64
		for _, tt := range st.Tensors {
			if tt.Begin != end || tt.End < tt.Begin || tt.Elements() < 0 {
				t.Fatalf("accepted inconsistent tensor %+v after %d", tt, end)
			}
			end = tt.End
		}
		if end != dataLen {
			t.Fatalf("accepted tensors covering %d of %d bytes", end, dataLen)
		}
	})
}

func FuzzConfig(f *testing.F) {
	f.Add(okConfig)
	if b, err := os.ReadFile(filepath.Join(models, "good", "config.json")); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"architectures":["LlavaForConditionalGeneration"],"text_config":{"hidden_size":4096,"num_hidden_layers":32,"num_attention_heads":32,"num_key_value_heads":8}}`))
	f.Add([]byte(`{"architectures":["X"],"hidden_size":5,"num_hidden_layers":1,"num_attention_heads":2}`))
	f.Add([]byte(`{"architectures":[],"dtype":"bfloat16"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		s := c.Shape
		if c.Architecture == "" || s.NumLayers <= 0 || s.HiddenSize <= 0 || s.NumAttentionHeads <= 0 ||
			s.NumKVHeads <= 0 || s.NumKVHeads > s.NumAttentionHeads || s.HeadDim <= 0 || c.MaxContext < 0 {
			t.Fatalf("accepted config with bad shape: %+v", c)
		}
	})
}
