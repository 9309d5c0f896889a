//go:build cgo

package gpu

import (
	"errors"
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Detect reports the GPUs of this machine through the driver's NVML.
func Detect() (*Report, error) { return Query(nvml.New()) }

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
