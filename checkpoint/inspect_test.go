package checkpoint

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/modelship/modelship/internal/testmodels"
)

const models = "../testdata/models"

func TestInspectGood(t *testing.T) {
	info, err := Inspect(context.Background(), filepath.Join(models, "good"), Options{Hash: true})
	if err != nil {
		t.Fatal(err)
	}
	if info.Format != FormatSafetensors || info.Architecture != "LlamaForCausalLM" {
		t.Errorf("format %q arch %q", info.Format, info.Architecture)
	}
	if info.Parameters != testmodels.LlamaParameters {
		t.Errorf("parameters %d, want %d", info.Parameters, testmodels.LlamaParameters)
	}
	if info.Dtype != "BF16" || info.Dtypes["F32"] != int64(testmodels.Hidden*(2*testmodels.Layers+1)) {
		t.Errorf("dtype %q dtypes %v", info.Dtype, info.Dtypes)
	}
	want := Shape{NumLayers: 2, HiddenSize: 64, IntermediateSize: 128, NumAttentionHeads: 4, NumKVHeads: 2, HeadDim: 16, VocabSize: 256}
	if info.Shape != want || info.MaxContext != 2048 || info.TorchDtype != "bfloat16" {
		t.Errorf("shape %+v max %d torch %q", info.Shape, info.MaxContext, info.TorchDtype)
	}
	// weight bytes: 2 bytes per BF16 parameter, 4 per F32.
	if wb := info.Dtypes["BF16"]*2 + info.Dtypes["F32"]*4; info.WeightBytes != wb {
		t.Errorf("weight bytes %d, want %d", info.WeightBytes, wb)
	}
	checkHashes(t, filepath.Join(models, "good"), info)
}

// checkHashes recomputes every file's SHA-256 and the digest independently.
func checkHashes(t *testing.T, root string, info *Info) {
	t.Helper()
	var lines strings.Builder
	names := []string{}
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(info.Files) != len(names) {
		t.Fatalf("files %v, want %v", info.Files, names)
	}
	for i, n := range names { // ReadDir sorts by name
		b, err := os.ReadFile(filepath.Join(root, n))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		f := info.Files[i]
		if f.Path != n || f.Size != int64(len(b)) || f.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("file %d = %+v, want %s %d %x", i, f, n, len(b), sum)
		}
		fmt.Fprintf(&lines, "%s\t%d\t%x\n", n, len(b), sum)
	}
	d := sha256.Sum256([]byte(lines.String()))
	if want := "sha256:" + hex.EncodeToString(d[:]); info.Digest != want {
		t.Errorf("digest %s, want %s", info.Digest, want)
	}
}

func TestInspectShardedMatchesSingle(t *testing.T) {
	sh, err := Inspect(context.Background(), filepath.Join(models, "sharded"), Options{Hash: true, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	if sh.Parameters != testmodels.LlamaParameters || len(sh.WeightFiles) != 2 || sh.Tensors != 3+9*testmodels.Layers {
		t.Errorf("sharded: params %d weight files %v tensors %d", sh.Parameters, sh.WeightFiles, sh.Tensors)
	}
	checkHashes(t, filepath.Join(models, "sharded"), sh)
}

func TestInspectGGUF(t *testing.T) {
	for _, p := range []string{filepath.Join(models, "tiny-q4.gguf"), ggufDir(t)} {
		info, err := Inspect(context.Background(), p, Options{Hash: true})
		if err != nil {
			t.Fatal(err)
		}
		if info.Format != FormatGGUF || info.Architecture != "llama" || info.Parameters != testmodels.GGUFParameters {
			t.Errorf("%s: format %q arch %q params %d", p, info.Format, info.Architecture, info.Parameters)
		}
		want := Shape{NumLayers: 1, HiddenSize: 256, IntermediateSize: 256, NumAttentionHeads: 4, NumKVHeads: 2, HeadDim: 64, VocabSize: 32}
		if info.Shape != want || info.MaxContext != testmodels.GGUFContext {
			t.Errorf("%s: shape %+v max %d", p, info.Shape, info.MaxContext)
		}
		if info.Dtype != "Q4_K" || info.Dtypes["Q4_0"] == 0 || info.Dtypes["F32"] != 3*256 {
			t.Errorf("%s: dtype %q %v", p, info.Dtype, info.Dtypes)
		}
		if len(info.Files) != 1 || info.Files[0].Path != "tiny-q4.gguf" || !strings.HasPrefix(info.Digest, "sha256:") {
			t.Errorf("%s: files %+v digest %q", p, info.Files, info.Digest)
		}
	}
}

func ggufDir(t *testing.T) string {
	d := t.TempDir()
	b, err := os.ReadFile(filepath.Join(models, "tiny-q4.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(d, "tiny-q4.gguf"), b, 0o644)
	return d
}

func TestInspectWithoutHashStillChecks(t *testing.T) {
	info, err := Inspect(context.Background(), filepath.Join(models, "good"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Digest != "" || info.Files[0].SHA256 != "" || info.Cache != nil {
		t.Errorf("hashed without Hash: %+v", info)
	}
	_, err = Inspect(context.Background(), filepath.Join(models, "corrupt"), Options{})
	want := fmt.Sprintf("checkpoint %s: header length %d exceeds file size 126", filepath.Join(models, "corrupt", "model.safetensors"), testmodels.CorruptHeaderLen)
	if err == nil || err.Error() != want {
		t.Errorf("corrupt: got %v, want %s", err, want)
	}
	var ce *Error
	if !errors.As(err, &ce) || ce.Path != filepath.Join(models, "corrupt", "model.safetensors") {
		t.Errorf("error is not *Error naming the file: %#v", err)
	}
}

// st builds a safetensors file from a header and data length.
func st(header string, dataLen int) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, make([]byte, dataLen)...)
}

// hfDir writes a checkpoint directory from name→content (nil content
// creates a subdirectory) and returns its path.
func hfDir(t *testing.T, files map[string][]byte) string {
	t.Helper()
	d := t.TempDir()
	for n, b := range files {
		p := filepath.Join(d, n)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if b == nil {
			os.Mkdir(p, 0o755)
			continue
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

var okConfig = []byte(`{"architectures":["LlamaForCausalLM"],"num_hidden_layers":1,"hidden_size":4,"num_attention_heads":2,"max_position_embeddings":128}`)

const okTensor = `{"a":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]}}`

func TestInspectBadInput(t *testing.T) {
	gguf, _ := os.ReadFile(filepath.Join(models, "tiny-q4.gguf"))
	badMagic := append([]byte("GGUX"), gguf[4:]...)
	for _, tc := range []struct {
		name  string
		files map[string][]byte
		sub   string // path inside the dir to pass ("" = the dir)
		file  string // file the error must name ("" = the dir / path)
		want  string
	}{
		{name: "missing path", sub: "nope", file: "nope", want: "does not exist"},
		{name: "not a checkpoint", files: map[string][]byte{"README.md": []byte("hi")}, want: "not a checkpoint"},
		{name: "plain file", files: map[string][]byte{"notes.txt": []byte("hi")}, sub: "notes.txt", file: "notes.txt", want: "not a checkpoint"},
		{name: "shorter than 8 bytes", files: map[string][]byte{"config.json": okConfig, "model.safetensors": []byte{1, 2, 3}},
			file: "model.safetensors", want: "file is 3 bytes, shorter than the 8-byte safetensors header length"},
		{name: "header longer than file", files: map[string][]byte{"config.json": okConfig, "model.safetensors": append(binary.LittleEndian.AppendUint64(nil, 9999), make([]byte, 112)...)},
			file: "model.safetensors", want: "header length 9999 exceeds file size 120"},
		{name: "header not JSON", files: map[string][]byte{"config.json": okConfig, "model.safetensors": st(`{"a": nope}`, 0)},
			file: "model.safetensors", want: "header is not valid JSON"},
		{name: "header not an object", files: map[string][]byte{"config.json": okConfig, "model.safetensors": st(`[1,2]`, 0)},
			file: "model.safetensors", want: "header is not a JSON object"},
		{name: "overlap", files: map[string][]byte{"config.json": okConfig, "model.safetensors": st(`{"a":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[4],"data_offsets":[4,12]}}`, 12)},
			file: "model.safetensors", want: `tensor "b": data_offsets [4, 12] overlap tensor "a" ending at 8`},
		{name: "past the end", files: map[string][]byte{"config.json": okConfig, "model.safetensors": st(`{"a":{"dtype":"F16","shape":[8],"data_offsets":[0,16]}}`, 8)},
			file: "model.safetensors", want: `tensor "a": data_offsets [0, 16] run past the end of the 8-byte data section`},
		{name: "size mismatch", files: map[string][]byte{"config.json": okConfig, "model.safetensors": st(`{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,8]}}`, 8)},
			file: "model.safetensors", want: `tensor "a": data_offsets [0, 8] hold 8 bytes, but shape [2 2] of F32 needs 16`},
		{name: "unknown dtype", files: map[string][]byte{"config.json": okConfig, "model.safetensors": st(`{"a":{"dtype":"F7","shape":[2],"data_offsets":[0,2]}}`, 2)},
			file: "model.safetensors", want: `tensor "a": unknown dtype "F7"`},
		{name: "gap", files: map[string][]byte{"config.json": okConfig, "model.safetensors": st(`{"a":{"dtype":"F16","shape":[2],"data_offsets":[4,8]}}`, 8)},
			file: "model.safetensors", want: `leave a gap after byte 0`},
		{name: "trailing data", files: map[string][]byte{"config.json": okConfig, "model.safetensors": st(okTensor, 10)},
			file: "model.safetensors", want: `tensors cover 8 bytes but the data section is 10 bytes`},
		{name: "index names missing shard", files: map[string][]byte{"config.json": okConfig, "model-1.safetensors": st(okTensor, 8),
			"model.safetensors.index.json": []byte(`{"weight_map":{"a":"model-1.safetensors","b":"model-2.safetensors"}}`)},
			file: "model.safetensors.index.json", want: `names shard "model-2.safetensors", which does not exist`},
		{name: "index maps tensor not in shard", files: map[string][]byte{"config.json": okConfig, "model-1.safetensors": st(okTensor, 8),
			"model.safetensors.index.json": []byte(`{"weight_map":{"a":"model-1.safetensors","z":"model-1.safetensors"}}`)},
			file: "model.safetensors.index.json", want: `maps tensor "z" to model-1.safetensors, which does not contain it`},
		{name: "index not JSON", files: map[string][]byte{"config.json": okConfig, "model.safetensors.index.json": []byte(`{`)},
			file: "model.safetensors.index.json", want: "not valid JSON"},
		{name: "gguf bad magic", files: map[string][]byte{"m.gguf": badMagic}, sub: "m.gguf", file: "m.gguf", want: `bad magic "GGUX"`},
		{name: "gguf bad magic in dir", files: map[string][]byte{"m.gguf": badMagic}, file: "m.gguf", want: `bad magic "GGUX"`},
		{name: "gguf truncated", files: map[string][]byte{"m.gguf": gguf[:200]}, sub: "m.gguf", file: "m.gguf", want: "invalid GGUF"},
		{name: "two ggufs", files: map[string][]byte{"a.gguf": gguf, "b.gguf": gguf}, want: "holds 2 .gguf files (a.gguf, b.gguf)"},
		{name: "config not JSON", files: map[string][]byte{"config.json": []byte("{nope"), "model.safetensors": st(okTensor, 8)},
			file: "config.json", want: "not valid JSON"},
		{name: "config lacks fields", files: map[string][]byte{"config.json": []byte(`{"architectures":["X"],"hidden_size":4}`), "model.safetensors": st(okTensor, 8)},
			file: "config.json", want: "missing required field(s) num_attention_heads, num_hidden_layers"},
		{name: "config bad field type", files: map[string][]byte{"config.json": []byte(`{"architectures":["X"],"hidden_size":"big","num_hidden_layers":1,"num_attention_heads":1}`), "model.safetensors": st(okTensor, 8)},
			file: "config.json", want: `hidden_size: expected a positive integer, got "big"`},
		{name: "config missing", files: map[string][]byte{"model.safetensors": st(okTensor, 8)}, file: "config.json", want: "does not exist"},
		{name: "no weights", files: map[string][]byte{"config.json": okConfig}, want: "has config.json but neither model.safetensors nor model.safetensors.index.json"},
		{name: "config is a directory", files: map[string][]byte{"config.json": nil, "model.safetensors": st(okTensor, 8)},
			file: "config.json", want: "is a directory, expected a file"},
		{name: "weights are a directory", files: map[string][]byte{"config.json": okConfig, "model.safetensors": nil},
			file: "model.safetensors", want: "is a directory, expected a file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := hfDir(t, tc.files)
			p := filepath.Join(d, tc.sub)
			_, err := Inspect(context.Background(), p, Options{Hash: true})
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			t.Log(err)
			prefix := "checkpoint " + filepath.Join(d, tc.file) + ": "
			if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got  %v\nwant %s...%s", err, prefix, tc.want)
			}
		})
	}
}

func TestInspectUnreadable(t *testing.T) {
	t.Run("dangling symlink", func(t *testing.T) {
		d := hfDir(t, map[string][]byte{"config.json": okConfig})
		os.Symlink("blobs/missing", filepath.Join(d, "model.safetensors"))
		_, err := Inspect(context.Background(), d, Options{})
		want := "checkpoint " + filepath.Join(d, "model.safetensors") + ": dangling symlink to blobs/missing"
		if err == nil || err.Error() != want {
			t.Errorf("got %v, want %s", err, want)
		}
	})
	t.Run("fifo", func(t *testing.T) {
		d := hfDir(t, map[string][]byte{"config.json": okConfig, "model.safetensors": st(okTensor, 8)})
		if err := syscall.Mkfifo(filepath.Join(d, "tokenizer.json"), 0o644); err != nil {
			t.Skip("mkfifo:", err)
		}
		_, err := Inspect(context.Background(), d, Options{Hash: true})
		want := "checkpoint " + filepath.Join(d, "tokenizer.json") + ": is not a regular file (a named pipe)"
		if err == nil || err.Error() != want {
			t.Errorf("got %v, want %s", err, want)
		}
	})
	t.Run("chmod 000", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("running as root, which can read a mode-000 file; the dangling-symlink, fifo and directory cases cover unreadable files")
		}
		d := hfDir(t, map[string][]byte{"config.json": okConfig, "model.safetensors": st(okTensor, 8)})
		p := filepath.Join(d, "model.safetensors")
		os.Chmod(p, 0)
		_, err := Inspect(context.Background(), d, Options{})
		want := "checkpoint " + p + ": cannot be read: permission denied"
		if err == nil || err.Error() != want {
			t.Errorf("got %v, want %s", err, want)
		}
	})
}

func TestDigestEncoding(t *testing.T) {
	files := []File{{Path: "b", Size: 1, SHA256: "bb"}, {Path: "a", Size: 22, SHA256: "aa"}}
	sum := sha256.Sum256([]byte("a\t22\taa\nb\t1\tbb\n"))
	if got, want := Digest(files), "sha256:"+hex.EncodeToString(sum[:]); got != want {
		t.Errorf("Digest = %s, want %s", got, want)
	}
}

func TestHiddenFilesSkippedAndSubdirsIncluded(t *testing.T) {
	d := hfDir(t, map[string][]byte{"config.json": okConfig, "model.safetensors": st(okTensor, 8),
		".git/HEAD": []byte("ref"), ".DS_Store": []byte("x"), "original/params.json": []byte("{}")})
	info, err := Inspect(context.Background(), d, Options{Hash: true})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range info.Files {
		paths = append(paths, f.Path)
	}
	if got := strings.Join(paths, ","); got != "config.json,model.safetensors,original/params.json" {
		t.Errorf("files %s", got)
	}
}

func TestContextCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Inspect(ctx, filepath.Join(models, "good"), Options{Hash: true})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func TestProgress(t *testing.T) {
	var last, total int64
	calls := 0
	_, err := Inspect(context.Background(), filepath.Join(models, "sharded"), Options{Hash: true, Progress: func(d, tot int64) {
		if d < last {
			t.Errorf("progress went back: %d after %d", d, last)
		}
		last, total = d, tot
		calls++
	}})
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 || last != total || total < 200_000 {
		t.Errorf("progress: %d calls, last %d of %d", calls, last, total)
	}
}

func TestInspectSplitGGUF(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(models, "tiny-q4.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	d := hfDir(t, map[string][]byte{"m-00001-of-00002.gguf": b, "m-00002-of-00002.gguf": b})
	for _, p := range []string{d, filepath.Join(d, "m-00001-of-00002.gguf")} {
		info, err := Inspect(context.Background(), p, Options{Hash: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(info.Files) != 2 || len(info.WeightFiles) != 2 || info.Parameters != 2*testmodels.GGUFParameters {
			t.Errorf("%s: files %+v weight files %v params %d", p, info.Files, info.WeightFiles, info.Parameters)
		}
	}
	os.Remove(filepath.Join(d, "m-00002-of-00002.gguf"))
	_, err = Inspect(context.Background(), filepath.Join(d, "m-00001-of-00002.gguf"), Options{})
	want := "checkpoint " + filepath.Join(d, "m-00002-of-00002.gguf") + ": does not exist (split 2 of 2 of m-00001-of-00002.gguf)"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}
