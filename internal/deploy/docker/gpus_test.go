//go:build cgo

package docker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/modelship/modelship/checkpoint"
	"github.com/modelship/modelship/gpu"
	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/docker"
	"github.com/modelship/modelship/internal/fit"
	"github.com/modelship/modelship/internal/testenv"
)

// mockGPUs is the 8 × H100 NVML mock with nothing running.
func mockGPUs(context.Context) ([]gpu.Device, error) {
	s := dgxh100.New()
	for i, d := range s.Devices {
		dev := d.(*server.Device)
		dev.UUID = fmt.Sprintf("GPU-00000000-0000-0000-0000-00000000000%d", i)
		dev.MemoryInfo.Used = 1 << 29
		dev.MemoryInfo.Free = dev.MemoryInfo.Total - dev.MemoryInfo.Used
	}
	rep, err := gpu.Query(s)
	if err != nil {
		return nil, err
	}
	return rep.Devices, nil
}

func llama(params, weights int64, layers, hidden, inter, heads int) *checkpoint.Info {
	return &checkpoint.Info{Path: "llama", Format: checkpoint.FormatSafetensors, Architecture: "LlamaForCausalLM",
		Parameters: params, WeightBytes: weights, Dtype: "BF16", TorchDtype: "bfloat16", MaxContext: 131072,
		Shape: checkpoint.Shape{NumLayers: layers, HiddenSize: hidden, IntermediateSize: inter, NumAttentionHeads: heads, NumKVHeads: 8, HeadDim: 128, VocabSize: 128256}}
}

// TestGPUPlacement: with the NVML mock, a model that does not fit fails
// before anything is stopped, and one whose two copies do not fit is
// recreated; this host has no NVIDIA runtime, so starting it fails and the
// stopped previous release is started again and serves.
func TestGPUPlacement(t *testing.T) {
	good, _ := images(t)
	e := newEnv(t)
	e.deploy(t, good.Tag)
	e.d.GPUs = mockGPUs
	full := fit.Options{MaxModelLen: 8192, TensorParallelSize: 1}

	req := e.request("modelship-test/good:2")
	req.Engine, req.Fit = "vllm", full
	req.Model = llama(70_553_706_496, 141_107_412_992, 80, 8192, 28672, 64) // Llama-3.1-70B on one H100
	_, err := e.d.Deploy(context.Background(), req)
	if !errors.Is(err, deploy.ErrNoFit) || !strings.Contains(err.Error(), "short by") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("70B on one H100: %v", err)
	}
	t.Logf("%v", err)
	e.serving(t, good.Tag)

	req.Model = llama(8_030_261_248, 16_060_522_496, 32, 4096, 14336, 32) // Llama-3.1-8B, 256 × 8k sequences
	res, err := e.d.Deploy(context.Background(), req)
	if err == nil {
		t.Fatal("deploy with GPUs succeeded on a host without the NVIDIA runtime")
	}
	t.Logf("%v", err)
	if res == nil || res.Plan.Strategy != deploy.Recreate || len(res.Plan.GPUs) != 1 {
		t.Fatalf("plan %+v, want recreate on one GPU", res)
	}
	for _, w := range []string{"cannot give GPUs to containers", "started again", "traffic switched back", "verified again"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not say %q", w)
		}
	}
	if !strings.Contains(e.log.String(), "two copies do not fit") || !strings.Contains(e.log.String(), "expected downtime") {
		t.Errorf("log does not explain the recreate:\n%s", e.log)
	}
	e.serving(t, good.Tag)
}

// TestGPUsProbedOnTheDockerHost: GPUs are planned from the Docker host, by
// a probe container of the release's image with every GPU attached, never
// from the deployer's machine. This host's engine cannot give GPUs to
// containers: the deploy fails before anything changes, saying which host
// and why, and leaves no probe container behind.
func TestGPUsProbedOnTheDockerHost(t *testing.T) {
	good, _ := images(t)
	e := newEnv(t)
	e.deploy(t, good.Tag)
	req := e.request("modelship-test/good:2")
	req.Engine, req.Fit = "vllm", fit.Options{MaxModelLen: 8192, TensorParallelSize: 1}
	req.Model = llama(8_030_261_248, 16_060_522_496, 32, 4096, 14336, 32)
	_, err := e.d.Deploy(context.Background(), req)
	if err == nil || !strings.Contains(err.Error(), "cannot give GPUs to containers") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("vllm deploy on a host without the NVIDIA runtime: %v", err)
	}
	t.Logf("%v", err)
	e.serving(t, good.Tag)
	cli, _ := testenv.Docker(t)
	left, err := cli.ContainerList(context.Background(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", docker.LabelRole+"=gpu-probe"))})
	if err != nil || len(left) > 0 {
		t.Errorf("GPU probe containers left behind: %d (%v)", len(left), err)
	}
}
