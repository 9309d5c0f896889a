package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/testenv"

	"github.com/modelship/modelship/internal/config"
	"github.com/modelship/modelship/serving"
)

// runAsVLLM runs the simulator as a serving image starts the engine:
// `vllm serve ARGS...`, with simArgs as MODELSHIP_SIM_ARGS. An accepted
// command line serves until timeout.
func runAsVLLM(t *testing.T, simArgs string, timeout time.Duration, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out bytes.Buffer
	var errb testenv.SyncBuffer
	getenv := func(k string) string {
		if k == serving.EnvSimArgs {
			return simArgs
		}
		return ""
	}
	rest, serveForm, ok := vllmMode("/usr/bin/vllm", args)
	if !ok {
		t.Fatal("argv[0] vllm is not vLLM mode")
	}
	code := runVLLM(ctx, rest, serveForm, getenv, stdio{out: &out, err: &errb})
	return code, errb.String()
}

// TestSimRefusesWhatVLLMRefuses: each refusal vLLM makes, with its exit
// status and the flag or number that decided.
func TestSimRefusesWhatVLLMRefuses(t *testing.T) {
	model, _ := filepath.Abs("../../testdata/models/good") // 4 attention heads, 2048-token context
	for _, tt := range []struct {
		name    string
		simArgs string
		args    []string
		code    int
		want    string
	}{
		{"unknown flag", "", []string{"serve", model, "--no-such-flag"}, 2, "vllm: error: unrecognized arguments: --no-such-flag"},
		{"value of the wrong type", "", []string{"serve", model, "--max-num-seqs", "many"}, 2, "argument --max-num-seqs: invalid int value: 'many'"},
		{"not among the choices", "", []string{"serve", model, "--dtype", "fp4"}, 2, "argument --dtype: invalid choice: 'fp4'"},
		{"a boolean flag given a value", "", []string{"serve", model, "--enforce-eager=yes"}, 2, "ignored explicit argument 'yes'"},
		{"a value missing", "", []string{"serve", model, "--max-model-len"}, 2, "expected one argument"},
		{"not serve", "", []string{"chat"}, 2, "runs only `vllm serve`"},
		{"tensor parallel not dividing the heads", "", []string{"serve", model, "--tensor-parallel-size", "3"}, 1,
			"Total number of attention heads (4) must be divisible by tensor parallel size (3)."},
		{"max-model-len above the context", "", []string{"serve", model, "--max-model-len", "4096"}, 1,
			"User-specified max_model_len (4096) is greater than the derived max_model_len (max_position_embeddings=2048"},
		{"unknown quantization", "", []string{"serve", model, "--quantization", "zip"}, 1, "Unknown quantization method: zip."},
		{"KV cache cannot hold one sequence", "--gpu-memory 3MiB", []string{"serve", model, "--max-model-len", "2048", "--gpu-memory-utilization", "0.9"}, 1,
			"To serve at least one request with the models's max seq len (2048)"},
		{"a corrupt checkpoint", "", []string{"serve", "../../testdata/models/corrupt"}, 1, "loading the checkpoint failed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stderr := runAsVLLM(t, tt.simArgs, 10*time.Second, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("vllm %s: exit %d, stderr:\n%s\nwant exit %d and %q", strings.Join(tt.args, " "), code, stderr, tt.code, tt.want)
			}
		})
	}
}

// TestSimAcceptsTheContractArgv: the command line the serving contract
// builds from every setting is accepted, in both of vLLM's forms, and the
// simulator serves.
func TestSimAcceptsTheContractArgv(t *testing.T) {
	model, _ := filepath.Abs("../../testdata/models/good")
	yes := true
	s := serving.Settings{MaxModelLen: 2048, GPUMemoryUtilization: 0.85, TensorParallelSize: 2, MaxNumSeqs: 8,
		Dtype: "bfloat16", Quantization: "fp8", KVCacheDtype: "fp8", EnablePrefixCaching: &yes, TrustRemoteCode: true,
		EngineArgs: []string{"--enforce-eager", "--max-num-batched-tokens", "4k"}}
	argv := s.Argv(model, []string{"good"}, "127.0.0.1", 0)
	code, stderr := runAsVLLM(t, "--gpu-memory 80GiB,80GiB --ttft 1ms", 2*time.Second, argv[1:]...)
	if code != exitOK || !strings.Contains(stderr, "command line accepted") || !strings.Contains(stderr, "Uvicorn running on") {
		t.Fatalf("contract argv %q: exit %d\n%s", argv, code, stderr)
	}
	// python3 -m vllm.entrypoints.openai.api_server --model M ...
	rest, serveForm, ok := vllmMode("python3", append([]string{"-m", "vllm.entrypoints.openai.api_server", "--model", model}, argv[3:]...))
	if !ok || serveForm {
		t.Fatal("python3 -m vllm.entrypoints.openai.api_server is not vLLM mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var errb testenv.SyncBuffer
	if code := runVLLM(ctx, rest, serveForm, func(string) string { return "" }, stdio{out: &bytes.Buffer{}, err: &errb}); code != exitOK {
		t.Fatalf("api_server form: exit %d\n%s", code, errb.String())
	}
}

// TestConfigCheckAndSimAgree goes through every flag recorded from vLLM
// with a value vLLM's parser refuses: `config check` refuses it in
// serving.engine-args, naming the file, line and column, and the simulator
// refuses it with exit 2 — the same verdict from the same data.
func TestConfigCheckAndSimAgree(t *testing.T) {
	model, _ := filepath.Abs("../../testdata/models/good")
	rules := serving.VLLM()
	checked := 0
	for i := range rules.Flags {
		f := &rules.Flags[i]
		bad := ""
		switch {
		case f.Boolean != "":
			continue
		case f.Type == "int" || f.Type == "float" || f.Type == "human-int":
			bad = "many"
		case f.ChoicesEnforced && len(f.Choices) > 0:
			bad = "not-a-choice"
		default:
			continue
		}
		checked++
		yaml := fmt.Sprintf("model: {path: %s}\nserving:\n  engine-args: [%s, %s]\n", model, f.Name, bad)
		_, err := config.Parse("m.yaml", []byte(yaml))
		if err == nil || !strings.Contains(err.Error(), "m.yaml:3:") || !strings.Contains(err.Error(), f.Name) {
			t.Errorf("config accepted engine-args [%s, %s] or did not name it: %v", f.Name, bad, err)
		}
		code, stderr := runAsVLLM(t, "", 5*time.Second, "serve", model, f.Name, bad)
		if code != rules.ExitCodes.Usage || !strings.Contains(stderr, f.Name) {
			t.Errorf("sim: %s %s: exit %d, want %d naming the flag:\n%s", f.Name, bad, code, rules.ExitCodes.Usage, stderr)
		}
	}
	if checked < 20 {
		t.Errorf("only %d flags have values to refuse", checked)
	}
}
