package fit

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/modelship/modelship/checkpoint"
	"github.com/modelship/modelship/gpu"
)

// Model shapes from the models' config.json on Hugging Face.
func llama3_8B() *checkpoint.Info {
	return &checkpoint.Info{
		Path: "Meta-Llama-3.1-8B-Instruct", Format: checkpoint.FormatSafetensors, Architecture: "LlamaForCausalLM",
		Parameters: 8_030_261_248, WeightBytes: 16_060_522_496, Dtype: "BF16", TorchDtype: "bfloat16",
		MaxContext: 131072,
		Shape: checkpoint.Shape{NumLayers: 32, HiddenSize: 4096, IntermediateSize: 14336,
			NumAttentionHeads: 32, NumKVHeads: 8, HeadDim: 128, VocabSize: 128256},
	}
}

func llama2_7B() *checkpoint.Info {
	return &checkpoint.Info{
		Path: "Llama-2-7b-hf", Format: checkpoint.FormatSafetensors, Architecture: "LlamaForCausalLM",
		Parameters: 6_738_415_616, WeightBytes: 13_476_831_232, Dtype: "F16", TorchDtype: "float16",
		MaxContext: 4096,
		Shape: checkpoint.Shape{NumLayers: 32, HiddenSize: 4096, IntermediateSize: 11008,
			NumAttentionHeads: 32, NumKVHeads: 32, HeadDim: 128, VocabSize: 32000},
	}
}

// llama-2-7b.Q4_K_M.gguf (TheBloke/Llama-2-7B-GGUF): 4,081,004,224 byte file;
// tensor data is the file less ~0.7 MB of header and vocabulary.
func llama2_7B_Q4KM() *checkpoint.Info {
	i := llama2_7B()
	i.Path, i.Format, i.Dtype, i.TorchDtype = "llama-2-7b.Q4_K_M.gguf", checkpoint.FormatGGUF, "Q4_K", ""
	i.WeightBytes = 4_080_263_168
	return i
}

func device(totalGiB, freeGiB float64) gpu.Device {
	return gpu.Device{UUID: "GPU-test", Name: "test", MemoryTotal: uint64(totalGiB * GiB), MemoryFree: uint64(freeGiB * GiB)}
}

func within(t *testing.T, what string, got, want, tolPct float64) float64 {
	t.Helper()
	errPct := 100 * (got - want) / want
	if math.Abs(errPct) > tolPct {
		t.Errorf("%s: predicted %.2f, published %.2f (%+.1f%%, tolerance ±%.0f%%)", what, got, want, errPct, tolPct)
	}
	return errPct
}

// TestPublished compares predictions with figures vLLM printed at startup.
// Tolerances: ±5% on weights, ±10% on available KV cache memory.
func TestPublished(t *testing.T) {
	cases := []struct {
		name              string
		info              *checkpoint.Info
		totalGiB          float64 // vLLM's total_gpu_memory
		opts              Options
		weightsGiB, kvGiB float64 // published
		source            string
	}{
		{
			// "the current vLLM instance can use total_gpu_memory (79.14GiB) x
			// gpu_memory_utilization (0.90) = 71.22GiB / model weights take
			// 14.99GiB; non_torch_memory takes 0.12GiB; PyTorch activation peak
			// memory takes 1.19GiB; the rest of the memory reserved for KV Cache
			// is 54.93GiB" (vLLM 0.7/0.8 worker.py, Llama-3.1-8B-Instruct, H100);
			// the same run's "# GPU blocks: 28123" × 16 tokens × 128 KiB = 54.93 GiB.
			name: "llama-3.1-8b bf16 H100", info: llama3_8B(), totalGiB: 79.14,
			opts:       Options{MaxModelLen: 8192},
			weightsGiB: 14.99, kvGiB: 54.93,
			source: "vLLM worker.py memory profiling log, Llama-3.1-8B-Instruct on H100 80GB",
		},
		{
			// "vLLM Empirical Test Results Analysis ... H100 GPUs (79.18 GiB
			// total memory)": Llama-3.1-8B, max model len 16000: weights 14.99,
			// activation 4.76, non-torch 0.13, available KV 51.38 GiB (vLLM V1,
			// torch.compile on: larger activation peak than our model).
			name: "llama-3.1-8b bf16 H100 V1 16k", info: llama3_8B(), totalGiB: 79.18,
			opts:       Options{MaxModelLen: 16000},
			weightsGiB: 14.99, kvGiB: 51.38,
			source: "vLLM V1 empirical log table, H100 79.18 GiB",
		},
		{
			// "vllm serve NousResearch/Llama-2-7b-hf --max-model-len 2048
			// --gpu-memory-utilization 0.90": "Model loading took 12.55 GiB
			// memory / Available KV cache memory: 58.37 GiB / GPU KV cache size:
			// 119,536 tokens" (80 GB card; vLLM V1).
			name: "llama-2-7b fp16 80GB", info: llama2_7B(), totalGiB: 79.15,
			opts:       Options{MaxModelLen: 2048},
			weightsGiB: 12.55, kvGiB: 58.37,
			source: "vLLM V1 startup log, Llama-2-7b-hf on an 80 GB GPU",
		},
		{
			// "total_gpu_memory (22.07GiB) x gpu_memory_utilization (0.90) =
			// 19.86GiB / model weights take 14.99GiB; non_torch_memory takes
			// 0.05GiB; PyTorch activation peak memory takes 0.22GiB; the rest of
			// the memory reserved for KV Cache is 4.60GiB" then "The model's max
			// seq len (131072) is larger than the maximum number of tokens that
			// can be stored in KV cache (37696)" (Llama-3.1-8B on a 24 GB A10G;
			// smaller GPUs default to 2048 batched tokens).
			name: "llama-3.1-8b bf16 A10G 128k", info: llama3_8B(), totalGiB: 22.07,
			opts:       Options{MaxNumBatchedTokens: 2048},
			weightsGiB: 14.99, kvGiB: 4.60,
			source: "vLLM 0.7 worker.py log, Llama-3.1-8B-Instruct on A10G 24 GB",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := Compute(c.info, []gpu.Device{device(c.totalGiB, c.totalGiB-0.5)}, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			we := within(t, "weights GiB", float64(e.Weights)/GiB, c.weightsGiB, 5)
			ke := within(t, "available KV GiB", float64(e.KVAvailable)/GiB, c.kvGiB, 10)
			t.Logf("| %s | weights %.2f vs %.2f (%+.1f%%) | KV %.2f vs %.2f (%+.1f%%) | %s",
				c.name, float64(e.Weights)/GiB, c.weightsGiB, we, float64(e.KVAvailable)/GiB, c.kvGiB, ke, c.source)
		})
	}
}

// The A10G case above is the one vLLM refused: 131072 tokens for one
// sequence against room for 37696. The estimate must refuse it too and name
// a context that fits.
func TestHardRequirement(t *testing.T) {
	e, err := Compute(llama3_8B(), []gpu.Device{device(22.07, 21.5)}, Options{MaxNumBatchedTokens: 2048})
	if err != nil {
		t.Fatal(err)
	}
	if e.Fits {
		t.Fatalf("131072-token context on a 24 GB A10G: estimate says it fits (%+v)", e)
	}
	within(t, "KV tokens", float64(e.KVTokens), 37696, 10)
	if e.MaxContext != e.KVTokens || e.MaxContext%BlockSize != 0 {
		t.Errorf("max context %d, KV tokens %d: want equal and whole blocks", e.MaxContext, e.KVTokens)
	}
	wantShort := e.Required - e.Budget
	if e.ShortBy != wantShort || e.Spare != -wantShort {
		t.Errorf("short by %d, spare %d; want %d and %d", e.ShortBy, e.Spare, wantShort, -wantShort)
	}
	// With the context it reports, it fits.
	e2, err := Compute(llama3_8B(), []gpu.Device{device(22.07, 21.5)}, Options{MaxNumBatchedTokens: 2048, MaxModelLen: int(e.MaxContext)})
	if err != nil {
		t.Fatal(err)
	}
	if !e2.Fits || e2.MaxSeqsAtMaxLen != 1 {
		t.Errorf("at max context %d: fits=%v max seqs=%d, want fits with exactly 1 sequence", e.MaxContext, e2.Fits, e2.MaxSeqsAtMaxLen)
	}
}

func TestKVSizing(t *testing.T) {
	h100 := []gpu.Device{device(79.18, 78.5)}
	// Llama-3-8B: 2 × 32 layers × 8 heads × 128 × 2 bytes = 128 KiB per token.
	e, err := Compute(llama3_8B(), h100, Options{MaxModelLen: 8192, MaxNumSeqs: 4})
	if err != nil {
		t.Fatal(err)
	}
	if e.KVBytesPerToken != 128<<10 || e.KVMinimum != 8192*128<<10 || e.KVFull != 4*e.KVMinimum {
		t.Errorf("llama-3-8b KV: per token %d, min %d, full %d", e.KVBytesPerToken, e.KVMinimum, e.KVFull)
	}
	if e.KVCacheDtype != "bf16" || !e.Fits || !e.FullConcurrency {
		t.Errorf("llama-3-8b on H100: dtype %s fits %v full %v", e.KVCacheDtype, e.Fits, e.FullConcurrency)
	}
	// fp8 halves it.
	e8, _ := Compute(llama3_8B(), h100, Options{MaxModelLen: 8192, MaxNumSeqs: 4, KVCacheDtype: "fp8"})
	if e8.KVBytesPerToken != 64<<10 || e8.KVTokens < 2*e.KVTokens-BlockSize {
		t.Errorf("fp8: per token %d, tokens %d vs bf16 %d", e8.KVBytesPerToken, e8.KVTokens, e.KVTokens)
	}
	// Llama-2-7B has no GQA: 512 KiB per token; GGUF KV is fp16.
	g, err := Compute(llama2_7B_Q4KM(), []gpu.Device{device(22.07, 21.5)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if g.KVBytesPerToken != 512<<10 || g.KVCacheDtype != "fp16" || g.MaxModelLen != 4096 {
		t.Errorf("gguf: per token %d dtype %s max len %d", g.KVBytesPerToken, g.KVCacheDtype, g.MaxModelLen)
	}
	// Q4_K_M weights stay quantized in vLLM: 4.08 GB, ±5% of the published file size.
	within(t, "Q4_K_M weights GB", float64(g.Weights)/1e9, 4.081004224, 5)
	// 19.86 GiB budget - 3.8 GiB weights - overhead leaves ~15 GiB: ~30k tokens, 7 full 4k sequences.
	if !g.Fits || g.MaxSeqsAtMaxLen < 6 || g.MaxSeqsAtMaxLen > 8 {
		t.Errorf("gguf on 24 GB: fits %v, max seqs at 4096 = %d, want 6..8", g.Fits, g.MaxSeqsAtMaxLen)
	}

	// Tensor parallelism: 8 KV heads over TP 2 → 4 per rank; weights halve.
	two := []gpu.Device{device(79.18, 78.5), device(79.18, 78.5)}
	t2, err := Compute(llama3_8B(), two, Options{MaxModelLen: 8192})
	if err != nil {
		t.Fatal(err)
	}
	if t2.TensorParallelSize != 2 || t2.KVBytesPerToken != 64<<10 || t2.Weights != 16_060_522_496/2 || t2.NonTorch != NonTorchBytes+NonTorchTPBytes {
		t.Errorf("tp2: tp %d per token %d weights %d non-torch %d", t2.TensorParallelSize, t2.KVBytesPerToken, t2.Weights, t2.NonTorch)
	}
	// TP beyond the KV heads replicates: Llama-3-8B with 8 KV heads at TP 16
	// would be 1 head per rank (not 0.5). Use a 4-KV-head shape at TP 8.
	i := llama3_8B()
	i.Shape.NumKVHeads = 4
	eight := make([]gpu.Device, 8)
	for k := range eight {
		eight[k] = device(79.18, 78.5)
	}
	t8, err := Compute(i, eight, Options{MaxModelLen: 8192})
	if err != nil {
		t.Fatal(err)
	}
	if t8.KVBytesPerToken != 2*32*1*128*2 || len(t8.Notes) == 0 {
		t.Errorf("tp8 with 4 KV heads: per token %d notes %q", t8.KVBytesPerToken, t8.Notes)
	}
}

func TestFreeMemoryAndTwoCopies(t *testing.T) {
	// H100 with 30 GiB held by another process: util 0.9 × 79.18 = 71.3 GiB
	// is more than the 49 GiB free: vLLM refuses to start.
	busy := []gpu.Device{device(79.18, 49.18)}
	e, err := Compute(llama3_8B(), busy, Options{MaxModelLen: 8192})
	if err != nil {
		t.Fatal(err)
	}
	if e.Fits || e.Devices[0].FreeShortfall <= 0 || e.ShortBy != e.Devices[0].FreeShortfall {
		t.Errorf("busy GPU: fits %v shortfall %d short by %d", e.Fits, e.Devices[0].FreeShortfall, e.ShortBy)
	}
	// Lower utilization so budget + context + graphs fits in what is free.
	e, _ = Compute(llama3_8B(), busy, Options{MaxModelLen: 8192, GPUMemoryUtilization: 0.5})
	if !e.Fits {
		t.Errorf("util 0.5 on 49 GiB free: want fits, got short by %d (%q)", e.ShortBy, e.Notes)
	}

	// Two copies: Llama-3-8B, 8k context, 16 seqs: comfortable = 15 + 1.6 +
	// 16 GiB ≈ 33 GiB → util 0.42 → footprint ≈ 34.5 GiB; two need ~69 GiB.
	free := []gpu.Device{device(79.18, 78.7)}
	e, _ = Compute(llama3_8B(), free, Options{MaxModelLen: 8192, MaxNumSeqs: 16})
	if !e.TwoCopies || e.CopyUtilization >= 0.5 || e.CopyUtilization*79.18*GiB < float64(e.Comfortable) {
		t.Errorf("16 seqs × 8k: two copies %v at util %.2f (comfortable %.1f GiB)", e.TwoCopies, e.CopyUtilization, float64(e.Comfortable)/GiB)
	}
	// 256 seqs × 8k need 256 GiB of KV alone: not even one comfortable copy.
	e, _ = Compute(llama3_8B(), free, Options{MaxModelLen: 8192})
	if e.TwoCopies || e.FullConcurrency || !e.Fits {
		t.Errorf("256 seqs × 8k: two copies %v full %v fits %v", e.TwoCopies, e.FullConcurrency, e.Fits)
	}
}

func TestBadInput(t *testing.T) {
	h := []gpu.Device{device(80, 80)}
	noShape := llama3_8B()
	noShape.Shape = checkpoint.Shape{}
	noCtx := llama3_8B()
	noCtx.MaxContext = 0
	for _, c := range []struct {
		name string
		info *checkpoint.Info
		devs []gpu.Device
		o    Options
		want string
	}{
		{"no devices", llama3_8B(), nil, Options{}, "no GPUs"},
		{"no shape", noShape, h, Options{}, "num_layers"},
		{"no context", noCtx, h, Options{}, "context length"},
		{"util > 1", llama3_8B(), h, Options{GPUMemoryUtilization: 1.5}, "utilization"},
		{"tp > gpus", llama3_8B(), h, Options{TensorParallelSize: 2}, "needs 2 GPUs"},
		{"tp divides heads", llama3_8B(), []gpu.Device{device(80, 80), device(80, 80), device(80, 80)}, Options{}, "does not divide"},
		{"kv dtype", llama3_8B(), h, Options{KVCacheDtype: "int4"}, "kv cache dtype"},
	} {
		_, err := Compute(c.info, c.devs, c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to mention %q", c.name, err, c.want)
		}
	}
}

// End to end on the repository's test checkpoints, parsed by checkpoint.Inspect.
func TestInspectedCheckpoints(t *testing.T) {
	for _, c := range []struct {
		path     string
		kvDtype  string
		perToken int64 // 2 × layers × kv heads × head dim × 2 bytes; 0: from the inspected shape
	}{
		{"../../testdata/models/good", "bf16", 2 * 2 * 2 * 16 * 2},
		{"../../testdata/models/tiny-q4.gguf", "fp16", 0},
	} {
		info, err := checkpoint.Inspect(context.Background(), c.path, checkpoint.Options{})
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		e, err := Compute(info, []gpu.Device{device(80, 79)}, Options{})
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		want := c.perToken
		if want == 0 {
			sh := info.Shape
			want = 2 * int64(sh.NumLayers) * int64(sh.NumKVHeads) * int64(sh.HeadDim) * 2
		}
		if e.KVCacheDtype != c.kvDtype || e.KVBytesPerToken != want || e.Weights != info.WeightBytes || !e.Fits {
			t.Errorf("%s: dtype %s per token %d (want %d) weights %d (file %d) fits %v", c.path, e.KVCacheDtype, e.KVBytesPerToken, want, e.Weights, info.WeightBytes, e.Fits)
		}
		if e.MaxModelLen != info.MaxContext || e.MaxContext != int64(info.MaxContext) {
			t.Errorf("%s: max model len %d, max context %d; want the model's %d", c.path, e.MaxModelLen, e.MaxContext, info.MaxContext)
		}
	}
}
