package testmodels

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/modelship/modelship/internal/sim/simtable"
)

// Dirs are the safetensors model directories Generate writes.
var Dirs = []string{"good", "regressed", "slow", "sharded", "corrupt"}

// GGUFName is the GGUF file Generate writes.
const GGUFName = "tiny-q4.gguf"

// Generate (re)writes every test checkpoint under out, replacing the
// directories and file it owns.
func Generate(out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for _, d := range slices.Concat(Dirs, GGUFDirs) {
		if err := os.RemoveAll(filepath.Join(out, d)); err != nil {
			return err
		}
	}
	ts := llamaTensors()
	single := func(name string, seed uint64, sim simtable.Table) error {
		dir := filepath.Join(out, name)
		if err := writeHF(dir, sim); err != nil {
			return err
		}
		r := rng(seed)
		return os.WriteFile(filepath.Join(dir, "model.safetensors"), safetensors(ts, &r), 0o644)
	}
	if err := single("good", 1, GoodSim()); err != nil {
		return err
	}
	if err := single("regressed", 2, RegressedSim()); err != nil {
		return err
	}
	if err := single("slow", 3, SlowSim()); err != nil {
		return err
	}
	if err := writeSharded(filepath.Join(out, "sharded"), ts); err != nil {
		return err
	}
	if err := writeCorrupt(filepath.Join(out, "corrupt")); err != nil {
		return err
	}
	// The lookup-table llama models a real engine runs (llama.go).
	for dir, b := range map[string][]byte{GGUFGoodDir: GoodGGUF(), GGUFRegressedDir: RegressedGGUF()} {
		if err := os.MkdirAll(filepath.Join(out, dir), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, dir, GGUFModelFile), b, 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(out, GGUFName), GGUF(), 0o644)
}

// writeSharded splits the model in two shards: embeddings and layer 0 in the
// first, the rest in the second, with a Hugging Face index.
func writeSharded(dir string, ts []tensor) error {
	if err := writeHF(dir, GoodSim()); err != nil {
		return err
	}
	names := [2]string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}
	var parts [2][]tensor
	for _, t := range ts {
		i := 1
		if strings.HasPrefix(t.name, "model.embed_tokens") || strings.HasPrefix(t.name, "model.layers.0.") {
			i = 0
		}
		parts[i] = append(parts[i], t)
	}
	r := rng(4)
	weightMap := map[string]string{}
	var total int64
	for i, p := range parts {
		sort.Slice(p, func(a, b int) bool { return p[a].name < p[b].name })
		b := safetensors(p, &r)
		hl := binary.LittleEndian.Uint64(b[:8])
		total += int64(len(b)) - 8 - int64(hl)
		if err := os.WriteFile(filepath.Join(dir, names[i]), b, 0o644); err != nil {
			return err
		}
		for _, t := range p {
			weightMap[t.name] = names[i]
		}
	}
	return writeJSON(filepath.Join(dir, "model.safetensors.index.json"), map[string]any{
		"metadata":   map[string]any{"total_size": total},
		"weight_map": weightMap,
	})
}

// CorruptHeaderLen is the header length claimed by corrupt/model.safetensors,
// larger than the file.
const CorruptHeaderLen = 1 << 20

// writeCorrupt writes a model whose model.safetensors claims a header
// longer than the whole file (a truncated download).
func writeCorrupt(dir string) error {
	if err := writeHF(dir, GoodSim()); err != nil {
		return err
	}
	var b []byte
	b = binary.LittleEndian.AppendUint64(b, CorruptHeaderLen)
	b = append(b, `{"__metadata__":{"format":"pt"},"model.embed_tokens.weight":{"dtype":"BF16","shape":[256,64],"data_offsets":[0,32768]}`...)
	if len(b) >= CorruptHeaderLen {
		return fmt.Errorf("corrupt model too large")
	}
	return os.WriteFile(filepath.Join(dir, "model.safetensors"), b, 0o644)
}
