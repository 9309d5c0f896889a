package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/modelship/modelship/gpu"
)

// detectGPUs asks the driver; tests replace it with a query of a mock.
var detectGPUs = gpu.Detect

func init() {
	register(command{name: "gpu", summary: "list this machine's NVIDIA GPUs (NVML): memory, compute capability, driver", run: runGPU})
}

const gpuUsage = "Usage: modelship gpu [--json]\n\nLists every NVIDIA GPU NVML reports: index, UUID, name, memory total/used/free and\ncompute capability, plus the driver and CUDA driver versions.\nExit 4 when NVML (the NVIDIA driver library) is not available.\n\nFlags:\n"

func runGPU(ctx context.Context, args []string, s stdio) int {
	fs := newFlagSet("gpu", s, gpuUsage)
	asJSON := fs.Bool("json", false, "print JSON: {driver_version, cuda_version, devices: [{index, uuid, name, memory_total, memory_free, memory_used, compute_capability}]} (bytes)")
	if code, ok := parseNoArgs(fs, args, newUsageErr(s, "gpu", "")); !ok {
		return code
	}
	rep, code := queryGPUs(s.err)
	if rep == nil {
		return code
	}
	if *asJSON {
		if rep.Devices == nil {
			rep.Devices = []gpu.Device{}
		}
		return printJSON(s, "gpu", rep)
	}
	printGPUs(s.out, rep)
	return exitOK
}

// queryGPUs asks NVML; on failure it prints the reason and returns the exit
// code (exitNoGPU without a driver).
func queryGPUs(stderr io.Writer) (*gpu.Report, int) {
	rep, err := detectGPUs()
	if errors.Is(err, gpu.ErrNoNVML) {
		fmt.Fprintln(stderr, gpu.ErrNoNVML.Error())
		return nil, exitNoGPU
	}
	if err != nil {
		fmt.Fprintf(stderr, "modelship: %v\n", err)
		return nil, exitFailed
	}
	return rep, exitOK
}

func printGPUs(w io.Writer, rep *gpu.Report) {
	cuda := rep.CUDAVersion
	if cuda == "" {
		cuda = "unknown"
	}
	fmt.Fprintf(w, "Driver %s, CUDA %s, %d GPU(s)\n", rep.DriverVersion, cuda, len(rep.Devices))
	if len(rep.Devices) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tUUID\tNAME\tTOTAL\tUSED\tFREE\tCC")
	for _, d := range rep.Devices {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Index, d.UUID, d.Name,
			fmtGiB(int64(d.MemoryTotal)), fmtGiB(int64(d.MemoryUsed)), fmtGiB(int64(d.MemoryFree)), d.ComputeCapability)
	}
	tw.Flush()
}

// fmtGiB formats bytes as GiB with two decimals.
func fmtGiB(b int64) string { return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30)) }
