package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/docker"
	"github.com/modelship/modelship/internal/testenv"
	"github.com/modelship/modelship/serving/stage"
)

// composeProject runs a real `docker compose` (.ci/deps/compose.sh
// installs it) on one project of the article's staging files with the
// end-to-end override.
type composeProject struct {
	t       *testing.T
	name    string
	files   []string
	environ []string
}

func (p *composeProject) run(args ...string) (string, error) {
	cmd := exec.Command("docker", "compose")
	for _, f := range p.files {
		cmd.Args = append(cmd.Args, "-f", f)
	}
	cmd.Args = append(cmd.Args, append([]string{"-p", p.name}, args...)...)
	cmd.Env = append(os.Environ(), p.environ...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return string(out), nil
}

// live is the release whose container `docker compose ps SERVICE` lists
// (the only one running): its modelship.release label, and the
// container's name.
func (p *composeProject) live(cli *client.Client, service string) (release, name string) {
	p.t.Helper()
	out, err := p.run("ps", "--format", "json", service)
	if err != nil {
		p.t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var c struct{ Name, Service, State string }
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			p.t.Fatalf("docker compose ps --format json: %v in %q", err, line)
		}
		if c.Service != service || c.State != "running" {
			p.t.Fatalf("docker compose ps %s listed %+v", service, c)
		}
		names = append(names, c.Name)
	}
	if len(names) != 1 {
		p.t.Fatalf("docker compose ps %s lists %d containers, want the live release's: %q", service, len(names), names)
	}
	ins, err := cli.ContainerInspect(context.Background(), names[0])
	if err != nil {
		p.t.Fatal(err)
	}
	return ins.Config.Labels[deploy.LabelRelease], names[0]
}

// TestComposeDeployRollback deploys into the article's compose project on
// the real engine: `docker compose ps` and `logs` show the live release,
// the project's other service reaches vllm-server through the gateway,
// and a second deploy and a rollback switch what ps shows.
func TestComposeDeployRollback(t *testing.T) {
	cli, host, imgs := testenv.DockerImages(t, testenv.ImageGood)
	good := imgs[0]
	if out, err := exec.Command("docker", "compose", "version").CombinedOutput(); err != nil {
		testenv.Unavailable(t, fmt.Sprintf("docker compose is not installed (run .ci/deps/compose.sh): %v %s", err, out))
	}
	if err := cli.ImageTag(context.Background(), good.Tag, "modelship-test/good:2"); err != nil {
		t.Fatal(err)
	}
	root := testenv.RepoRoot()
	p := &composeProject{t: t, name: fmt.Sprintf("llm-staging-%d", os.Getpid()%100000),
		files:   []string{filepath.Join(root, "testdata/compose/docker-compose.staging.yml"), filepath.Join(root, "testdata/compose/docker-compose.e2e.yml")},
		environ: []string{"DOCKER_HOST=" + host, "E2E_IMAGE=" + good.Tag}}
	t.Setenv("E2E_IMAGE", good.Tag) // modelship reads the same files
	t.Cleanup(func() {
		if out, err := p.run("down", "--volumes", "--timeout", "1"); err != nil {
			t.Errorf("cleanup: %v\n%s", err, out)
		}
		// The releases' named volume: the engine made it when the first
		// release mounted it, and `down` leaves a disabled service's
		// volumes (vllm-server has a profile).
		if err := cli.VolumeRemove(context.Background(), p.name+"_hf-cache", true); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("cleanup: %v", err)
		}
	})
	if out, err := p.run("up", "-d"); err != nil { // vllm-server has a profile: not started
		t.Fatalf("%v\n%s", err, out)
	}
	tg, err := docker.New(docker.Options{Host: host})
	if err != nil {
		t.Fatal(err)
	}
	envName := testenv.Env(t, "cmp", tg) // destroyed before the project is down

	dir := t.TempDir()
	cfg := filepath.Join(dir, "modelship.yaml")
	yaml := fmt.Sprintf(`version: 1
model: {path: %s, served-name: current}
serving: {engine: sim}
suites: {validation: %s}
environments:
  %s:
    target: compose
    port: %d
    docker: {host: %s}
    compose:
      files: [%s, %s]
      service: vllm-server
      project: %s
`, filepath.Join(root, "testdata/models/good"), filepath.Join(root, "testdata/suites/validation_cases.json"), envName, testenv.FreePort(t), host,
		p.files[0], p.files[1], p.name)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	common := []string{"--env", envName, "--config", cfg, "--ledger", filepath.Join(dir, "ledger.jsonl")}
	deployJSON := func(image string) *deploy.Release {
		t.Helper()
		code, out, errOut := runCmd(t, append([]string{"deploy", "--image", image, "--json"}, common...)...)
		res := stageResult(t, "deploy", code, out, stage.Passed)
		if res.Release == nil || !strings.Contains(errOut, "deploys service vllm-server of compose project "+p.name) {
			t.Fatalf("deploy %s: %+v\n%s", image, res, errOut)
		}
		return &deploy.Release{ID: res.Release.ID, Image: res.Release.Image}
	}

	first := deployJSON(good.Tag)
	release, name := p.live(cli, "vllm-server")
	if release != first.ID {
		t.Fatalf("docker compose ps shows release %q, want the deployed %q", release, first.ID)
	}
	checkKept(t, cli, name, p.name)
	logs, err := p.run("logs", "--no-color", "vllm-server")
	if err != nil || !strings.Contains(logs, name) || !strings.Contains(logs, "modelship") {
		t.Errorf("docker compose logs vllm-server does not show %s's lines (%v):\n%s", name, err, logs)
	}
	// Prometheus's place in the project reaches vllm-server:8000, the
	// gateway, which answers with the live release.
	if out, err := p.run("exec", "-T", "prometheus", "/usr/local/bin/modelship", "wait-ready",
		"--endpoint", "http://vllm-server:8000", "--model", "current", "--timeout", "60s"); err != nil {
		t.Fatalf("the project's prometheus service cannot reach vllm-server:8000: %v\n%s", err, out)
	}
	// A bare `up` leaves the service with a profile to modelship.
	if out, err := p.run("up", "-d"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if again, _ := p.live(cli, "vllm-server"); again != first.ID {
		t.Fatalf("after docker compose up -d, ps shows release %q, want %q still", again, first.ID)
	}

	second := deployJSON("modelship-test/good:2")
	if release, _ := p.live(cli, "vllm-server"); release != second.ID {
		t.Fatalf("after the second deploy docker compose ps shows release %q, want %q", release, second.ID)
	}
	code, out, errOut := runCmd(t, append([]string{"rollback", "--json"}, common...)...)
	if res := stageResult(t, "rollback", code, out, stage.Passed); res.Release == nil || res.Release.Image != good.Tag {
		t.Fatalf("rollback: %+v\n%s", res, errOut)
	}
	release, name = p.live(cli, "vllm-server")
	ins, err := cli.ContainerInspect(context.Background(), name)
	if err != nil || release == second.ID || ins.Config.Labels[deploy.LabelImage] != good.Tag {
		t.Fatalf("after the rollback docker compose ps shows release %q (%v), want one of %s again, not %q", release, err, good.Tag, second.ID)
	}
	if out, err := p.run("exec", "-T", "prometheus", "/usr/local/bin/modelship", "wait-ready",
		"--endpoint", "http://vllm-server:8000", "--model", "current", "--timeout", "60s"); err != nil {
		t.Fatalf("after the rollback the project's prometheus service cannot reach vllm-server:8000: %v\n%s", err, out)
	}
}

// checkKept checks that release container name kept the service's
// network, volumes, bind, environment and labels.
func checkKept(t *testing.T, cli *client.Client, name, project string) {
	t.Helper()
	ins, err := cli.ContainerInspect(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if ins.NetworkSettings == nil || ins.NetworkSettings.Networks[project+"_llm-net"] == nil {
		t.Errorf("%s is not on the project's network %s_llm-net", name, project)
	}
	mounts := map[string]string{}
	for _, m := range ins.Mounts {
		mounts[m.Destination] = m.Name + m.Source
	}
	if !strings.Contains(mounts["/root/.cache/huggingface"], project+"_hf-cache") || !strings.HasSuffix(mounts["/etc/vllm"], "testdata/compose/config") {
		t.Errorf("%s mounts %v, want the project's hf-cache volume and the config bind", name, mounts)
	}
	env := strings.Join(ins.Config.Env, "\n")
	if !strings.Contains(env, "DEPLOY_STAGE=staging") || !strings.Contains(env, "VLLM_LOGGING_LEVEL=INFO") || !strings.Contains(env, "MODELSHIP_ENGINE=sim") {
		t.Errorf("%s environment lacks the service's or the release's variables:\n%s", name, env)
	}
	if ins.Config.Labels["com.example.team"] != "ml-platform" {
		t.Errorf("%s lacks the service's label com.example.team", name)
	}
}

// A compose environment whose files are wrong is refused before anything
// reaches an engine, naming the environment, the file and what is wrong.
func TestComposeTargetErrors(t *testing.T) {
	for _, tc := range []struct {
		name, compose string
		want          []string
	}{
		{"missing service", "services:\n  prometheus: {image: prom/prometheus}\n", []string{"environments.s.compose:", `no service "vllm-server"`, "the services are: prometheus"}},
		{"unset variable", "services:\n  vllm-server:\n    image: a\n    environment:\n      HF_TOKEN: ${MODELSHIP_TEST_UNSET_TOKEN}\n",
			[]string{"environments.s.compose:", "docker-compose.staging.yml:5:", "MODELSHIP_TEST_UNSET_TOKEN is not set and has no default"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "docker-compose.staging.yml"), []byte(tc.compose), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg := filepath.Join(dir, "modelship.yaml")
			yaml := "model: {path: /m}\nenvironments:\n  s:\n    port: 9000\n    target: compose\n    docker: {host: unix:///nonexistent.sock}\n" +
				"    compose: {files: [docker-compose.staging.yml], service: vllm-server}\n"
			if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			code, out, errOut := runCmd(t, "history", "--env", "s", "--config", cfg)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d\n%s%s", code, exitUsage, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q\n  does not contain %q", errOut, w)
				}
			}
		})
	}
}
