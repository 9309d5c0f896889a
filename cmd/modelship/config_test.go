package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, stdio{in: strings.NewReader(""), out: &out, err: &errb})
	return code, out.String(), errb.String()
}

func TestConfigCheck(t *testing.T) {
	t.Setenv("MODELSHIP_WEBHOOK_SECRET", "hunter2-value")
	code, out, errs := runCLI(t, "config", "check", "../../modelship.yaml")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"engine: sim", "image: \"\"" /* engine sim: the Dagger module's base */, "port: 8100", "secret: env:MODELSHIP_WEBHOOK_SECRET", "pass-rate: 1", "keep-releases: 10"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+errs, "hunter2-value") {
		t.Error("a resolved secret was printed")
	}
}

func TestConfigCheckErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "modelship.yaml")
	os.WriteFile(bad, []byte("model:\n  path: .\nserving:\n  engine: tgi\n"), 0o644)
	code, _, errs := runCLI(t, "config", "check", bad)
	if code != exitUsage || !strings.Contains(errs, bad+":4:11: serving.engine: expected \"vllm\", \"sim\" or \"ollama\"") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	os.WriteFile(bad, []byte("model:\n  path: nowhere\n"), 0o644)
	code, _, errs = runCLI(t, "config", "check", bad)
	if code != exitUsage || !strings.Contains(errs, "model.path") || !strings.Contains(errs, "does not exist") {
		t.Errorf("missing model: exit %d, stderr %q", code, errs)
	}
	code, _, errs = runCLI(t, "config", "check", filepath.Join(dir, "absent.yaml"))
	if code != exitUsage || !strings.Contains(errs, "absent.yaml") {
		t.Errorf("missing file: exit %d, stderr %q", code, errs)
	}
	t.Setenv("MODELSHIP_WEBHOOK_SECRET", "")
	code, _, errs = runCLI(t, "config", "check", "../../modelship.yaml")
	if code != exitOK || !strings.Contains(errs, "warning:") || !strings.Contains(errs, "MODELSHIP_WEBHOOK_SECRET is not set") {
		t.Errorf("unresolvable secret: exit %d, stderr %q", code, errs)
	}
}

// config check applies vLLM's startup rules against the checkpoint, for
// the file's settings and each environment's, naming the key that gave
// the value with its line and column; config serving prints the command
// line the settings become.
func TestConfigCheckAgainstTheModel(t *testing.T) {
	model, _ := filepath.Abs("../../testdata/models/good") // 4 attention heads, 2048-token context
	dir := t.TempDir()
	file := filepath.Join(dir, "modelship.yaml")
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"tensor parallel not dividing the heads", "serving:\n  tensor-parallel-size: 3\n",
			[]string{":3:25: serving.tensor-parallel-size: vLLM v0.16.0 would refuse to start: Total number of attention heads (4) must be divisible by tensor parallel size (3)."}},
		{"max-model-len above the context, in an environment", "environments:\n  production:\n    serving: {max-model-len: 4096}\n",
			[]string{":4:30: environments.production.serving.max-model-len: vLLM v0.16.0 would refuse to start: User-specified max_model_len (4096) is greater than the derived max_model_len (max_position_embeddings=2048"}},
		{"unknown quantization", "serving: {quantization: zip}\n", []string{"serving.quantization", "Unknown quantization method: zip."}},
		{"chat template not in the checkpoint", "serving: {chat-template: missing.jinja}\n", []string{"serving.chat-template: missing.jinja is not in the checkpoint directory"}},
		{"engine ollama on a safetensors checkpoint", "serving: {engine: ollama}\n", []string{"model.path: engine ollama serves a GGUF file", "is a safetensors checkpoint"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.WriteFile(file, []byte("model: {path: "+model+"}\n"+tc.yaml), 0o644)
			code, _, errs := runCLI(t, "config", "check", file)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d: %s", code, exitUsage, errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errs)
				}
			}
		})
	}
	gguf, _ := filepath.Abs("../../testdata/models/gguf-good")
	os.WriteFile(file, []byte("model: {path: "+gguf+"}\nserving: {engine: ollama, max-model-len: 1024, max-num-seqs: 2}\n"), 0o644)
	if code, _, errs := runCLI(t, "config", "check", file); code != exitOK {
		t.Errorf("engine ollama on a GGUF checkpoint refused: %s", errs)
	}
	os.WriteFile(file, []byte("model: {path: "+model+", aliases: [llm-v2]}\nserving: {tensor-parallel-size: 2, max-model-len: 1024}\nenvironments:\n  production:\n    serving: {max-model-len: 2048}\n"), 0o644)
	if code, _, errs := runCLI(t, "config", "check", file); code != exitOK {
		t.Fatalf("valid settings refused: %s", errs)
	}
	code, out, errs := runCLI(t, "config", "serving", file, "--env", "production")
	if code != exitOK || !strings.Contains(out, `"TENSOR_PARALLEL_SIZE=2"`) || !strings.Contains(out, `"MAX_MODEL_LEN=2048"`) ||
		!strings.Contains(out, `"--served-model-name",
    "current",
    "llm-v2",`) {
		t.Errorf("config serving --env production = %d\n%s%s", code, out, errs)
	}
}
