package docker

import (
	"reflect"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
)

// A compose service's settings go under the release's own: the release's
// labels and environment win, GPUs the deploy chose replace the
// service's GPU reservation, other devices stay.
func TestAttachRelease(t *testing.T) {
	a := &Attach{
		Labels: map[string]string{"com.docker.compose.service": "vllm-server", "modelship.env": "from-compose"},
		Env:    []string{"HF_HOME=/cache", "MODELSHIP_ENGINE=vllm"},
		Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: "p_hf-cache", Target: "/cache"}},
		DeviceRequests: []container.DeviceRequest{
			{Driver: "nvidia", Count: 1, Capabilities: [][]string{{"gpu"}}},
			{Driver: "cdi", DeviceIDs: []string{"vendor.com/fpga=0"}},
		},
	}
	cfg := &container.Config{Labels: map[string]string{"modelship.env": "staging"}, Env: []string{"MODELSHIP_ENGINE=sim"}}
	hc := &container.HostConfig{Resources: container.Resources{DeviceRequests: DeviceRequests([]string{"GPU-1"})}}
	a.release(cfg, hc)
	if want := map[string]string{"com.docker.compose.service": "vllm-server", "modelship.env": "staging"}; !reflect.DeepEqual(cfg.Labels, want) {
		t.Errorf("labels = %v, want %v", cfg.Labels, want)
	}
	if want := []string{"HF_HOME=/cache", "MODELSHIP_ENGINE=sim"}; !reflect.DeepEqual(cfg.Env, want) {
		t.Errorf("env = %q, want %q", cfg.Env, want)
	}
	if !reflect.DeepEqual(hc.Mounts, a.Mounts) {
		t.Errorf("mounts = %+v", hc.Mounts)
	}
	want := []container.DeviceRequest{a.DeviceRequests[1], DeviceRequests([]string{"GPU-1"})[0]}
	if !reflect.DeepEqual(hc.DeviceRequests, want) {
		t.Errorf("device requests = %+v, want %+v", hc.DeviceRequests, want)
	}

	// Without GPUs of the deploy's choosing, the service's reservation stays.
	hc = &container.HostConfig{}
	a.release(&container.Config{}, hc)
	if !reflect.DeepEqual(hc.DeviceRequests, a.DeviceRequests) {
		t.Errorf("device requests = %+v, want the service's %+v", hc.DeviceRequests, a.DeviceRequests)
	}

	// A plain Docker target (nil Attach) changes nothing.
	cfg, hc = &container.Config{Env: []string{"A=1"}}, &container.HostConfig{}
	(*Attach)(nil).release(cfg, hc)
	if !reflect.DeepEqual(cfg, &container.Config{Env: []string{"A=1"}}) || !reflect.DeepEqual(hc, &container.HostConfig{}) {
		t.Errorf("nil Attach changed %+v %+v", cfg, hc)
	}
}
