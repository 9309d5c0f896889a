package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/modelship/modelship/checkpoint"
	"github.com/modelship/modelship/gpu"
	"github.com/modelship/modelship/internal/config"
	"github.com/modelship/modelship/internal/fit"
	"github.com/modelship/modelship/internal/gha"
	"github.com/modelship/modelship/internal/progress"
	"github.com/modelship/modelship/notify"
)

func init() {
	register(command{name: "preflight", summary: "inspect and digest the configured checkpoint and check it fits the GPUs, before any GPU minute is spent", run: runPreflight})
}

// preflightReport is the --json output.
type preflightReport struct {
	Config     string           `json:"config"`
	Engine     string           `json:"engine"`
	ServedName string           `json:"served_name"`
	Checkpoint *checkpoint.Info `json:"checkpoint"`
	GPUs       []gpu.Device     `json:"gpus,omitempty"`
	Fit        *fit.Estimate    `json:"fit,omitempty"`
	// FitSkipped says why no fit was computed (no GPU visible).
	FitSkipped string `json:"fit_skipped,omitempty"`
	// Passed is false when the checkpoint does not fit.
	Passed bool `json:"passed"`
}

func runPreflight(ctx context.Context, args []string, s stdio) int {
	fs := flag.NewFlagSet("preflight", flag.ContinueOnError)
	fs.SetOutput(s.err)
	gpus := fs.String("gpus", "", "comma-separated GPU UUIDs to fit on (default: every GPU NVML reports)")
	gpuMem := fs.String("gpu-memory", "", "fit on hypothetical GPUs instead of asking NVML, e.g. 80GiB or 80GiB,80GiB")
	noCache := fs.Bool("no-cache", false, "hash every file even if the digest cache knows it")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: modelship preflight [FILE] [flags]

The first stage of a release, run before any GPU minute is spent. Reads FILE
(default %s), then:
  1. inspects the checkpoint at model.path: format, architecture, exact
     parameters, dtypes, context length, and its content digest (SHA-256 of
     every file, reusing the digest cache for unchanged files);
  2. when GPUs are visible through NVML (or described with --gpu-memory),
     estimates vLLM's memory with serving.max-model-len,
     gpu-memory-utilization, tensor-parallel-size and max-num-seqs, and says
     whether it fits and whether two copies fit (blue-green deploys).
Without a GPU the fit is skipped and said so; that is not a failure.

Exit codes: 0 passed, 1 does not fit, 2 bad config or checkpoint.

Flags:
`, config.DefaultFile)
		fs.PrintDefaults()
	}
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	file := config.DefaultFile
	switch len(pos) {
	case 0:
	case 1:
		file = pos[0]
	default:
		fmt.Fprintf(s.err, "modelship preflight: want at most one config FILE, got %d arguments\n", len(pos))
		return exitUsage
	}
	cfg, ok := loadConfig(s, file)
	if !ok {
		return exitUsage
	}
	gaOut := s.out // GitHub Actions commands stay off a --json stdout
	if *asJSON {
		gaOut = s.err
	}
	ga := gha.FromEnv(gaOut, s.err)
	ga.MaskSecrets(cfg)
	ev := stageEvents(cfg, notify.StagePreflight, ga, s.err)
	defer ev.Close(ctx)
	ev.Start()
	info, _, _, err := inspectCheckpoint(ctx, cfg.ModelPath(), true, !*noCache, "", 0, s.err)
	if err != nil {
		ev.Finish(notify.StatusFailed, "model.path: "+err.Error())
		fmt.Fprintf(s.err, "modelship preflight: %s: model.path: %v\n", file, err)
		if errors.Is(err, context.Canceled) {
			return exitFailed
		}
		return exitUsage
	}
	rep := preflightReport{Config: file, Engine: cfg.Serving.Engine, ServedName: cfg.Model.ServedName, Checkpoint: info, Passed: true}

	devices, code := chooseDevices(*gpus, *gpuMem, io.Discard)
	switch {
	case devices != nil:
		rep.GPUs = devices
		rep.Fit, err = fit.Compute(info, devices, fit.FromSettings(cfg.Serving.Settings))
		if err != nil {
			fmt.Fprintf(s.err, "modelship preflight: %s: serving: %v\n", file, err)
			return exitUsage
		}
		rep.Passed = rep.Fit.Fits
	case code == exitNoGPU:
		rep.FitSkipped = "no NVIDIA GPU visible (NVML not available); describe one with --gpu-memory to check the fit"
	default:
		// Bad --gpus/--gpu-memory: say why, as fit would.
		chooseDevices(*gpus, *gpuMem, s.err)
		return code
	}

	if *asJSON {
		enc := json.NewEncoder(s.out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(s.err, "modelship preflight: %v\n", err)
			return exitFailed
		}
	} else {
		printPreflight(s.out, &rep)
	}
	ga.ModelDigest(info.Digest)
	ev.Event.ModelDigest = info.Digest
	ev.Finish(gateStatus(rep.Passed), preflightMessage(&rep))
	ga.SetOutput(gha.OutPreflightFit, map[bool]string{true: "passed", false: "failed"}[rep.Passed])
	if !rep.Passed {
		ga.Error(gha.Annotation{File: file, Title: "preflight failed", Message: "the model does not fit these GPUs"})
		return exitFailed
	}
	return exitOK
}

func printPreflight(w io.Writer, r *preflightReport) {
	info := r.Checkpoint
	fmt.Fprintf(w, "modelship preflight — %s\n\n", r.Config)
	fmt.Fprintf(w, "Model       %s, served as %q by %s\n", info.Path, r.ServedName, r.Engine)
	fmt.Fprintf(w, "Checkpoint  %s, %s, %s parameters, %s, %s of weights, context %s tokens\n",
		info.Format, info.Architecture, checkpoint.FormatParameters(info.Parameters), dtypeSummary(info),
		progress.FormatBytes(info.WeightBytes), groupDigits(int64(info.MaxContext)))
	cache := "no cache"
	if c := info.Cache; c != nil && c.Dir != "" {
		cache = fmt.Sprintf("%d from the digest cache, %d hashed", c.Hits, c.Hashed)
	}
	fmt.Fprintf(w, "Digest      %s (%d files, %s; %s)\n", info.Digest, len(info.Files), progress.FormatBytes(totalSize(info.Files)), cache)
	if r.Fit == nil {
		fmt.Fprintf(w, "Fit         skipped: %s\n", r.FitSkipped)
		fmt.Fprintf(w, "\nPreflight: PASSED (checkpoint valid; fit not checked)\n")
		return
	}
	fmt.Fprintln(w)
	printFit(w, info, r.Fit)
	if r.Passed {
		fmt.Fprintf(w, "\nPreflight: PASSED\n")
	} else {
		fmt.Fprintf(w, "\nPreflight: FAILED (the model does not fit these GPUs)\n")
	}
}

// preflightMessage is the event's one line: what was checked and the fit.
func preflightMessage(r *preflightReport) string {
	msg := fmt.Sprintf("%s, %s of weights", r.Checkpoint.Format, progress.FormatBytes(r.Checkpoint.WeightBytes))
	switch {
	case r.Fit == nil:
		return msg + "; fit not checked: " + r.FitSkipped
	case r.Passed:
		return msg + "; fits the GPUs"
	}
	return msg + "; does not fit the GPUs"
}
