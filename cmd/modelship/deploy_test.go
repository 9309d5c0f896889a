package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/docker"
	"github.com/modelship/modelship/internal/testenv"
	"github.com/modelship/modelship/serving/stage"
)

// TestDeployRollbackHistory runs the three commands against the real engine
// (skipped without one, except under CI=true).
func TestDeployRollbackHistory(t *testing.T) {
	cli, host, imgs := testenv.DockerImages(t, testenv.ImageGood)
	good := imgs[0]
	if err := cli.ImageTag(context.Background(), good.Tag, "modelship-test/good:2"); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	tg, err := docker.New(docker.Options{Host: host})
	if err != nil {
		t.Fatal(err)
	}
	envName := testenv.Env(t, "cmd", tg)

	root := testenv.RepoRoot()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "modelship.yaml")
	yaml := fmt.Sprintf(`version: 1
model:
  path: %s
  served-name: current
serving:
  engine: sim
suites:
  validation: %s
environments:
  %s:
    target: docker
    port: %d
    docker:
      host: %s
`, filepath.Join(root, "testdata/models/good"), filepath.Join(root, "testdata/suites/validation_cases.json"), envName, port, host)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	ledger := filepath.Join(dir, "ledger.jsonl")
	common := []string{"--env", envName, "--config", cfg, "--ledger", ledger}

	code, out, errOut := runCmd(t, append([]string{"deploy", "--image", good.Tag, "--git-sha", "abc123"}, common...)...)
	if code != exitOK || !strings.Contains(out, "live on "+envName) {
		t.Fatalf("deploy: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = runCmd(t, append([]string{"deploy", "--image", "modelship-test/good:2", "--json"}, common...)...)
	res := stageResult(t, "deploy", code, out, stage.Passed)
	second := res.Release
	if second == nil || second.ID == "" || second.Env != envName || second.Image != "modelship-test/good:2" || second.Previous == "" ||
		res.Endpoint == "" || !(res.Figures["ready_after_s"] > 0) || !strings.Contains(res.Message, "verified in") || !strings.Contains(errOut, "live on "+envName) {
		t.Fatalf("second deploy --json: %+v %+v\n%s", res, second, errOut)
	}
	code, out, errOut = runCmd(t, append([]string{"rollback", "--json"}, common...)...)
	res = stageResult(t, "rollback", code, out, stage.Passed)
	if !strings.Contains(errOut, "rolling "+envName+" back to release") || res.Release == nil || res.Release.Image != good.Tag || res.Release.Previous != second.ID {
		t.Fatalf("rollback: exit %d %+v\n%s", code, res.Release, errOut)
	}
	code, out, errOut = runCmd(t, append([]string{"rollback", "--to", "r-nosuch", "--json"}, common...)...)
	res = stageResult(t, "rollback", code, out, stage.Failed)
	if !strings.Contains(res.Message, "r-nosuch") || res.Release == nil || res.Release.Env != envName || res.Release.ID != "" {
		t.Fatalf("rollback to an unknown release: %+v %+v\n%s", res, res.Release, errOut)
	}
	code, out, _ = runCmd(t, "history", "--env", envName, "--config", cfg, "--json")
	var rels []deploy.Release
	if err := json.Unmarshal([]byte(out), &rels); code != exitOK || err != nil {
		t.Fatalf("history --json: exit %d %v\n%s", code, err, out)
	}
	if len(rels) != 3 || rels[0].GitSHA != "abc123" || !rels[2].Serving || rels[2].Image != good.Tag || rels[1].Outcome != deploy.Superseded {
		t.Errorf("history: %s", out)
	}
	code, out, _ = runCmd(t, "history", "--env", envName, "--config", cfg)
	if code != exitOK || !strings.Contains(out, "RELEASE") || !strings.Contains(out, "superseded") {
		t.Errorf("history table: exit %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(ledger); strings.Count(string(b), `"event":"live"`) != 3 {
		t.Errorf("ledger:\n%s", b)
	}

	// A bad image: clear error, exit 1, the rolled-back release still serves.
	code, out, errOut = runCmd(t, append([]string{"deploy", "--image", "modelship-test/nosuch:1", "--json"}, common...)...)
	res = stageResult(t, "deploy", code, out, stage.Failed)
	if !strings.Contains(errOut, "pulling it failed") || !strings.Contains(res.Message, "pulling it failed") || res.Release == nil || res.Release.Image != "modelship-test/nosuch:1" {
		t.Errorf("bad image: exit %d %+v\n%s", code, res, errOut)
	}
}

func TestDeployUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"deploy", "--help"}, exitOK, "-lock-timeout duration"},
		{[]string{"rollback", "--help"}, exitOK, "-to release"},
		{[]string{"history", "--help"}, exitOK, "-json"},
		{[]string{"deploy", "--env", "production"}, exitUsage, "--image REF is required"},
		{[]string{"deploy", "--image", "x:1"}, exitUsage, "--env NAME is required"},
		{[]string{"deploy", "--image", "x:1", "--env", "nope", "--config", "../../modelship.yaml"}, exitUsage, `has no environment "nope"`},
	} {
		code, out, errOut := runCmd(t, c.args...)
		if code != c.code || !strings.Contains(out+errOut, c.want) {
			t.Errorf("%v: exit %d, want %d with %q\n%s%s", c.args, code, c.code, c.want, out, errOut)
		}
	}
}

// TestDeploySetupKeepReleases: deploy and rollback prune to the
// environment's keep-releases (default 10).
func TestDeploySetupKeepReleases(t *testing.T) {
	root := testenv.RepoRoot()
	cfg := filepath.Join(t.TempDir(), "modelship.yaml")
	yaml := fmt.Sprintf(`model: {path: %s}
serving: {engine: sim}
environments:
  staging: {docker: {host: unix:///nonexistent/docker.sock}}
  production: {keep-releases: 4, docker: {host: unix:///nonexistent/docker.sock}}
`, filepath.Join(root, "testdata/models/good"))
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	for env, want := range map[string]int{"production": 4, "staging": 10} {
		var errb strings.Builder
		f := &deployFlags{env: env, config: cfg}
		_, req, closeFn, code := deploySetup(context.Background(), f, stdio{in: strings.NewReader(""), out: &errb, err: &errb}, "deploy")
		if code != exitOK {
			t.Fatalf("%s: exit %d: %s", env, code, errb.String())
		}
		closeFn()
		if req.KeepReleases != want {
			t.Errorf("%s: request keeps %d releases, want %d", env, req.KeepReleases, want)
		}
	}
}
