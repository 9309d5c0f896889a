package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/modelship/modelship/gpu"
)

var update = flag.Bool("update", false, "rewrite the golden files (testdata/gpu_*.golden)")

// mockDGX returns an 8 × H100 80GB mock with fixed UUIDs and GPU i holding
// used[i] GiB (the mock reports zero free memory otherwise).
func mockDGX(used ...float64) *server.Server {
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
	return s
}

// withNVML makes the commands use lib for the rest of the test.
func withNVML(t *testing.T, lib nvml.Interface) {
	t.Helper()
	old := detectGPUs
	detectGPUs = func() (*gpu.Report, error) { return gpu.Query(lib) }
	t.Cleanup(func() { detectGPUs = old })
}

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, stdio{in: strings.NewReader(""), out: &out, err: &errb})
	return code, out.String(), errb.String()
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("output differs from %s:\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func TestGPUTable(t *testing.T) {
	withNVML(t, mockDGX(1, 2, 3, 4, 40, 0.5, 0.5, 79))
	code, out, errOut := runCmd(t, "gpu")
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	golden(t, "gpu_dgxh100.golden", out)
}

func TestGPUJSON(t *testing.T) {
	withNVML(t, mockDGX())
	code, out, errOut := runCmd(t, "gpu", "--json")
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	var rep struct {
		DriverVersion string `json:"driver_version"`
		CUDAVersion   string `json:"cuda_version"`
		Devices       []map[string]any
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if rep.DriverVersion != "550.54.15" || rep.CUDAVersion != "12.4" || len(rep.Devices) != 8 {
		t.Fatalf("got driver %q cuda %q %d devices", rep.DriverVersion, rep.CUDAVersion, len(rep.Devices))
	}
	d := rep.Devices[7]
	want := map[string]any{"index": 7.0, "uuid": "GPU-00000000-0000-0000-0000-000000000007", "name": "NVIDIA H100 80GB HBM3",
		"memory_total": 85899345920.0, "memory_used": 536870912.0, "memory_free": 85362475008.0, "compute_capability": "9.0"}
	for k, v := range want {
		if d[k] != v {
			t.Errorf("devices[7].%s = %v, want %v", k, d[k], v)
		}
	}
}

// On this machine there is no NVIDIA driver: the real library must give
// exit 4 and the plain message. Where a driver exists, the command works.
func TestGPUWithoutDriver(t *testing.T) {
	code, out, errOut := runCmd(t, "gpu")
	if _, err := gpu.Query(nvml.New()); err == nil {
		if code != exitOK {
			t.Fatalf("driver present but exit %d: %s", code, errOut)
		}
		return
	}
	if code != exitNoGPU || out != "" {
		t.Errorf("exit %d, stdout %q; want 4 and nothing", code, out)
	}
	if strings.TrimSpace(errOut) != gpu.ErrNoNVML.Error() {
		t.Errorf("stderr %q, want %q", errOut, gpu.ErrNoNVML.Error())
	}
}

func TestGPUUsage(t *testing.T) {
	if code, out, _ := runCmd(t, "gpu", "--help"); code != exitOK {
		t.Errorf("--help exit %d", code)
	} else if out != "" {
		t.Errorf("--help wrote to stdout: %q", out)
	}
	_, _, help := runCmd(t, "gpu", "--help")
	if !strings.Contains(help, "-json") || !strings.Contains(help, "Exit 4") {
		t.Errorf("help does not explain --json and exit 4: %s", help)
	}
	if code, _, _ := runCmd(t, "gpu", "extra"); code != exitUsage {
		t.Errorf("extra argument: exit %d, want 2", code)
	}
	if code, _, _ := runCmd(t, "gpu", "--bogus"); code != exitUsage {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
}

func TestGPUNVMLError(t *testing.T) {
	s := mockDGX()
	s.Devices[2].(*server.Device).GetUUIDFunc = func() (string, nvml.Return) { return "", nvml.ERROR_GPU_IS_LOST }
	withNVML(t, s)
	code, _, errOut := runCmd(t, "gpu")
	if code != exitFailed || !strings.Contains(errOut, "device 2") || !strings.Contains(errOut, "nvmlDeviceGetUUID") {
		t.Errorf("lost GPU: exit %d stderr %q", code, errOut)
	}
}
