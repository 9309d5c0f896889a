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
	for _, c := range []struct {
		host, err string
		remote    bool
	}{
		{"unix:///run/docker.sock", "", false},
		{"tcp://gpu-1.example.com:2376", "plaintext TCP refused", false},
		{"ssh://deploy@gpu-1.example.com:2222", "", true},
		{"ssh://deploy:secret@gpu-1", "a password in the URL is not supported", false},
		{"ftp://x", "scheme ftp is not supported", false},
		{"gpu-1:2376", "is not supported (unix, tcp, ssh)", false},
		{"/run/docker.sock", "expected unix://PATH", false},
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
		if tg.remote != c.remote {
			t.Errorf("%s: remote %v, want %v (releases probed through the gateway)", c.host, tg.remote, c.remote)
		}
		if strings.Contains(tg.Describe(), "secret") {
			t.Errorf("%s: description leaks a secret", c.host)
		}
		tg.Close()
	}
}
