package testmodels

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gguf "github.com/gpustack/gguf-parser-go"
	"github.com/modelship/modelship/internal/sim/simtable"
)

const committed = "../../testdata/models"

// TestCommittedMatchesGenerator regenerates every test checkpoint and
// compares it byte for byte with testdata/models, so the two never drift.
// Fix a failure with: go run ./internal/testmodels/gen -out testdata/models
func TestCommittedMatchesGenerator(t *testing.T) {
	tmp := t.TempDir()
	if err := Generate(tmp); err != nil {
		t.Fatal(err)
	}
	gen := readTree(t, tmp)
	com := readTree(t, committed)
	for p, b := range gen {
		c, ok := com[p]
		if !ok {
			t.Errorf("%s: generated but not committed", p)
		} else if !bytes.Equal(b, c) {
			t.Errorf("%s: committed bytes differ from the generator's (%d vs %d bytes)", p, len(c), len(b))
		}
	}
	for p := range com {
		if _, ok := gen[p]; !ok {
			t.Errorf("%s: committed but not generated", p)
		}
	}
}

func readTree(t *testing.T, root string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		out[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestGenerateIsDeterministic(t *testing.T) {
	if !bytes.Equal(GGUF(), GGUF()) {
		t.Fatal("GGUF bytes differ between calls")
	}
}

func TestSizesUnder1MB(t *testing.T) {
	for p, b := range readTree(t, committed) {
		if len(b) >= 1<<20 {
			t.Errorf("%s is %d bytes, want under 1 MiB", p, len(b))
		}
	}
}

func TestParameterCount(t *testing.T) {
	var n int64
	for _, ts := range llamaTensors() {
		n += ts.elements()
	}
	if n != LlamaParameters {
		t.Errorf("tensors hold %d parameters, LlamaParameters = %d", n, LlamaParameters)
	}
}

func TestGGUFReadByParser(t *testing.T) {
	gf, err := gguf.ParseGGUFFile(filepath.Join(committed, GGUFName))
	if err != nil {
		t.Fatal(err)
	}
	if gf.Header.Version != gguf.GGUFVersionV3 {
		t.Errorf("version %d, want 3", gf.Header.Version)
	}
	a := gf.Architecture()
	if a.Architecture != "llama" || a.BlockCount != GGUFLayers || a.EmbeddingLength != GGUFHidden ||
		a.AttentionHeadCount != GGUFHeads || a.AttentionHeadCountKV != GGUFKVHeads || a.MaximumContextLength != GGUFContext {
		t.Errorf("architecture metadata = %+v", a)
	}
	var n uint64
	types := map[string]bool{}
	for _, ti := range gf.TensorInfos {
		n += ti.Elements()
		types[ti.Type.String()] = true
	}
	if n != GGUFParameters {
		t.Errorf("parser counts %d parameters, want %d", n, GGUFParameters)
	}
	for _, want := range []string{"Q4_0", "Q4_K", "F32"} {
		if !types[want] {
			t.Errorf("no %s tensor (have %v)", want, types)
		}
	}
	if v, ok := gf.Header.MetadataKV.Get("tokenizer.ggml.tokens"); !ok || v.ValueArray().Len != GGUFVocab {
		t.Errorf("tokenizer.ggml.tokens missing or wrong length")
	}
}

type validationCase struct {
	Name     string `json:"name"`
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
	ExpectedKeywords []string `json:"expected_keywords"`
}

// TestSimTablesAgainstValidationCases checks that the good model answers
// every validation case with all its keywords and the regressed model
// misses them all; the slow model answers like the good one.
func TestSimTablesAgainstValidationCases(t *testing.T) {
	b, err := os.ReadFile("../../testdata/suites/validation_cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []validationCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 5 {
		t.Fatalf("only %d validation cases", len(cases))
	}
	load := func(name string) simtable.Table {
		var s simtable.Table
		b, err := os.ReadFile(filepath.Join(committed, name, "modelship-sim.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	good, bad, slow := load("good"), load("regressed"), load("slow")
	for _, c := range cases {
		last := ""
		for _, m := range c.Messages {
			if m.Role == "user" {
				last = m.Content
			}
		}
		g, r := good.Reply(last), bad.Reply(last)
		if g == good.DefaultReply {
			t.Errorf("%s: good model falls back to the default reply", c.Name)
		}
		if slow.Reply(last) != g {
			t.Errorf("%s: slow model answers differently from good", c.Name)
		}
		for _, k := range c.ExpectedKeywords {
			if !strings.Contains(strings.ToLower(g), strings.ToLower(k)) {
				t.Errorf("%s: good reply %q lacks %q", c.Name, g, k)
			}
			if strings.Contains(strings.ToLower(r), strings.ToLower(k)) {
				t.Errorf("%s: regressed reply %q contains %q", c.Name, r, k)
			}
		}
	}
	if slow.Latency.TTFTms < 10*good.Latency.TTFTms || slow.LoadSeconds <= good.LoadSeconds {
		t.Errorf("slow model is not slow: %+v load %v", slow.Latency, slow.LoadSeconds)
	}
}

func TestBenchmarkPromptsGetLongReplies(t *testing.T) {
	b, err := os.ReadFile("../../testdata/prompts/benchmark_prompts.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	good := GoodSim()
	lines, long := 0, 0
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var p struct {
			Prompt   string `json:"prompt"`
			Messages []struct {
				Role, Content string
			} `json:"messages"`
		}
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		text := p.Prompt
		for _, m := range p.Messages {
			if m.Role == "user" {
				text = m.Content
			}
		}
		if text == "" {
			t.Fatalf("line %d: no prompt or user message", i+1)
		}
		lines++
		if n := len(strings.Fields(good.Reply(text))); n >= 40 {
			long++
			if n > 120 {
				t.Errorf("line %d: reply is %d words, want at most 120", i+1, n)
			}
		}
	}
	if lines < 20 || long < lines/2 {
		t.Errorf("%d prompts, %d with replies of 40+ words; want 20+ prompts, half long", lines, long)
	}
}
