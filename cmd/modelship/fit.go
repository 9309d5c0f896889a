package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/modelship/modelship/checkpoint"
	"github.com/modelship/modelship/gpu"
	"github.com/modelship/modelship/internal/fit"
)

func init() {
	register(command{name: "fit", summary: "estimate whether a checkpoint fits on the GPUs under vLLM (weights + KV cache + overhead)", run: runFit})
}

// fitReport is the --json output.
type fitReport struct {
	Checkpoint *checkpoint.Info `json:"checkpoint"`
	Estimate   *fit.Estimate    `json:"estimate"`
}

const fitUsage = `Usage: modelship fit PATH [flags]

Estimates the GPU memory vLLM needs to serve the checkpoint at PATH (a Hugging Face
safetensors directory or a GGUF file): weights, KV cache for the context and
sequences asked, activation and runtime overhead, per GPU under tensor parallelism,
against gpu-memory-utilization × each GPU's total memory. It also checks that the
GPUs have that much FREE memory (vLLM refuses to start otherwise), reports the
longest context and the most full-length sequences that fit, and whether two
copies fit side by side (blue-green deploys).

"Fits" means vLLM will start: one sequence of max-model-len fits in the KV cache.
Full concurrency (max-num-seqs sequences all at max-model-len) is reported too.

GPUs come from NVML; on a machine without an NVIDIA driver describe them with
--gpu-memory, e.g. --gpu-memory 80GiB or --gpu-memory 80GiB,80GiB.

Exit codes: 0 fits, 1 does not fit, 2 usage or unreadable checkpoint, 4 no NVML
and no --gpu-memory.

Flags:
`

// fitOptions are fit's flags: vLLM's settings and the GPUs to fit on.
type fitOptions struct {
	o            fit.Options
	gpus, gpuMem string
	asJSON       bool
}

func (f *fitOptions) flags(fs *flag.FlagSet) {
	fs.BoolVar(&f.asJSON, "json", false, "print the checkpoint summary and the full estimate as JSON (bytes)")
	o := &f.o
	fs.StringVar(&f.gpus, "gpus", "", "comma-separated GPU UUIDs to fit on (default: every GPU NVML reports)")
	fs.StringVar(&f.gpuMem, "gpu-memory", "", "describe hypothetical GPUs instead of asking NVML: one size per GPU, comma-separated, e.g. 80GiB or 80GiB,80GiB (GiB/MiB = 1024-based, GB/MB = 1000-based); they count as entirely free")
	fs.IntVar(&o.MaxModelLen, "max-model-len", 0, "vLLM --max-model-len: longest sequence, prompt + output, in tokens (default: the model's context length)")
	fs.IntVar(&o.MaxNumSeqs, "max-num-seqs", 0, "vLLM --max-num-seqs: sequences served at once (default 256)")
	fs.IntVar(&o.MaxNumBatchedTokens, "max-num-batched-tokens", 0, "vLLM --max-num-batched-tokens: tokens per scheduler step, sizes the activation peak (default 8192)")
	fs.Float64Var(&o.GPUMemoryUtilization, "gpu-memory-utilization", 0, "vLLM --gpu-memory-utilization: fraction of each GPU's TOTAL memory vLLM may use (default 0.9)")
	fs.IntVar(&o.TensorParallelSize, "tensor-parallel-size", 0, "vLLM --tensor-parallel-size: GPUs one copy is split over (default: number of GPUs chosen)")
	fs.StringVar(&o.KVCacheDtype, "kv-cache-dtype", "auto", "vLLM --kv-cache-dtype: auto (the model dtype; fp16 for GGUF) or fp8")
}

func runFit(ctx context.Context, args []string, s stdio) int {
	fs := newFlagSet("fit", s, fitUsage)
	var f fitOptions
	f.flags(fs)
	path, code, ok := parseOneArg(fs, args, newUsageErr(s, "fit", ""), "want exactly one checkpoint PATH, got %d arguments")
	if !ok {
		return code
	}
	devices, code := chooseDevices(f.gpus, f.gpuMem, s.err)
	if devices == nil {
		if code == exitNoGPU {
			fmt.Fprintln(s.err, "modelship fit: describe the GPUs with --gpu-memory (e.g. --gpu-memory 80GiB) to estimate without a driver")
		}
		return code
	}

	info, err := checkpoint.Inspect(ctx, path, checkpoint.Options{})
	if err != nil {
		fmt.Fprintf(s.err, "modelship fit: %v\n", err)
		return exitUsage
	}
	est, err := fit.Compute(info, devices, f.o)
	if err != nil {
		fmt.Fprintf(s.err, "modelship fit: %v\n", err)
		return exitUsage
	}
	if f.asJSON {
		info.Files = nil // the file list is inspect's business
		if code := printJSON(s, "fit", fitReport{Checkpoint: info, Estimate: est}); code != exitOK {
			return code
		}
	} else {
		printFit(s.out, info, est)
	}
	if !est.Fits {
		return exitFailed
	}
	return exitOK
}

// chooseDevices returns the GPUs to fit on: the hypothetical ones described
// by gpuMem ("80GiB,80GiB"), or those NVML reports, narrowed to the
// comma-separated UUIDs in gpus. On failure it prints why and returns nil
// with the exit code (exitNoGPU when there is no NVIDIA driver).
func chooseDevices(gpus, gpuMem string, stderr io.Writer) ([]gpu.Device, int) {
	if gpus != "" && gpuMem != "" {
		fmt.Fprintln(stderr, "modelship: --gpus picks real GPUs and --gpu-memory describes hypothetical ones; give one of them")
		return nil, exitUsage
	}
	if gpuMem != "" {
		var devices []gpu.Device
		for i, f := range strings.Split(gpuMem, ",") {
			size, err := fit.ParseSize(f)
			if err != nil {
				fmt.Fprintf(stderr, "modelship: --gpu-memory: %v\n", err)
				return nil, exitUsage
			}
			devices = append(devices, gpu.Device{Index: i, UUID: fmt.Sprintf("hypothetical-%d", i), Name: "hypothetical GPU", MemoryTotal: size, MemoryFree: size})
		}
		return devices, exitOK
	}
	rep, code := queryGPUs(stderr)
	if rep == nil {
		return nil, code
	}
	devices, err := pickGPUs(rep.Devices, gpus)
	if err != nil {
		fmt.Fprintf(stderr, "modelship: %v\n", err)
		return nil, exitUsage
	}
	return devices, exitOK
}

// pickGPUs returns the devices named by the comma-separated UUIDs, in the
// order given, or all devices when uuids is empty.
func pickGPUs(all []gpu.Device, uuids string) ([]gpu.Device, error) {
	if len(all) == 0 {
		return nil, errors.New("NVML reports no GPUs on this machine")
	}
	if uuids == "" {
		return all, nil
	}
	var picked []gpu.Device
	seen := map[string]bool{}
	for _, u := range strings.Split(uuids, ",") {
		u = strings.TrimSpace(u)
		if seen[u] {
			return nil, fmt.Errorf("--gpus: %s given twice", u)
		}
		seen[u] = true
		found := false
		for _, d := range all {
			if d.UUID == u {
				picked, found = append(picked, d), true
				break
			}
		}
		if !found {
			present := make([]string, len(all))
			for i, d := range all {
				present[i] = d.UUID
			}
			return nil, fmt.Errorf("--gpus: no GPU with UUID %q on this machine; present: %s", u, strings.Join(present, ", "))
		}
	}
	return picked, nil
}

func printFit(w io.Writer, info *checkpoint.Info, e *fit.Estimate) {
	fmt.Fprintf(w, "Checkpoint  %s (%s, %s, %s parameters, %s)\n", info.Path, info.Format, info.Architecture, fmtParams(info.Parameters), info.Dtype)
	names := map[string]int{}
	var order []string
	for _, d := range e.Devices {
		if names[d.Name] == 0 {
			order = append(order, d.Name)
		}
		names[d.Name]++
	}
	var gs []string
	for _, n := range order {
		gs = append(gs, fmt.Sprintf("%d × %s", names[n], n))
	}
	fmt.Fprintf(w, "GPUs        %s, tensor parallel %d\n", strings.Join(gs, ", "), e.TensorParallelSize)
	fmt.Fprintf(w, "Settings    max-model-len %d, max-num-seqs %d, max-num-batched-tokens %d, gpu-memory-utilization %.2f, kv cache %s\n\n",
		e.MaxModelLen, e.MaxNumSeqs, e.MaxNumBatchedTokens, e.GPUMemoryUtilization, e.KVCacheDtype)
	row := func(label, value, note string) {
		fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("  %-34s %12s  %s", label, value, note), " "))
	}
	fmt.Fprintln(w, "Per GPU:")
	row("weights", fmtGiB(e.Weights), "")
	row("KV cache per token", fmt.Sprintf("%.2f KiB", float64(e.KVBytesPerToken)/1024), "")
	row(fmt.Sprintf("KV for 1 × %d tokens", e.MaxModelLen), fmtGiB(e.KVMinimum), "vLLM's minimum to start")
	row(fmt.Sprintf("KV for %d × %d tokens", e.MaxNumSeqs, e.MaxModelLen), fmtGiB(e.KVFull), "every sequence at full length")
	row("activation peak", fmtGiB(e.Activation), "profile run")
	row("non-torch", fmtGiB(e.NonTorch), "")
	row("total required", fmtGiB(e.Required), "weights + activation + non-torch + minimum KV")
	row("budget", fmtGiB(e.Budget), fmt.Sprintf("%.2f × smallest GPU's total", e.GPUMemoryUtilization))
	row("KV cache available", fmtGiB(e.KVAvailable), fmt.Sprintf("%d tokens", e.KVTokens))
	row("outside the budget", fmtGiB(e.CUDAContext+e.CUDAGraphs), "CUDA context + CUDA graphs")
	for _, d := range e.Devices {
		state := "ok"
		if d.FreeShortfall > 0 {
			state = "SHORT by " + fmtGiB(d.FreeShortfall)
		}
		fmt.Fprintf(w, "  GPU %d %s: free %s of %s, needs %s free: %s\n", d.Index, d.UUID, fmtGiB(int64(d.Free)), fmtGiB(int64(d.Total)), fmtGiB(d.FreeNeeded), state)
	}
	fmt.Fprintln(w)
	if e.Fits {
		fmt.Fprintf(w, "Verdict: fits with %s to spare (%.1f%% of the budget)\n", fmtGiB(e.Spare), e.SparePct)
	} else {
		fmt.Fprintf(w, "Verdict: does not fit: short by %s per GPU\n", fmtGiB(e.ShortBy))
	}
	if e.FullConcurrency {
		fmt.Fprintf(w, "  full concurrency (%d × %d tokens): yes\n", e.MaxNumSeqs, e.MaxModelLen)
	} else {
		fmt.Fprintf(w, "  full concurrency (%d × %d tokens): no, at most %d sequences of %d tokens at once\n", e.MaxNumSeqs, e.MaxModelLen, e.MaxSeqsAtMaxLen, e.MaxModelLen)
	}
	fmt.Fprintf(w, "  longest single context that fits: %d tokens\n", e.MaxContext)
	if e.TwoCopies {
		fmt.Fprintf(w, "  two copies: yes (each with --gpu-memory-utilization %.2f, %s per GPU)\n", e.CopyUtilization, fmtGiB(e.Footprint))
	} else {
		fmt.Fprintf(w, "  two copies: no (each needs %s per GPU at full concurrency)\n", fmtGiB(e.Footprint))
	}
	for _, n := range e.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

// fmtParams formats a parameter count: 8.03B, 124.4M, 4.1K.
func fmtParams(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}
