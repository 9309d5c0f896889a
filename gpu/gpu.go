// Package gpu reports the NVIDIA GPUs of this machine through NVML, the
// management library that ships with the NVIDIA driver (libnvidia-ml.so.1).
//
// Query takes an nvml.Interface so that callers pass nvml.New() in production
// and a mock (github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100 and friends) in
// tests. Where the driver library is missing, Query returns an error that
// wraps ErrNoNVML; it never panics, even when a mock leaves a method unset.
package gpu

import (
	"errors"
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// ErrNoNVML is wrapped by Query's error when the NVML library cannot be
// loaded, that is, when the machine has no NVIDIA driver.
var ErrNoNVML = errors.New("NVML not available: libnvidia-ml.so.1 not found — no NVIDIA driver on this machine")

// Device is one GPU as NVML reports it. Memory figures are bytes.
type Device struct {
	Index             int    `json:"index"`
	UUID              string `json:"uuid"`
	Name              string `json:"name"`
	MemoryTotal       uint64 `json:"memory_total"`
	MemoryFree        uint64 `json:"memory_free"`
	MemoryUsed        uint64 `json:"memory_used"`
	ComputeCapability string `json:"compute_capability"` // "major.minor", e.g. "9.0"
}

// Report is every GPU of the machine plus the driver versions.
type Report struct {
	// DriverVersion is the kernel driver version, e.g. "550.54.15".
	DriverVersion string `json:"driver_version"`
	// CUDAVersion is the highest CUDA version the driver supports, e.g.
	// "12.4"; empty when NVML cannot tell.
	CUDAVersion string   `json:"cuda_version"`
	Devices     []Device `json:"devices"`
}

// Query initialises lib, reads every device and shuts lib down again. An
// error names the NVML call (and the device index) that failed. A panic in
// lib (a mock with an unset method) is turned into an error.
func Query(lib nvml.Interface) (rep *Report, err error) {
	if lib == nil {
		return nil, errors.New("gpu: no NVML library given")
	}
	defer func() {
		if r := recover(); r != nil {
			rep, err = nil, fmt.Errorf("gpu: NVML call failed: %v", r)
		}
	}()
	if ret := lib.Init(); ret != nvml.SUCCESS {
		if ret == nvml.ERROR_LIBRARY_NOT_FOUND {
			return nil, fmt.Errorf("%w", ErrNoNVML)
		}
		return nil, fmt.Errorf("gpu: nvmlInit: %v", ret)
	}
	defer lib.Shutdown()

	rep = &Report{}
	v, ret := lib.SystemGetDriverVersion()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("gpu: nvmlSystemGetDriverVersion: %v", ret)
	}
	rep.DriverVersion = v
	if cv, ret := lib.SystemGetCudaDriverVersion(); ret == nvml.SUCCESS && cv > 0 {
		rep.CUDAVersion = CUDAVersionString(cv)
	}
	n, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("gpu: nvmlDeviceGetCount: %v", ret)
	}
	rep.Devices = make([]Device, 0, n)
	for i := 0; i < n; i++ {
		d, err := queryDevice(lib, i)
		if err != nil {
			return nil, err
		}
		rep.Devices = append(rep.Devices, d)
	}
	return rep, nil
}

func queryDevice(lib nvml.Interface, i int) (Device, error) {
	fail := func(call string, ret nvml.Return) (Device, error) {
		return Device{}, fmt.Errorf("gpu: device %d: %s: %v", i, call, ret)
	}
	h, ret := lib.DeviceGetHandleByIndex(i)
	if ret != nvml.SUCCESS {
		return fail("nvmlDeviceGetHandleByIndex", ret)
	}
	if h == nil {
		return Device{}, fmt.Errorf("gpu: device %d: nvmlDeviceGetHandleByIndex returned no handle", i)
	}
	d := Device{Index: i}
	if idx, ret := h.GetIndex(); ret == nvml.SUCCESS {
		d.Index = idx
	}
	if d.UUID, ret = h.GetUUID(); ret != nvml.SUCCESS {
		return fail("nvmlDeviceGetUUID", ret)
	}
	if d.Name, ret = h.GetName(); ret != nvml.SUCCESS {
		return fail("nvmlDeviceGetName", ret)
	}
	mem, ret := h.GetMemoryInfo()
	if ret != nvml.SUCCESS {
		return fail("nvmlDeviceGetMemoryInfo", ret)
	}
	d.MemoryTotal, d.MemoryFree, d.MemoryUsed = mem.Total, mem.Free, mem.Used
	major, minor, ret := h.GetCudaComputeCapability()
	if ret != nvml.SUCCESS {
		return fail("nvmlDeviceGetCudaComputeCapability", ret)
	}
	d.ComputeCapability = fmt.Sprintf("%d.%d", major, minor)
	return d, nil
}

// CUDAVersionString turns NVML's integer CUDA driver version (1000*major +
// 10*minor, e.g. 12040) into "12.4".
func CUDAVersionString(v int) string {
	return fmt.Sprintf("%d.%d", v/1000, (v%1000)/10)
}
