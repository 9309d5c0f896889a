package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/modelship/modelship/checkpoint"
	"github.com/modelship/modelship/gpu"
	"github.com/modelship/modelship/internal/atomicfile"
	"github.com/modelship/modelship/internal/config"
	"github.com/modelship/modelship/internal/fit"
	"github.com/modelship/modelship/internal/gha"
	"github.com/modelship/modelship/internal/progress"
	"github.com/modelship/modelship/notify"
	"github.com/modelship/modelship/serving/stage"
)

func init() {
	register(command{name: "preflight", summary: "inspect and digest the configured checkpoint and check it fits the GPUs, before any GPU minute is spent", run: stageCommand("preflight", fmt.Sprintf(preflightUsage, config.DefaultFile), "", runPreflight)})
}

// preflightReport is preflight.json (--report-dir).
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

// preflightUsage is modelship preflight --help; %s is the default file.
const preflightUsage = `Usage: modelship preflight [FILE] [flags]

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

--json prints the stage result (docs/STAGE-RESULT.md) as one line on
stdout and the summary on stderr; --report-dir writes preflight.json (the
checkpoint, the GPUs and the fit).

Exit codes: 0 passed, 1 does not fit, 2 bad config or checkpoint.

Flags:
`

// preflightFlags are modelship preflight's flags.
type preflightFlags struct {
	gpus, gpuMem, reportDir string
	noCache                 bool
}

func (f *preflightFlags) flags(fs *flag.FlagSet) {
	fs.StringVar(&f.gpus, "gpus", "", "comma-separated GPU UUIDs to fit on (default: every GPU NVML reports)")
	fs.StringVar(&f.gpuMem, "gpu-memory", "", "fit on hypothetical GPUs instead of asking NVML, e.g. 80GiB or 80GiB,80GiB")
	fs.BoolVar(&f.noCache, "no-cache", false, "hash every file even if the digest cache knows it")
	fs.StringVar(&f.reportDir, "report-dir", "", "write preflight.json (checkpoint, GPUs, fit) into `DIR` (created if missing)")
}

func runPreflight(ctx context.Context, f *preflightFlags, pos []string, s stdio, sr *stageRun) int {
	file := config.DefaultFile
	switch len(pos) {
	case 0:
	case 1:
		file = pos[0]
	default:
		return sr.bad("want at most one config FILE, got %d arguments", len(pos))
	}
	cfg, ok := loadConfig(s, file)
	if !ok {
		return exitUsage
	}
	sr.ga.MaskSecrets(cfg)
	sr.events(cfg, notify.StagePreflight)
	sr.start()
	rep, code := preflightCheck(ctx, f, file, cfg, s, sr)
	if rep == nil {
		return code
	}
	return preflightVerdict(rep, f, s, sr)
}

// preflightVerdict tells what preflight found: the summary, preflight.json
// with --report-dir, the model digest and the verdict (its event, figures
// and Actions output, an error annotation when the model does not fit).
func preflightVerdict(rep *preflightReport, f *preflightFlags, s stdio, sr *stageRun) int {
	printPreflight(s.out, rep)
	if f.reportDir != "" {
		path, err := writePreflightReport(f.reportDir, rep)
		if err != nil {
			fmt.Fprintf(s.err, "modelship preflight: writing the report: %v\n", err)
			return exitFailed
		}
		sr.report(path)
	}
	sr.ga.ModelDigest(rep.Checkpoint.Digest)
	sr.ev.Event.ModelDigest = rep.Checkpoint.Digest
	preflightFigures(sr, rep)
	sr.decide(stage.Of(rep.Passed), preflightMessage(rep))
	sr.ga.SetOutput(gha.OutPreflightFit, string(sr.res.Verdict))
	if !rep.Passed {
		sr.ga.Error(gha.Annotation{File: rep.Config, Title: "preflight failed", Message: "the model does not fit these GPUs"})
	}
	return sr.res.ExitCode
}

// preflightCheck inspects the checkpoint and computes the fit. A nil report
// comes with the exit code and the error printed (a checkpoint that cannot
// be read is the stage's failed event).
func preflightCheck(ctx context.Context, f *preflightFlags, file string, cfg *config.Config, s stdio, sr *stageRun) (*preflightReport, int) {
	info, _, _, err := inspectCheckpoint(ctx, cfg.ModelPath(), true, !f.noCache, "", 0, terminalErr(s.err))
	if err != nil {
		fmt.Fprintf(s.err, "modelship preflight: %s: model.path: %v\n", file, err)
		v := stage.Invalid
		if errors.Is(err, context.Canceled) {
			v = stage.Failed
		}
		sr.decide(v, "model.path: "+err.Error())
		return nil, v.ExitCode()
	}
	rep := &preflightReport{Config: file, Engine: cfg.Serving.Engine, ServedName: cfg.Model.ServedName, Checkpoint: info, Passed: true}
	devices, code := chooseDevices(f.gpus, f.gpuMem, io.Discard)
	switch {
	case devices != nil:
		rep.GPUs = devices
		rep.Fit, err = fit.Compute(info, devices, fit.FromSettings(cfg.Serving.Settings))
		if err != nil {
			fmt.Fprintf(s.err, "modelship preflight: %s: serving: %v\n", file, err)
			return nil, exitUsage
		}
		rep.Passed = rep.Fit.Fits
	case code == exitNoGPU:
		rep.FitSkipped = "no NVIDIA GPU visible (NVML not available); describe one with --gpu-memory to check the fit"
	default:
		// Bad --gpus/--gpu-memory: say why, as fit would.
		chooseDevices(f.gpus, f.gpuMem, s.err)
		return nil, code
	}
	return rep, exitOK
}

// writePreflightReport writes preflight.json into dir and returns its path.
func writePreflightReport(dir string, rep *preflightReport) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "preflight.json")
	return path, atomicfile.Write(path, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	})
}

// preflightFigures are the numbers preflight decided on.
func preflightFigures(sr *stageRun, rep *preflightReport) {
	info := rep.Checkpoint
	sr.figure("parameters", float64(info.Parameters))
	sr.figure("weight_bytes", float64(info.WeightBytes))
	sr.figure("files", float64(len(info.Files)))
	sr.figure("gpus", float64(len(rep.GPUs)))
	if e := rep.Fit; e != nil {
		sr.figure("required_bytes", float64(e.Required))
		sr.figure("budget_bytes", float64(e.Budget))
	}
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
