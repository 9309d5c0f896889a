package gpu

import (
	"errors"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

func TestQueryDGXH100(t *testing.T) {
	s := dgxh100.New()
	d3 := s.Devices[3].(*server.Device)
	d3.MemoryInfo.Used = 10 << 30
	d3.MemoryInfo.Free = d3.MemoryInfo.Total - d3.MemoryInfo.Used
	rep, err := Query(s)
	if err != nil {
		t.Fatal(err)
	}
	if rep.DriverVersion != "550.54.15" || rep.CUDAVersion != "12.4" {
		t.Errorf("versions = %q, %q; want 550.54.15, 12.4", rep.DriverVersion, rep.CUDAVersion)
	}
	if len(rep.Devices) != 8 {
		t.Fatalf("got %d devices, want 8", len(rep.Devices))
	}
	seen := map[string]bool{}
	for i, d := range rep.Devices {
		if d.Index != i || d.Name != "NVIDIA H100 80GB HBM3" || d.ComputeCapability != "9.0" || d.MemoryTotal != 80<<30 {
			t.Errorf("device %d = %+v", i, d)
		}
		if !strings.HasPrefix(d.UUID, "GPU-") || seen[d.UUID] {
			t.Errorf("device %d: bad or duplicate UUID %q", i, d.UUID)
		}
		seen[d.UUID] = true
		if d.UUID != s.Devices[i].(*server.Device).UUID {
			t.Errorf("device %d: UUID %q, mock has %q", i, d.UUID, s.Devices[i].(*server.Device).UUID)
		}
	}
	if got := rep.Devices[3]; got.MemoryUsed != 10<<30 || got.MemoryFree != 70<<30 {
		t.Errorf("device 3 memory used/free = %d/%d, want 10 GiB/70 GiB", got.MemoryUsed, got.MemoryFree)
	}
}

// On this test machine there is normally no NVIDIA driver: the real library
// must report ErrNoNVML, not panic. Where a driver exists, it must work.
func TestQueryRealLibrary(t *testing.T) {
	rep, err := Query(nvml.New())
	if errors.Is(err, ErrNoNVML) {
		if !strings.Contains(err.Error(), "libnvidia-ml.so.1 not found") {
			t.Errorf("message %q does not name the library", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("Query(nvml.New()) = %v", err)
	}
	t.Logf("driver %s, %d devices", rep.DriverVersion, len(rep.Devices))
}

func TestQueryErrors(t *testing.T) {
	notFound := &mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }}
	if _, err := Query(notFound); !errors.Is(err, ErrNoNVML) {
		t.Errorf("library not found: err = %v, want ErrNoNVML", err)
	}

	noPerm := &mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_NO_PERMISSION }}
	if _, err := Query(noPerm); err == nil || errors.Is(err, ErrNoNVML) || !strings.Contains(err.Error(), "nvmlInit") {
		t.Errorf("no permission: err = %v, want an nvmlInit error", err)
	}

	// A mock with unset methods panics when called; Query must return an error.
	bare := &mock.Interface{InitFunc: func() nvml.Return { return nvml.SUCCESS }}
	if _, err := Query(bare); err == nil {
		t.Error("mock with nil methods: want an error, got nil")
	}

	s := dgxh100.New()
	s.Devices[5].(*server.Device).GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
		return nvml.Memory{}, nvml.ERROR_GPU_IS_LOST
	}
	_, err := Query(s)
	if err == nil || !strings.Contains(err.Error(), "device 5") || !strings.Contains(err.Error(), "nvmlDeviceGetMemoryInfo") {
		t.Errorf("lost GPU: err = %v, want it to name device 5 and nvmlDeviceGetMemoryInfo", err)
	}

	if _, err := Query(nil); err == nil {
		t.Error("Query(nil) = nil error")
	}
}

func TestCUDAVersionString(t *testing.T) {
	for v, want := range map[int]string{12040: "12.4", 11080: "11.8", 12000: "12.0", 13010: "13.1"} {
		if got := CUDAVersionString(v); got != want {
			t.Errorf("CUDAVersionString(%d) = %q, want %q", v, got, want)
		}
	}
}
