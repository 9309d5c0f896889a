package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/docker"
	"github.com/modelship/modelship/internal/testenv"
)

// modelship unlock refuses while the holder renews the lock, naming it;
// once the holder has stopped renewing, it removes the lock; with no lock
// it says so.
func TestUnlock(t *testing.T) {
	_, host, imgs := testenv.DockerImages(t, testenv.ImageGood)
	good := imgs[0]
	tg, err := docker.New(docker.Options{Host: host})
	if err != nil {
		t.Fatal(err)
	}
	envName := testenv.Env(t, "unl", tg)
	cfg := filepath.Join(t.TempDir(), "modelship.yaml")
	yaml := fmt.Sprintf("model: {path: %s}\nserving: {engine: sim}\nenvironments:\n  %s:\n    target: docker\n    port: %d\n    docker: {host: '%s'}\n",
		filepath.Join(testenv.RepoRoot(), "testdata/models/good"), envName, testenv.FreePort(t), host)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCmd(t, "unlock", "--env", envName, "--config", cfg); code != exitOK || !strings.Contains(out, "has no deploy lock") {
		t.Fatalf("unlock with no lock: exit %d %s %s", code, out, errs)
	}
	img, err := tg.Image(context.Background(), good.Tag)
	if err != nil {
		t.Fatal(err)
	}
	lease, err := tg.Lock(context.Background(), envName, deploy.Holder{Who: "alice@ci", Host: "elsewhere", PID: 7, Since: time.Now().UTC(), What: "deploy x:1", TTL: 2 * time.Second}, img)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCmd(t, "unlock", "--env", envName, "--config", cfg); code != exitFailed || !strings.Contains(errs, "refused") || !strings.Contains(errs, "alice@ci") {
		t.Fatalf("unlock while the holder renews: exit %d %s, want refused naming alice@ci", code, errs)
	}
	_ = lease // alice stops renewing
	testenv.Eventually(t, 20*time.Second, "unlock to remove the unrenewed lock", func() bool {
		code, out, _ := runCmd(t, "unlock", "--env", envName, "--config", cfg)
		return code == exitOK && strings.Contains(out, "removed the lock of "+envName+" held by alice@ci")
	})
}
