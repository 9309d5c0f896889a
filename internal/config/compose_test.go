package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestComposeEnvironment(t *testing.T) {
	c, err := Parse("deploy/m.yaml", []byte(`model: {path: /m}
environments:
  staging:
    target: compose
    strategy: blue-green
    docker: {host: unix:///run/docker.sock}
    compose:
      files: [docker-compose.staging.yml, /srv/override.yml]
      service: vllm-server
      project: llm_staging
      project-directory: /srv/llm
      env-file: [staging.env]
`))
	if err != nil {
		t.Fatal(err)
	}
	e := c.Environments["staging"]
	want := ComposeTarget{Files: []string{"docker-compose.staging.yml", "/srv/override.yml"}, Service: "vllm-server", Project: "llm_staging", ProjectDirectory: "/srv/llm", EnvFile: []string{"staging.env"}}
	if !reflect.DeepEqual(e.Compose, want) {
		t.Errorf("compose = %+v, want %+v", e.Compose, want)
	}
	if e.Port != 8100 || e.URL != "http://127.0.0.1:8100" || e.Docker.Host != "unix:///run/docker.sock" {
		t.Errorf("a compose environment takes the docker defaults and keys: port %d url %q docker %+v", e.Port, e.URL, e.Docker)
	}
	files, envFiles, dir := c.ComposePaths(e)
	if dir != "/srv/llm" {
		t.Errorf("project directory = %q", dir)
	}
	if want := []string{filepath.Join("deploy", "docker-compose.staging.yml"), "/srv/override.yml"}; !reflect.DeepEqual(files, want) {
		t.Errorf("files = %q, want %q (relative to the config file)", files, want)
	}
	if want := []string{filepath.Join("deploy", "staging.env")}; !reflect.DeepEqual(envFiles, want) {
		t.Errorf("env files = %q, want %q", envFiles, want)
	}
}

func TestComposeErrors(t *testing.T) {
	env := func(body string) string {
		return "model: {path: /m}\nenvironments:\n  s:\n    port: 9000\n    target: compose\n" + body
	}
	parseErrors(t, []parseError{
		{"no files", env("    compose: {service: vllm-server}\n"), []string{"environments.s.compose.files", "required for target compose"}},
		{"no service", env("    compose: {files: [a.yml]}\n"), []string{"environments.s.compose.service", "required for target compose"}},
		{"no block", env(""), []string{"compose.files", "compose.service"}},
		{"empty file", env("    compose: {files: [''], service: x}\n"), []string{"m.yaml:6:23:", "environments.s.compose.files[0]", "got nothing"}},
		{"empty env file", env("    compose: {files: [a.yml], service: x, env-file: ['']}\n"), []string{"compose.env-file[0]", "got nothing"}},
		{"bad project", env("    compose: {files: [a.yml], service: x, project: My.Project}\n"), []string{"m.yaml:6:52:", "compose.project", `got "My.Project"`}},
		{"unknown key", env("    compose: {files: [a.yml], service: x, services: y}\n"), []string{"m.yaml:6:43:", `unknown key "services"`}},
		{"project directory on docker", "model: {path: /m}\nenvironments:\n  s: {port: 9000, compose: {project-directory: /srv}}\n", []string{"environments.s.compose", "target compose only"}},
		{"on docker", "model: {path: /m}\nenvironments:\n  s: {port: 9000, compose: {service: x}}\n", []string{"environments.s.compose", "target compose only", "target is docker"}},
		{"same port as docker", "model: {path: /m}\nenvironments:\n  a: {port: 9000}\n  b: {port: 9000, target: compose, compose: {files: [a.yml], service: x}}\n", []string{"environments.b.port", "already used by environment a"}},
	})
}

// parseError is a modelship.yaml (read as m.yaml) that must be refused
// with an error containing each of want.
type parseError struct {
	name, yaml string
	want       []string
}

func parseErrors(t *testing.T, cases []parseError) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("m.yaml", []byte(tc.yaml))
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
