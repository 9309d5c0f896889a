package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"

	"github.com/modelship/modelship/checkpoint"
	"github.com/modelship/modelship/internal/fit"
	"github.com/modelship/modelship/serving"
)

// vllmMode reports whether this process was started as vLLM: argv[0]
// "vllm" (`vllm serve MODEL ...`, how a serving image starts the engine)
// or "python3 -m vllm.entrypoints.openai.api_server ...". Then modelship is
// the simulator behind vLLM's own command line; args are what follows the
// program (and "-m MODULE" for python).
func vllmMode(argv0 string, args []string) (rest []string, serveForm, ok bool) {
	switch filepath.Base(argv0) {
	case "vllm":
		return args, true, true
	case "python3", "python":
		if len(args) >= 2 && args[0] == "-m" && args[1] == "vllm.entrypoints.openai.api_server" {
			return args[2:], false, true
		}
	}
	return nil, false, false
}

// runVLLM is the simulator started with vLLM's command line. It refuses
// what vLLM refuses, as vLLM does: a flag vLLM does not have, a value of the
// wrong type or not among a flag's choices (exit 2, argparse's message), and
// at startup max-model-len above the model's context, a tensor-parallel size
// that does not divide the attention heads, or, on the GPUs described by
// --gpu-memory in MODELSHIP_SIM_ARGS, a KV cache that cannot hold one
// sequence of max-model-len (exit 1, vLLM's message). The simulator's own
// options (latency, faults) come from MODELSHIP_SIM_ARGS, since vLLM's
// command line has no room for them. Then it serves like `modelship sim`.
func runVLLM(ctx context.Context, args []string, serveForm bool, getenv func(string) string, s stdio) int {
	rules := serving.VLLM()
	prog := "vllm serve"
	if serveForm {
		if len(args) == 0 || args[0] != "serve" {
			fmt.Fprintf(s.err, "usage: vllm [-h] [-v] {chat,complete,serve,bench,collect-env,run-batch} ...\nvllm: error: this simulator runs only `vllm serve` (%s %s)\n", rules.Engine, rules.Version)
			return rules.ExitCodes.Usage
		}
		args = args[1:]
	} else {
		prog = "api_server.py"
	}
	inv, err := rules.Parse(args, serveForm)
	var ue *serving.UsageError
	if errors.As(err, &ue) {
		fmt.Fprintf(s.err, "usage: %s [model_tag] [options]\n%s\n", prog, ue.Msg)
		return ue.Code
	}
	if inv.Model == "" {
		fmt.Fprintf(s.err, "ERROR modelship sim (as vLLM %s): no model given: this simulator serves a local checkpoint, `vllm serve PATH`\n", rules.Version)
		return rules.ExitCodes.Startup
	}
	simArgs, gpuMem, err := vllmSimArgs(getenv)
	if err != nil {
		fmt.Fprintf(s.err, "modelship sim: %s: %v\n", serving.EnvSimArgs, err)
		return exitUsage
	}
	settings := rules.FromInvocation(inv)
	info, err := checkpoint.Inspect(ctx, inv.Model, checkpoint.Options{})
	if err != nil {
		fmt.Fprintf(s.err, "ERROR modelship sim: loading the checkpoint failed: %v\n", err)
		return rules.ExitCodes.Startup
	}
	refusals := rules.CheckModel(settings, modelFacts(info))
	if len(refusals) == 0 && gpuMem != "" {
		if r := kvCacheRefusal(info, settings, gpuMem, s.err); r != nil {
			refusals = append(refusals, r)
		}
	}
	for _, r := range refusals {
		fmt.Fprintf(s.err, "ERROR modelship sim (as vLLM %s): %s\n", rules.Version, r.Msg)
	}
	if len(refusals) > 0 {
		return rules.ExitCodes.Startup
	}
	fmt.Fprintf(s.err, "INFO modelship sim: vLLM %s command line accepted: %s\n", rules.Version, serving.JoinWords(append([]string{prog}, args...)))
	return runSim(ctx, append(vllmSimFlags(inv, settings, getenv), simArgs...), s)
}

// vllmSimArgs are the simulator's own flags, from MODELSHIP_SIM_ARGS, less
// --gpu-memory: it describes the GPUs the simulated engine has, for the
// KV-cache rule, and is not a flag of `modelship sim` itself.
func vllmSimArgs(getenv func(string) string) (simArgs []string, gpuMem string, err error) {
	simArgs, err = serving.SplitWords(getenv(serving.EnvSimArgs))
	if err != nil {
		return nil, "", err
	}
	for i := 0; i < len(simArgs); i++ {
		if simArgs[i] == "--gpu-memory" && i+1 < len(simArgs) {
			gpuMem = simArgs[i+1]
			simArgs = append(simArgs[:i:i], simArgs[i+2:]...)
			break
		}
	}
	return simArgs, gpuMem, nil
}

// vllmSimFlags are the `modelship sim` flags for what the simulator itself
// models of the flags vLLM took.
func vllmSimFlags(inv *serving.Invocation, settings serving.Settings, getenv func(string) string) []string {
	simFlags := []string{inv.Model}
	if v, ok := inv.Values["--served-model-name"]; ok && len(v) > 0 {
		simFlags = append(simFlags, "--served-model-name", v[0])
		for _, alias := range v[1:] {
			simFlags = append(simFlags, "--served-model-alias", alias)
		}
	}
	for _, f := range []string{"--host", "--port", "--api-key"} {
		if v, ok := inv.Value(f); ok {
			simFlags = append(simFlags, f, v)
		}
	}
	if n := settings.MaxModelLen; n > 0 {
		simFlags = append(simFlags, "--max-model-len", strconv.Itoa(n))
	}
	if n := settings.MaxNumSeqs; n > 0 {
		simFlags = append(simFlags, "--max-num-seqs", strconv.Itoa(n))
	}
	if _, ok := inv.Bools["--disable-log-requests"]; ok {
		simFlags = append(simFlags, "--disable-log-requests")
	}
	if _, ok := inv.Value("--api-key"); !ok && getenv("VLLM_API_KEY") != "" {
		simFlags = append(simFlags, "--api-key", getenv("VLLM_API_KEY"))
	}
	return simFlags
}

// modelFacts is what vLLM's startup rules read of a checkpoint.
func modelFacts(info *checkpoint.Info) serving.ModelFacts {
	return serving.ModelFacts{ContextLen: info.MaxContext, AttentionHeads: info.Shape.NumAttentionHeads}
}

// kvCacheRefusal applies vLLM's KV-cache rule on the described GPUs: the
// memory left after weights and activations at gpu-memory-utilization must
// hold one sequence of max-model-len.
func kvCacheRefusal(info *checkpoint.Info, s serving.Settings, gpuMem string, stderr io.Writer) *serving.StartupError {
	devices, code := chooseDevices("", gpuMem, stderr)
	if code != exitOK || len(devices) == 0 {
		return nil
	}
	est, err := fit.Compute(info, devices[:min(len(devices), s.GPUs())], fit.Options{MaxModelLen: s.MaxModelLen,
		MaxNumSeqs: s.MaxNumSeqs, GPUMemoryUtilization: s.GPUMemoryUtilization, TensorParallelSize: s.TensorParallelSize})
	if err != nil || est.KVAvailable >= est.KVMinimum {
		return nil
	}
	gib := func(b int64) string { return strconv.FormatFloat(math.Round(float64(b)/(1<<30)*100)/100, 'f', -1, 64) }
	return serving.VLLM().Startup(serving.RuleKVCache, est.MaxModelLen, gib(est.KVMinimum), gib(max(est.KVAvailable, 0)), "")
}
