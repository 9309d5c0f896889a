//go:build cgo

package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/modelship/modelship/checkpoint"
	"github.com/modelship/modelship/gpu"
	"github.com/modelship/modelship/internal/fit"
	"github.com/modelship/modelship/serving"
)

// MockGPUs is a GPUSource over the 8 × H100 NVML mock, GPU i holding used[i] GiB.
func MockGPUs(used ...float64) GPUSource {
	s := dgxh100.New()
	for i, d := range s.Devices {
		dev := d.(*server.Device)
		dev.UUID = fmt.Sprintf("GPU-00000000-0000-0000-0000-00000000000%d", i)
		u := uint64(0.5 * (1 << 30))
		if i < len(used) {
			u = uint64(used[i] * (1 << 30))
		}
		dev.MemoryInfo.Used = u
		dev.MemoryInfo.Free = dev.MemoryInfo.Total - u
	}
	return func(context.Context) ([]gpu.Device, error) {
		rep, err := gpu.Query(s)
		if err != nil {
			return nil, err
		}
		return rep.Devices, nil
	}
}

// Llama3_8B is Llama-3.1-8B's shape (config.json on Hugging Face).
func Llama3_8B() *checkpoint.Info {
	return &checkpoint.Info{
		Path: "Meta-Llama-3.1-8B-Instruct", Format: checkpoint.FormatSafetensors, Architecture: "LlamaForCausalLM",
		Parameters: 8_030_261_248, WeightBytes: 16_060_522_496, Dtype: "BF16", TorchDtype: "bfloat16", MaxContext: 131072,
		Shape: checkpoint.Shape{NumLayers: 32, HiddenSize: 4096, IntermediateSize: 14336, NumAttentionHeads: 32, NumKVHeads: 8, HeadDim: 128, VocabSize: 128256},
	}
}

// Llama3_70B is Llama-3.1-70B: 141 GB of bf16 weights, more than one H100.
func Llama3_70B() *checkpoint.Info {
	return &checkpoint.Info{
		Path: "Meta-Llama-3.1-70B-Instruct", Format: checkpoint.FormatSafetensors, Architecture: "LlamaForCausalLM",
		Parameters: 70_553_706_496, WeightBytes: 141_107_412_992, Dtype: "BF16", TorchDtype: "bfloat16", MaxContext: 131072,
		Shape: checkpoint.Shape{NumLayers: 80, HiddenSize: 8192, IntermediateSize: 28672, NumAttentionHeads: 64, NumKVHeads: 8, HeadDim: 128, VocabSize: 128256},
	}
}

func TestPlan(t *testing.T) {
	ctx := context.Background()
	small := fit.Options{MaxModelLen: 8192, MaxNumSeqs: 16, TensorParallelSize: 1}
	full := fit.Options{MaxModelLen: 8192, TensorParallelSize: 1} // 256 seqs: one copy takes the GPU
	cases := []struct {
		name     string
		p        Placement
		gpus     GPUSource
		strategy string
		err      string
	}{
		{"sim auto is blue-green", Placement{Engine: "sim"}, nil, BlueGreen, ""},
		{"sim recreate when asked", Placement{Engine: "sim", Strategy: Recreate}, nil, Recreate, ""},
		{"ollama (CPU) auto is blue-green without asking for GPUs", Placement{Engine: "ollama"}, func(context.Context) ([]gpu.Device, error) {
			return nil, errors.New("no GPU here")
		}, BlueGreen, ""},
		{"two copies fit", Placement{Engine: "vllm", Model: Llama3_8B(), Fit: small}, MockGPUs(), BlueGreen, ""},
		{"two copies do not fit: auto recreates", Placement{Engine: "vllm", Model: Llama3_8B(), Fit: full}, MockGPUs(), Recreate, ""},
		{"blue-green asked but two copies do not fit", Placement{Engine: "vllm", Strategy: BlueGreen, Model: Llama3_8B(), Fit: full}, MockGPUs(), "", "blue-green needs two copies side by side"},
		{"does not fit at all", Placement{Engine: "vllm", Model: Llama3_70B(), Fit: full}, MockGPUs(), "", "does not fit in GPU memory: it needs"},
		{"busy GPUs", Placement{Engine: "vllm", Model: Llama3_8B(), Fit: small, GPUs: []string{"GPU-00000000-0000-0000-0000-000000000000"}}, MockGPUs(60), "", "GPU 0 (GPU-00000000-0000-0000-0000-000000000000) has 20.0 GiB free of 80.0 GiB and needs 73.2 GiB free"},
		{"the serving release's memory counts as free", Placement{Engine: "vllm", Model: Llama3_8B(), Fit: full, GPUs: []string{"GPU-00000000-0000-0000-0000-000000000000"},
			Current: &Release{GPUs: []string{"GPU-00000000-0000-0000-0000-000000000000"}}}, MockGPUs(72), Recreate, ""},
		{"unknown GPU", Placement{Engine: "vllm", Model: Llama3_8B(), GPUs: []string{"GPU-nope"}}, MockGPUs(), "", "GPU GPU-nope (environment gpus) is not on this host"},
		{"vllm without a checkpoint", Placement{Engine: "vllm"}, MockGPUs(), "", "needs the checkpoint"},
		{"unknown strategy", Placement{Engine: "sim", Strategy: "rolling"}, nil, "", `strategy "rolling": expected auto, recreate, blue-green or canary`},
		{"sim auto with canary steps is canary", Placement{Engine: "sim", Canary: true}, nil, Canary, ""},
		{"canary where two copies fit", Placement{Engine: "vllm", Strategy: Canary, Model: Llama3_8B(), Fit: small}, MockGPUs(), Canary, ""},
		{"auto with canary steps where two copies fit", Placement{Engine: "vllm", Canary: true, Model: Llama3_8B(), Fit: small}, MockGPUs(), Canary, ""},
		{"auto with canary steps where two copies do not fit", Placement{Engine: "vllm", Canary: true, Model: Llama3_8B(), Fit: full}, MockGPUs(), Recreate, ""},
		{"canary where two copies do not fit recreates", Placement{Engine: "vllm", Strategy: Canary, Model: Llama3_8B(), Fit: full}, MockGPUs(), Recreate, ""},
		{"no NVML", Placement{Engine: "vllm", Model: Llama3_8B()}, func(context.Context) ([]gpu.Device, error) { return nil, gpu.ErrNoNVML }, "", "listing GPUs"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := MakePlan(ctx, c.p, c.gpus)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Strategy != c.strategy {
				t.Errorf("strategy %s (%s), want %s", p.Strategy, p.Why, c.strategy)
			}
			if c.p.Strategy == Canary && p.Strategy == Recreate && !strings.Contains(p.Why, "canary needs two copies side by side: one takes") {
				t.Errorf("canary fell back to recreate saying %q, want why in numbers", p.Why)
			}
			if c.p.Engine == "vllm" && len(p.GPUs) != 1 {
				t.Errorf("GPUs %v, want one", p.GPUs)
			}
		})
	}
	_, err := MakePlan(ctx, Placement{Engine: "vllm", Model: Llama3_70B(), Fit: full}, MockGPUs())
	if !errors.Is(err, ErrNoFit) {
		t.Errorf("70B on one H100: %v, want ErrNoFit", err)
	}
	t.Logf("70B on one H100: %v", err)
}

// TestPlanTensorParallel: tensor-parallel-size 2 places one copy on two
// GPUs, and the release gets both, with shared memory.
func TestPlanTensorParallel(t *testing.T) {
	s := serving.Settings{MaxModelLen: 8192, MaxNumSeqs: 16, TensorParallelSize: 2}
	plan, err := MakePlan(context.Background(), Placement{Engine: "vllm", Model: Llama3_8B(), Fit: fit.FromSettings(s)}, MockGPUs())
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.GPUs) != 2 || plan.GPUs[0] == plan.GPUs[1] {
		t.Errorf("tensor-parallel-size 2 planned on GPUs %q, want two", plan.GPUs)
	}
	if !s.NeedsSharedMemory() {
		t.Error("tensor-parallel-size 2 does not ask for shared memory")
	}
}
