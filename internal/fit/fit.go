package fit

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/modelship/modelship/checkpoint"
	"github.com/modelship/modelship/gpu"
	"github.com/modelship/modelship/serving"
)

// GiB is 2^30 bytes, the unit vLLM's log lines use (it prints "GB" in
// older releases but divides by 2^30).
const GiB = 1 << 30

// MiB is 2^20 bytes.
const MiB = 1 << 20

// vLLM defaults and the constants of the overhead model. See doc.go for
// where each comes from.
const (
	DefaultMaxNumSeqs           = 256  // vLLM --max-num-seqs default
	DefaultGPUMemoryUtilization = 0.90 // vLLM --gpu-memory-utilization default
	DefaultMaxNumBatchedTokens  = 8192 // vLLM V1 `vllm serve` default on >=70 GiB GPUs (chunked prefill)
	BlockSize                   = 16   // vLLM's default KV block size in tokens

	// NonTorchBytes is the non-torch memory increase vLLM's profiler counts
	// inside the budget (cuBLAS/NCCL workspaces, allocator slack) for one GPU.
	NonTorchBytes = 360 * MiB
	// NonTorchTPBytes is added per GPU when tensor parallelism > 1 (NCCL and
	// custom all-reduce buffers).
	NonTorchTPBytes = 1 * GiB
	// CUDAContextBytes is the CUDA context and kernels of the process; it is
	// not part of vLLM's budget, but it occupies free memory before vLLM
	// compares free memory with the budget.
	CUDAContextBytes = 512 * MiB
	// CUDAGraphBytes is the memory CUDA graph capture takes after the KV
	// cache is allocated (outside the budget in vLLM <= 0.10).
	CUDAGraphBytes = 768 * MiB
	// ActivationBytesPerElement is the profile-run activation peak per
	// token and per (hidden + intermediate) element: about four live bf16
	// buffers of that width per batched token.
	ActivationBytesPerElement = 8
)

// Options are the vLLM serving settings to estimate for. Zero values take
// vLLM's defaults.
type Options struct {
	MaxModelLen          int     // --max-model-len; 0: the checkpoint's MaxContext
	MaxNumSeqs           int     // --max-num-seqs; 0: 256
	MaxNumBatchedTokens  int     // --max-num-batched-tokens; 0: 8192
	GPUMemoryUtilization float64 // --gpu-memory-utilization; 0: 0.9
	TensorParallelSize   int     // --tensor-parallel-size; 0: number of devices
	KVCacheDtype         string  // --kv-cache-dtype: "", "auto", "fp8", "fp8_e4m3", "fp8_e5m2"
}

// DeviceFit is the verdict for one GPU. Bytes.
type DeviceFit struct {
	Index int    `json:"index"`
	UUID  string `json:"uuid"`
	Name  string `json:"name,omitempty"`
	Total uint64 `json:"memory_total"`
	Free  uint64 `json:"memory_free"`
	// Budget is gpu_memory_utilization × Total: what vLLM lets itself use.
	Budget int64 `json:"budget"`
	// FreeNeeded is Budget + CUDA context + CUDA graphs: the free memory the
	// GPU must have when vLLM starts.
	FreeNeeded int64 `json:"free_needed"`
	// FreeShortfall is FreeNeeded - Free when positive, else 0.
	FreeShortfall int64 `json:"free_shortfall"`
}

// Estimate is the memory plan for one vLLM instance. Byte figures are per
// GPU (per tensor-parallel rank) unless named otherwise.
type Estimate struct {
	MaxModelLen          int     `json:"max_model_len"`
	MaxNumSeqs           int     `json:"max_num_seqs"`
	MaxNumBatchedTokens  int     `json:"max_num_batched_tokens"`
	GPUMemoryUtilization float64 `json:"gpu_memory_utilization"`
	TensorParallelSize   int     `json:"tensor_parallel_size"`
	KVCacheDtype         string  `json:"kv_cache_dtype"` // resolved: "bf16", "fp16", "fp8"

	Weights         int64 `json:"weights"`            // weights per GPU
	KVBytesPerToken int64 `json:"kv_bytes_per_token"` // per GPU
	// KVMinimum is KV for ONE sequence of MaxModelLen: vLLM refuses to
	// start without it ("To serve at least one request with the model's max
	// seq len ...").
	KVMinimum int64 `json:"kv_minimum"`
	// KVFull is KV for MaxNumSeqs sequences all at MaxModelLen.
	KVFull      int64 `json:"kv_full"`
	NonTorch    int64 `json:"non_torch"`
	Activation  int64 `json:"activation"`
	CUDAGraphs  int64 `json:"cuda_graphs"`  // outside the budget
	CUDAContext int64 `json:"cuda_context"` // outside the budget

	// Budget is gpu_memory_utilization × the smallest chosen GPU's total.
	Budget int64 `json:"budget"`
	// Required is Weights + NonTorch + Activation + KVMinimum.
	Required int64 `json:"required"`
	// Comfortable is Weights + NonTorch + Activation + KVFull.
	Comfortable int64 `json:"comfortable"`
	// KVAvailable is what vLLM would log as "Available KV cache memory":
	// Budget - Weights - NonTorch - Activation (may be negative).
	KVAvailable int64 `json:"kv_available"`
	// KVTokens is KVAvailable in tokens, rounded down to whole blocks
	// (vLLM's "GPU KV cache size: N tokens").
	KVTokens int64 `json:"kv_tokens"`

	// Fits: vLLM starts — the budget holds Required and every GPU has
	// FreeNeeded free.
	Fits bool `json:"fits"`
	// Spare is Budget - Required (negative: short by that much in the budget).
	Spare int64 `json:"spare"`
	// SparePct is Spare as a percentage of Budget.
	SparePct float64 `json:"spare_pct"`
	// ShortBy is how much memory per GPU is missing when !Fits: the larger
	// of the budget shortfall and the free-memory shortfall.
	ShortBy int64 `json:"short_by"`
	// FullConcurrency: KVAvailable holds KVFull too.
	FullConcurrency bool `json:"full_concurrency"`
	// MaxSeqsAtMaxLen is how many sequences of MaxModelLen fit at once.
	MaxSeqsAtMaxLen int64 `json:"max_seqs_at_max_model_len"`
	// MaxContext is the longest single sequence the KV cache holds, capped
	// at the model's own maximum when known.
	MaxContext int64 `json:"max_context"`

	// Footprint is the memory per GPU one copy holds when started with
	// gpu_memory_utilization = CopyUtilization: ceil(Comfortable/total,
	// 0.01) × total + CUDA context + CUDA graphs.
	Footprint       int64   `json:"footprint"`
	CopyUtilization float64 `json:"copy_gpu_memory_utilization"`
	// TwoCopies: 2 × Footprint fits in the free memory of every chosen GPU,
	// so a second copy can start beside the first (blue-green).
	TwoCopies bool `json:"two_copies"`

	Devices []DeviceFit `json:"devices"`
	Notes   []string    `json:"notes,omitempty"`
}

// Compute computes the plan for serving info on devices (the first
// TensorParallelSize of them).
func Compute(info *checkpoint.Info, devices []gpu.Device, o Options) (*Estimate, error) {
	if info == nil {
		return nil, errors.New("fit: no checkpoint")
	}
	if len(devices) == 0 {
		return nil, errors.New("fit: no GPUs to fit on")
	}
	e := &Estimate{}
	if err := e.resolve(info, devices, o); err != nil {
		return nil, err
	}
	devices = devices[:e.TensorParallelSize]
	tp := int64(e.TensorParallelSize)
	sh := info.Shape

	// Weights: vLLM shards every linear layer over TP ranks; norms are tiny.
	w := info.WeightBytes
	if info.Format == checkpoint.FormatSafetensors && strings.EqualFold(info.TorchDtype, "float32") {
		// vLLM's dtype=auto serves float32 checkpoints in 16 bits.
		w /= 2
		e.Notes = append(e.Notes, "float32 checkpoint: vLLM serves it in 16 bits (dtype=auto), weights halved")
	}
	e.Weights = ceilDiv(w, tp)

	// KV cache per token per rank.
	headDim := sh.HeadDim
	if headDim == 0 && sh.NumAttentionHeads > 0 {
		headDim = sh.HiddenSize / sh.NumAttentionHeads
	}
	kvHeads := sh.NumKVHeads
	if kvHeads == 0 {
		kvHeads = sh.NumAttentionHeads
	}
	if sh.NumLayers <= 0 || kvHeads <= 0 || headDim <= 0 {
		return nil, fmt.Errorf("fit: checkpoint %s: shape lacks num_layers/num_key_value_heads/head_dim (%d/%d/%d); cannot size the KV cache", info.Path, sh.NumLayers, kvHeads, headDim)
	}
	perRank := ceilDiv(int64(kvHeads), tp) // a rank holds at least one (replicated) KV head
	if int64(kvHeads) < tp {
		e.Notes = append(e.Notes, fmt.Sprintf("%d KV heads over %d ranks: vLLM replicates KV heads, one per rank", kvHeads, tp))
	}
	kvBytes := int64(2)
	if e.KVCacheDtype == "fp8" {
		kvBytes = 1
	}
	e.KVBytesPerToken = 2 * int64(sh.NumLayers) * perRank * int64(headDim) * kvBytes
	tokensOne := roundUp(int64(e.MaxModelLen), BlockSize)
	e.KVMinimum = tokensOne * e.KVBytesPerToken
	e.KVFull = int64(e.MaxNumSeqs) * e.KVMinimum

	// Overheads inside the budget.
	e.NonTorch = NonTorchBytes
	if tp > 1 {
		e.NonTorch += NonTorchTPBytes
	}
	e.Activation = activation(sh, e.MaxNumBatchedTokens, e.MaxNumSeqs, tp)
	e.CUDAGraphs = CUDAGraphBytes
	e.CUDAContext = CUDAContextBytes

	// Budget: util × the smallest GPU (vLLM sizes KV blocks by the minimum
	// over ranks).
	minTotal, minFree := devices[0].MemoryTotal, devices[0].MemoryFree
	for _, d := range devices[1:] {
		minTotal = min(minTotal, d.MemoryTotal)
		minFree = min(minFree, d.MemoryFree)
	}
	e.Budget = int64(e.GPUMemoryUtilization * float64(minTotal))
	fixed := e.Weights + e.NonTorch + e.Activation
	e.Required = fixed + e.KVMinimum
	e.Comfortable = fixed + e.KVFull
	e.KVAvailable = e.Budget - fixed
	if e.KVAvailable > 0 {
		e.KVTokens = e.KVAvailable / e.KVBytesPerToken / BlockSize * BlockSize
		e.MaxSeqsAtMaxLen = e.KVAvailable / e.KVMinimum
		e.MaxContext = e.KVTokens
		if info.MaxContext > 0 && e.MaxContext > int64(info.MaxContext) {
			e.MaxContext = int64(info.MaxContext)
		}
	}
	e.Spare = e.Budget - e.Required
	if e.Budget > 0 {
		e.SparePct = 100 * float64(e.Spare) / float64(e.Budget)
	}
	e.FullConcurrency = e.KVAvailable >= e.KVFull

	var freeShort int64
	for _, d := range devices {
		df := DeviceFit{Index: d.Index, UUID: d.UUID, Name: d.Name, Total: d.MemoryTotal, Free: d.MemoryFree}
		df.Budget = int64(e.GPUMemoryUtilization * float64(d.MemoryTotal))
		df.FreeNeeded = df.Budget + e.CUDAContext + e.CUDAGraphs
		if s := df.FreeNeeded - int64(d.MemoryFree); s > 0 {
			df.FreeShortfall = s
			freeShort = max(freeShort, s)
		}
		e.Devices = append(e.Devices, df)
	}
	e.Fits = e.Spare >= 0 && freeShort == 0
	if !e.Fits {
		e.ShortBy = max(-e.Spare, freeShort)
	}
	if freeShort > 0 {
		e.Notes = append(e.Notes, fmt.Sprintf("free memory is %.2f GiB short of gpu_memory_utilization × total + CUDA context + graphs: vLLM refuses to start (another process holds GPU memory?)", float64(freeShort)/GiB))
	}

	// Two copies (blue-green): each copy is started with the utilization
	// its comfortable figure needs; both must fit in today's free memory.
	util := math.Ceil(100*float64(e.Comfortable)/float64(minTotal)) / 100
	e.CopyUtilization = util
	e.Footprint = int64(util*float64(minTotal)) + e.CUDAContext + e.CUDAGraphs
	e.TwoCopies = util <= 1 && 2*e.Footprint <= int64(minFree)
	return e, nil
}

// resolve fills the settings from o, the checkpoint and vLLM's defaults.
func (e *Estimate) resolve(info *checkpoint.Info, devices []gpu.Device, o Options) error {
	e.MaxModelLen = o.MaxModelLen
	if e.MaxModelLen == 0 {
		e.MaxModelLen = info.MaxContext
	}
	if e.MaxModelLen <= 0 {
		return fmt.Errorf("fit: checkpoint %s does not state its context length: give a max model length", info.Path)
	}
	if info.MaxContext > 0 && e.MaxModelLen > info.MaxContext {
		e.Notes = append(e.Notes, fmt.Sprintf("max model len %d exceeds the model's %d: vLLM refuses it unless VLLM_ALLOW_LONG_MAX_MODEL_LEN=1", e.MaxModelLen, info.MaxContext))
	}
	e.MaxNumSeqs = orDefault(o.MaxNumSeqs, DefaultMaxNumSeqs)
	e.MaxNumBatchedTokens = orDefault(o.MaxNumBatchedTokens, DefaultMaxNumBatchedTokens)
	if e.MaxNumSeqs < 0 || e.MaxNumBatchedTokens < 0 || o.MaxModelLen < 0 {
		return errors.New("fit: max model len, max num seqs and max num batched tokens must be positive")
	}
	e.GPUMemoryUtilization = o.GPUMemoryUtilization
	if e.GPUMemoryUtilization == 0 {
		e.GPUMemoryUtilization = DefaultGPUMemoryUtilization
	}
	if !(e.GPUMemoryUtilization > 0 && e.GPUMemoryUtilization <= 1) {
		return fmt.Errorf("fit: gpu memory utilization %g: want a fraction in (0, 1]", o.GPUMemoryUtilization)
	}
	e.TensorParallelSize = orDefault(o.TensorParallelSize, len(devices))
	if e.TensorParallelSize < 1 {
		return fmt.Errorf("fit: tensor parallel size %d: want at least 1", o.TensorParallelSize)
	}
	if e.TensorParallelSize > len(devices) {
		return fmt.Errorf("fit: tensor parallel size %d needs %d GPUs, only %d given", e.TensorParallelSize, e.TensorParallelSize, len(devices))
	}
	if h := info.Shape.NumAttentionHeads; h > 0 && h%e.TensorParallelSize != 0 {
		return fmt.Errorf("fit: tensor parallel size %d does not divide the model's %d attention heads (vLLM refuses it)", e.TensorParallelSize, h)
	}
	switch strings.ToLower(o.KVCacheDtype) {
	case "", "auto":
		e.KVCacheDtype = "bf16"
		if info.Format == checkpoint.FormatGGUF || strings.EqualFold(info.TorchDtype, "float16") {
			e.KVCacheDtype = "fp16"
		}
	case "fp8", "fp8_e4m3", "fp8_e5m2":
		e.KVCacheDtype = "fp8"
	default:
		return fmt.Errorf("fit: kv cache dtype %q: want auto, fp8, fp8_e4m3 or fp8_e5m2", o.KVCacheDtype)
	}
	return nil
}

// activation is the profile-run peak: batched tokens × (hidden + intermediate
// per rank) × ActivationBytesPerElement, plus fp32 logits for max_num_seqs
// sampled rows over the vocabulary.
func activation(sh checkpoint.Shape, batched, seqs int, tp int64) int64 {
	if sh.HiddenSize == 0 {
		return 1 * GiB
	}
	inter := int64(sh.IntermediateSize)
	if inter == 0 {
		inter = int64(sh.HiddenSize) * 7 / 2 // llama-like MLP ratio
	}
	width := int64(sh.HiddenSize) + ceilDiv(inter, tp)
	a := int64(batched) * width * ActivationBytesPerElement
	a += int64(min(seqs, batched)) * int64(sh.VocabSize) * 4
	return a
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

func roundUp(a, m int64) int64 { return ceilDiv(a, m) * m }

// FromSettings are the fit options of a release's serving settings.
func FromSettings(s serving.Settings) Options {
	return Options{MaxModelLen: s.MaxModelLen, MaxNumSeqs: s.MaxNumSeqs,
		GPUMemoryUtilization: s.GPUMemoryUtilization, TensorParallelSize: s.TensorParallelSize}
}
