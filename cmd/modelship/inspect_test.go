package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelship/modelship/internal/testmodels"
)

func inspectCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"inspect"}, args...), stdio{in: strings.NewReader(""), out: &out, err: &errb})
	return code, out.String(), errb.String()
}

// TestInspectJSONDigest checks the JSON report of the good test model
// against digests computed here independently, the way sha256sum would.
func TestInspectJSONDigest(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "models", "good")
	code, out, errs := inspectCmd(t, dir, "--json", "--cache-dir", t.TempDir())
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var rep struct {
		Format      string `json:"format"`
		Parameters  int64  `json:"parameters"`
		Dtype       string `json:"dtype"`
		WeightBytes int64  `json:"weight_bytes"`
		Digest      string `json:"digest"`
		Files       []struct {
			Path   string `json:"path"`
			Size   int64  `json:"size"`
			SHA256 string `json:"sha256"`
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Files) != len(entries) {
		t.Fatalf("%d files reported, directory has %d", len(rep.Files), len(entries))
	}
	var lines strings.Builder
	for i, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		hexSum := hex.EncodeToString(sum[:])
		f := rep.Files[i]
		if f.Path != e.Name() || f.Size != int64(len(b)) || f.SHA256 != hexSum {
			t.Errorf("files[%d] = %+v, want %s %d %s", i, f, e.Name(), len(b), hexSum)
		}
		fmt.Fprintf(&lines, "%s\t%d\t%s\n", e.Name(), len(b), hexSum)
	}
	d := sha256.Sum256([]byte(lines.String()))
	if want := "sha256:" + hex.EncodeToString(d[:]); rep.Digest != want {
		t.Errorf("digest %s, want %s", rep.Digest, want)
	}
	if rep.Parameters != testmodels.LlamaParameters || rep.Format != "safetensors" || rep.Dtype != "BF16" || rep.WeightBytes <= 0 {
		t.Errorf("format %q parameters %d dtype %q weight_bytes %d; want safetensors %d BF16", rep.Format, rep.Parameters, rep.Dtype, rep.WeightBytes, testmodels.LlamaParameters)
	}
}

func TestInspectHumanReportAndCache(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "models", "tiny-q4.gguf")
	cache := t.TempDir()
	code, out, errs := inspectCmd(t, "--cache-dir", cache, dir)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"Format:        gguf", "Architecture:  llama", "Parameters:    410.37K (410,368)", "Dtype:         Q4_K",
		"Max context:   4,096 tokens", "Digest:        sha256:", "Digest cache:  " + cache + " (not used: every file hashed", "tiny-q4.gguf"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	_, out, _ = inspectCmd(t, "--cache-dir", cache, dir)
	if !strings.Contains(out, "Digest cache:  "+cache+" (used for every file; hashed 0 file(s)") {
		t.Errorf("second run did not use the cache:\n%s", out)
	}
	_, out, _ = inspectCmd(t, "--no-cache", dir)
	if !strings.Contains(out, "Digest cache:  disabled (--no-cache); hashed 1 file(s)") {
		t.Errorf("--no-cache:\n%s", out)
	}
}

func TestInspectErrors(t *testing.T) {
	code, _, errs := inspectCmd(t, filepath.Join("..", "..", "testdata", "models", "corrupt"), "--no-cache")
	want := "modelship inspect: checkpoint " + filepath.Join("..", "..", "testdata", "models", "corrupt", "model.safetensors") + ": header length 1048576 exceeds file size 126\n"
	if code != exitUsage || errs != want {
		t.Errorf("corrupt: exit %d, stderr %q; want 2, %q", code, errs, want)
	}
	if code, _, _ := inspectCmd(t); code != exitUsage {
		t.Errorf("no PATH: exit %d, want 2", code)
	}
	if code, _, _ := inspectCmd(t, "a", "b"); code != exitUsage {
		t.Errorf("two PATHs: exit %d, want 2", code)
	}
	code, _, errs = inspectCmd(t, "--help")
	if code != exitOK {
		t.Errorf("--help: exit %d", code)
	}
	for _, f := range []string{"-json", "-no-cache", "-cache-dir", "-no-hash", "-workers"} {
		if !strings.Contains(errs, f) {
			t.Errorf("--help does not explain %s:\n%s", f, errs)
		}
	}
}
