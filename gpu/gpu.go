// Package gpu reports the NVIDIA GPUs of this machine through NVML, the
// management library that ships with the NVIDIA driver (libnvidia-ml.so.1).
//
// Detect queries the machine's driver. Query takes an nvml.Interface so that
// tests pass a mock (github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100 and
// friends). NVML needs cgo: a binary built with CGO_ENABLED=0 (the static
// binary in serving images) has no Query, and its Detect reports ErrNoNVML. Where the driver library is missing, Query returns an error that
// wraps ErrNoNVML; it never panics, even when a mock leaves a method unset.
package gpu

import "errors"

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
