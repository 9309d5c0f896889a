package docker

import (
	"reflect"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
)

// DeviceRequests is what `docker run --gpus device=UUID1,UUID2` sends.
func TestDeviceRequests(t *testing.T) {
	got := DeviceRequests([]string{"GPU-a", "GPU-b"})
	want := []container.DeviceRequest{{Driver: "nvidia", DeviceIDs: []string{"GPU-a", "GPU-b"}, Capabilities: [][]string{{"gpu"}}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v", got)
	}
}

func TestNewHosts(t *testing.T) {
	for _, c := range []struct{ host, err, probe string }{
		{"unix:///run/docker.sock", "", "127.0.0.1"},
		{"tcp://gpu-1.example.com:2376", "plaintext TCP refused", ""},
		{"ssh://deploy@gpu-1.example.com:2222", "", "gpu-1.example.com"},
		{"ssh://deploy:secret@gpu-1", "a password in the URL is not supported", ""},
		{"ftp://x", "scheme ftp is not supported", ""},
		{"gpu-1:2376", "is not supported (unix, tcp, ssh)", ""},
		{"/run/docker.sock", "expected unix://PATH", ""},
	} {
		tg, err := New(Options{Host: c.host})
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v, want %q", c.host, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.host, err)
			continue
		}
		if tg.probeHost != c.probe {
			t.Errorf("%s: releases probed at %s, want %s", c.host, tg.probeHost, c.probe)
		}
		if strings.Contains(tg.Describe(), "secret") {
			t.Errorf("%s: description leaks a secret", c.host)
		}
		tg.Close()
	}
}
