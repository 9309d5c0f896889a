package deploy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/modelship/modelship/checkpoint"
	"github.com/modelship/modelship/gpu"
	"github.com/modelship/modelship/internal/fit"
)

// Strategy names.
const (
	Auto      = "auto"
	Recreate  = "recreate"
	BlueGreen = "blue-green"
	// Rolling replaces a release's replicas a few at a time (Kubernetes
	// targets only); it runs the blue-green steps, with the target doing
	// the surge: start = the rollout, switch = the Service.
	Rolling = "rolling"
)

// GPUSource lists the GPUs of the target host with their free memory
// (gpu.Detect on the host; tests pass gpu.Query of an NVML mock).
type GPUSource func(ctx context.Context) ([]gpu.Device, error)

// DetectGPUs is the GPUSource of the machine this process runs on.
func DetectGPUs(context.Context) ([]gpu.Device, error) {
	rep, err := gpu.Detect()
	if err != nil {
		return nil, err
	}
	return rep.Devices, nil
}

// Placement is the input of Plan.
type Placement struct {
	// Engine is "sim" or "ollama" (no GPU: CPU-only builds), or "vllm".
	Engine string
	// Strategy asked for: auto, recreate, blue-green or canary.
	Strategy string
	// Canary: the request has canary steps (Request.Canary), so auto
	// picks canary where two copies fit.
	Canary bool
	// Model is the checkpoint's inspection; required for vllm.
	Model *checkpoint.Info
	// Fit are the serving settings fit estimates for.
	Fit fit.Options
	// GPUs restricts the choice to these UUIDs (the environment's gpus).
	GPUs []string
	// Current is the release serving now (nil on a first deploy); its GPUs'
	// memory counts as free for the plan, since recreate frees it and
	// blue-green needs room for both.
	Current *Release
}

// Plan is where and how a release will run.
type Plan struct {
	Strategy string   // recreate, blue-green or canary
	GPUs     []string // UUIDs to attach; empty for sim
	// GPUMemoryUtilization, when set, replaces the setting so that a copy
	// is sized to fit twice (blue-green).
	GPUMemoryUtilization float64
	Estimate             *fit.Estimate // nil for sim
	Why                  string        // one sentence for the log
}

// ErrNoFit is wrapped by Plan's error when the model does not fit.
var ErrNoFit = errors.New("the model does not fit in GPU memory")

// MakePlan chooses the strategy and GPUs. It fails, before anything is
// touched, when the model does not fit (saying by how much) or when
// blue-green is asked for and two copies do not fit. Canary, which also
// needs two copies side by side, falls back to recreate where they do not
// fit (the plan's Why says so); auto picks canary when the placement has
// canary steps and two copies fit.
func MakePlan(ctx context.Context, p Placement, gpus GPUSource) (*Plan, error) {
	strategy := p.Strategy
	if strategy == "" {
		strategy = Auto
	}
	if !slices.Contains([]string{Auto, Recreate, BlueGreen, Canary}, strategy) {
		return nil, fmt.Errorf("strategy %q: expected auto, recreate, blue-green or canary", strategy)
	}
	if p.Engine == "sim" || p.Engine == "ollama" {
		why := "engine " + p.Engine + " uses no GPU, so two copies always fit"
		if strategy == Auto {
			strategy = BlueGreen
			if p.Canary {
				strategy, why = Canary, why+": canary, with the configured steps"
			}
		}
		return &Plan{Strategy: strategy, Why: why}, nil
	}
	if p.Model == nil {
		return nil, errors.New("engine vllm needs the checkpoint (model.path in modelship.yaml) to size GPU memory")
	}
	if gpus == nil {
		gpus = DetectGPUs
	}
	devs, err := gpus(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing GPUs to place the model: %w", err)
	}
	if len(p.GPUs) > 0 {
		var chosen []gpu.Device
		for _, id := range p.GPUs {
			i := slices.IndexFunc(devs, func(d gpu.Device) bool { return d.UUID == id })
			if i < 0 {
				return nil, fmt.Errorf("GPU %s (environment gpus) is not on this host", id)
			}
			chosen = append(chosen, devs[i])
		}
		devs = chosen
	} else {
		devs = slices.Clone(devs)
		sort.SliceStable(devs, func(i, j int) bool { return devs[i].MemoryFree > devs[j].MemoryFree })
	}
	if len(devs) == 0 {
		return nil, errors.New("no GPU on this host")
	}
	est, err := fit.Compute(p.Model, devs, p.Fit)
	if err != nil {
		return nil, err
	}
	// Memory the serving release holds is free for our purpose.
	if p.Current != nil && len(p.Current.GPUs) > 0 {
		for i := range devs {
			if slices.Contains(p.Current.GPUs, devs[i].UUID) {
				devs[i].MemoryFree = min(devs[i].MemoryTotal, devs[i].MemoryFree+uint64(est.Footprint))
			}
		}
		if est, err = fit.Compute(p.Model, devs, p.Fit); err != nil {
			return nil, err
		}
	}
	if !est.Fits {
		return nil, fmt.Errorf("%w: %s", ErrNoFit, noFitReason(est))
	}
	plan := &Plan{Estimate: est}
	for _, d := range est.Devices {
		plan.GPUs = append(plan.GPUs, d.UUID)
	}
	canary := strategy == Canary || strategy == Auto && p.Canary
	switch {
	case strategy == BlueGreen && !est.TwoCopies:
		return nil, &TwoCopiesError{Footprint: est.Footprint, Free: freeList(est)}
	case canary && !est.TwoCopies:
		plan.Strategy = Recreate
		plan.Why = fmt.Sprintf("canary needs two copies side by side: one takes %s per GPU, GPUs have %s free; recreate, with downtime", gib(est.Footprint), freeList(est))
	case strategy == Auto && est.TwoCopies, strategy == BlueGreen, canary:
		plan.Strategy = BlueGreen
		plan.Why = fmt.Sprintf("two copies fit: one takes %s per GPU at gpu-memory-utilization %.2f, GPUs have %s free", gib(est.Footprint), est.CopyUtilization, freeList(est))
		if canary {
			plan.Strategy, plan.Why = Canary, plan.Why+": canary, with the configured steps"
		}
		plan.GPUMemoryUtilization = math.Round(est.CopyUtilization*100) / 100
	default:
		plan.Strategy = Recreate
		plan.Why = fmt.Sprintf("two copies do not fit (one takes %s per GPU, GPUs have %s free): recreate, with downtime", gib(est.Footprint), freeList(est))
	}
	return plan, nil
}

// TwoCopiesError says blue-green was asked for where two copies of the
// model do not fit side by side (recreate or auto would deploy).
type TwoCopiesError struct {
	// Footprint is what one copy takes per GPU (bytes); Free the GPUs'
	// free memory ("20.0 GiB, 20.0 GiB").
	Footprint int64
	Free      string
}

func (e *TwoCopiesError) Error() string {
	return fmt.Sprintf("blue-green needs two copies side by side: one copy takes %s per GPU and the GPUs have %s free", gib(e.Footprint), e.Free)
}

func noFitReason(e *fit.Estimate) string {
	var b strings.Builder
	fmt.Fprintf(&b, "it needs %s per GPU (weights %s, KV cache for one %d-token sequence %s, activations and workspaces %s) within a budget of %s (%.0f%% of the GPU), short by %s",
		gib(e.Required), gib(e.Weights), e.MaxModelLen, gib(e.KVMinimum), gib(e.Activation+e.NonTorch), gib(e.Budget), e.GPUMemoryUtilization*100, gib(e.ShortBy))
	for _, d := range e.Devices {
		if d.FreeShortfall > 0 {
			fmt.Fprintf(&b, "; GPU %d (%s) has %s free of %s and needs %s free", d.Index, d.UUID, gib(int64(d.Free)), gib(int64(d.Total)), gib(d.FreeNeeded))
		}
	}
	return b.String()
}

func freeList(e *fit.Estimate) string {
	var parts []string
	for _, d := range e.Devices {
		parts = append(parts, gib(int64(d.Free)))
	}
	return strings.Join(parts, ", ")
}

func gib(b int64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }
