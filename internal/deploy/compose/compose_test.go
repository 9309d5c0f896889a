package compose

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"github.com/modelship/modelship/internal/deploy/docker"
	"github.com/modelship/modelship/internal/testenv"
)

func staging(t *testing.T) string {
	return filepath.Join(testenv.RepoRoot(), "testdata/compose/docker-compose.staging.yml")
}

// What a release keeps of the article's vllm-server service.
func TestLoadKeepsTheService(t *testing.T) {
	file := staging(t)
	dir := filepath.Dir(file)
	s, err := Load(context.Background(), Options{Files: []string{file}, Service: "vllm-server", Project: "llm-staging", Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Project != "llm-staging" || s.Name != "vllm-server" || s.WorkingDir != dir || s.Image != "vllm/vllm-openai:v0.6.3" {
		t.Errorf("service = %+v", s)
	}
	a := s.Attach
	if want := []docker.NetworkAttach{{Name: "llm-staging_llm-net"}}; !reflect.DeepEqual(a.Networks, want) {
		t.Errorf("release networks = %+v, want %+v", a.Networks, want)
	}
	if want := []docker.NetworkAttach{{Name: "llm-staging_llm-net", Aliases: []string{"vllm-server"}}}; !reflect.DeepEqual(a.GatewayNetworks, want) {
		t.Errorf("gateway networks = %+v, want %+v (the gateway answers as the service)", a.GatewayNetworks, want)
	}
	wantMounts := []mount.Mount{
		{Type: mount.TypeVolume, Source: "llm-staging_hf-cache", Target: "/root/.cache/huggingface", VolumeOptions: &mount.VolumeOptions{}},
		{Type: mount.TypeBind, Source: filepath.Join(dir, "config"), Target: "/etc/vllm", ReadOnly: true, BindOptions: &mount.BindOptions{CreateMountpoint: true}},
	}
	if !reflect.DeepEqual(a.Mounts, wantMounts) {
		t.Errorf("mounts =\n%+v\nwant\n%+v", a.Mounts, wantMounts)
	}
	if want := []string{"DEPLOY_STAGE=staging", "HF_HOME=/root/.cache/huggingface", "VLLM_LOGGING_LEVEL=INFO"}; !reflect.DeepEqual(a.Env, want) {
		t.Errorf("env = %q, want %q (the default of an unset variable)", a.Env, want)
	}
	if want := []container.DeviceRequest{{Driver: "nvidia", Count: 1, Capabilities: [][]string{{"gpu"}}}}; !reflect.DeepEqual(a.DeviceRequests, want) {
		t.Errorf("device requests = %+v, want %+v", a.DeviceRequests, want)
	}
	for k, v := range map[string]string{
		"com.example.team": "ml-platform", LabelProject: "llm-staging", LabelService: "vllm-server", LabelOneoff: "False",
		LabelContainerNumber: "1", LabelConfigFiles: file, LabelWorkingDir: dir,
	} {
		if a.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, a.Labels[k], v)
		}
	}
	if len(a.Labels[LabelConfigHash]) != 64 {
		t.Errorf("label %s = %q, want a sha256", LabelConfigHash, a.Labels[LabelConfigHash])
	}
}

// Interpolation reads the environment and env files; a later file
// overrides an earlier one; the project name defaults to the directory's.
func TestLoadInterpolationAndOverride(t *testing.T) {
	file := staging(t)
	envFile := filepath.Join(t.TempDir(), "staging.env")
	if err := os.WriteFile(envFile, []byte("VLLM_LOGGING_LEVEL=DEBUG\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Load(context.Background(), Options{
		Files:   []string{file, filepath.Join(filepath.Dir(file), "docker-compose.e2e.yml")},
		Service: "vllm-server", EnvFiles: []string{envFile},
		Environ: []string{"VLLM_IMAGE=registry.example.com/llm:7", "E2E_IMAGE=x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Project != "compose" || s.Image != "registry.example.com/llm:7" || !slices.Contains(s.Attach.Env, "VLLM_LOGGING_LEVEL=DEBUG") {
		t.Errorf("project %q image %q env %q", s.Project, s.Image, s.Attach.Env)
	}
	if !slices.Equal(s.Profiles, []string{"modelship"}) {
		t.Errorf("profiles = %q", s.Profiles)
	}
	if len(s.Attach.DeviceRequests) != 0 {
		t.Errorf("the override resets the GPU reservation, got %+v", s.Attach.DeviceRequests)
	}
	if s.Attach.Labels[LabelEnvironmentFile] != envFile {
		t.Errorf("env file label %q", s.Attach.Labels[LabelEnvironmentFile])
	}

	// --project-directory: binds and the working dir label name it.
	s, err = Load(context.Background(), Options{Files: []string{file}, Service: "vllm-server", WorkingDir: "/srv/llm", Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if s.WorkingDir != "/srv/llm" || s.Attach.Mounts[1].Source != "/srv/llm/config" || s.Attach.Labels[LabelWorkingDir] != "/srv/llm" {
		t.Errorf("project directory /srv/llm: working dir %q, bind %q", s.WorkingDir, s.Attach.Mounts[1].Source)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, service string
		want                []string
	}{
		{"missing service", "services:\n  prometheus: {image: prom/prometheus}\n  grafana: {image: grafana/grafana}\n", "vllm-server",
			[]string{"docker-compose.yml", `no service "vllm-server"`, "the services are: grafana, prometheus"}},
		{"does not parse", "services:\n  vllm-server:\n    image: a\n   ports: [1]\n", "vllm-server",
			[]string{"docker-compose.yml:2: did not find expected key, on this line or further down"}},
		{"does not parse further down", "services:\n  vllm-server:\n    image: a\n    environment:\n      A: 1\n     B: 2\n", "vllm-server",
			[]string{"docker-compose.yml:3: did not find expected key, on this line or further down"}},
		{"build and no image", "services:\n  vllm-server:\n    build: .\n", "vllm-server",
			[]string{"docker-compose.yml", "services.vllm-server has build: and no image:", "release image replaces"}},
		{"unset variable", "services:\n  vllm-server:\n    image: vllm/vllm-openai:${VLLM_TAG}\n", "vllm-server",
			[]string{"docker-compose.yml:3: ", "services.vllm-server.image", "VLLM_TAG is not set and has no default"}},
		{"required variable", "services:\n  vllm-server:\n    image: ${IMAGE:?give the image}\n", "vllm-server",
			[]string{"docker-compose.yml:3: ", "IMAGE", "give the image"}},
		{"network mode", "services:\n  vllm-server: {image: a, network_mode: host}\n", "vllm-server",
			[]string{"services.vllm-server", `network_mode "host" is not supported`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "docker-compose.yml")
			if err := os.WriteFile(file, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(context.Background(), Options{Files: []string{file}, Service: tc.service, Environ: []string{}})
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\n  does not contain %q", err, w)
				}
			}
		})
	}
}
