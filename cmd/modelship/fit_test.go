package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"

	"github.com/modelship/modelship/gpu"
)

const goodModel = "../../testdata/models/good"
const ggufModel = "../../testdata/models/tiny-q4.gguf"

func TestFitHypotheticalGPU(t *testing.T) {
	code, out, errOut := runCmd(t, "fit", goodModel, "--gpu-memory", "80GiB")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"Verdict: fits with", "KV cache per token", "budget", "72.00 GiB", "two copies: yes", "hypothetical GPU"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// A GPU too small for the runtime overhead alone: 0.4 GiB × 0.9 < 0.36 GiB non-torch + weights.
	code, out, _ = runCmd(t, "fit", goodModel, "--gpu-memory", "400MiB")
	if code != exitFailed || !strings.Contains(out, "does not fit: short by") {
		t.Errorf("400 MiB GPU: exit %d\n%s", code, out)
	}
}

func TestFitGGUFJSON(t *testing.T) {
	code, out, errOut := runCmd(t, "fit", ggufModel, "--gpu-memory", "24GiB,24GiB", "--json", "--max-model-len", "256", "--max-num-seqs", "8", "--tensor-parallel-size", "1")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var r struct {
		Checkpoint struct{ Format string } `json:"checkpoint"`
		Estimate   struct {
			KVCacheDtype string `json:"kv_cache_dtype"`
			MaxModelLen  int    `json:"max_model_len"`
			MaxNumSeqs   int    `json:"max_num_seqs"`
			TP           int    `json:"tensor_parallel_size"`
			Fits         bool   `json:"fits"`
			Devices      []struct{ UUID string }
		} `json:"estimate"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	e := r.Estimate
	if r.Checkpoint.Format != "gguf" || e.KVCacheDtype != "fp16" || e.MaxModelLen != 256 || e.MaxNumSeqs != 8 || e.TP != 1 || !e.Fits || len(e.Devices) != 1 {
		t.Errorf("got %+v", r)
	}
}

func TestFitWithNVMLMock(t *testing.T) {
	withNVML(t, mockDGX(1, 79, 1, 1, 1, 1, 1, 1))
	// All 8 GPUs by default: the tiny model's 4 attention heads do not split 8 ways.
	code, _, errOut := runCmd(t, "fit", goodModel)
	if code != exitUsage || !strings.Contains(errOut, "does not divide the model's 4 attention heads") {
		t.Errorf("TP 8 on 4 heads: exit %d stderr %q", code, errOut)
	}
	// GPU 1 has 1 GiB free, so vLLM would refuse to start.
	code, out, _ := runCmd(t, "fit", goodModel, "--gpus", "GPU-00000000-0000-0000-0000-000000000000,GPU-00000000-0000-0000-0000-000000000001")
	if code != exitFailed || !strings.Contains(out, "GPU 1 GPU-00000000-0000-0000-0000-000000000001: free 1.00 GiB") || !strings.Contains(out, "SHORT by") || !strings.Contains(out, "does not fit") {
		t.Errorf("busy GPU 1: exit %d\n%s", code, out)
	}
	// Picking two idle GPUs fits, split over TP 2.
	code, out, errOut = runCmd(t, "fit", goodModel, "--gpus", "GPU-00000000-0000-0000-0000-000000000002,GPU-00000000-0000-0000-0000-000000000003")
	if code != exitOK || !strings.Contains(out, "2 × NVIDIA H100 80GB HBM3, tensor parallel 2") {
		t.Errorf("two idle GPUs: exit %d %s\n%s", code, errOut, out)
	}
	// An unknown UUID names the ones present.
	code, _, errOut = runCmd(t, "fit", goodModel, "--gpus", "GPU-nope")
	if code != exitUsage || !strings.Contains(errOut, `"GPU-nope"`) || !strings.Contains(errOut, "GPU-00000000-0000-0000-0000-000000000005") {
		t.Errorf("unknown UUID: exit %d stderr %q", code, errOut)
	}
}

func TestFitNoNVML(t *testing.T) {
	withNVML(t, &mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }})
	code, out, errOut := runCmd(t, "fit", goodModel)
	if code != exitNoGPU || out != "" || !strings.Contains(errOut, gpu.ErrNoNVML.Error()) || !strings.Contains(errOut, "--gpu-memory") {
		t.Errorf("no NVML: exit %d stdout %q stderr %q", code, out, errOut)
	}
}

func TestFitUsage(t *testing.T) {
	code, _, help := runCmd(t, "fit", "--help")
	if code != exitOK {
		t.Errorf("--help exit %d", code)
	}
	for _, f := range []string{"-gpus", "-gpu-memory", "-max-model-len", "-max-num-seqs", "-gpu-memory-utilization", "-tensor-parallel-size", "-kv-cache-dtype", "-json", "Exit codes"} {
		if !strings.Contains(help, f) {
			t.Errorf("help lacks %s", f)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"fit"}, "exactly one checkpoint PATH"},
		{[]string{"fit", goodModel, "--gpu-memory", "eighty"}, "memory size"},
		{[]string{"fit", goodModel, "--gpu-memory", "80GiB", "--gpus", "GPU-x"}, "give one of them"},
		{[]string{"fit", "../../testdata/models/does-not-exist", "--gpu-memory", "80GiB"}, "does-not-exist"},
		{[]string{"fit", goodModel, "--gpu-memory", "80GiB", "--gpu-memory-utilization", "1.2"}, "utilization"},
		{[]string{"fit", goodModel, "--gpu-memory", "80GiB", "--tensor-parallel-size", "2"}, "needs 2 GPUs"},
		{[]string{"fit", goodModel, "--gpu-memory", "80GiB", "--kv-cache-dtype", "int3"}, "kv cache dtype"},
	} {
		code, _, errOut := runCmd(t, c.args...)
		if code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d stderr %q, want 2 and %q", c.args, code, errOut, c.want)
		}
	}
}
