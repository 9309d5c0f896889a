package docker_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/docker"
	"github.com/modelship/modelship/internal/testenv"
	"github.com/modelship/modelship/suite"
)

// env is one test environment on the real engine.
type env struct {
	name   string
	port   int
	url    string
	target *docker.Target
	d      *deploy.Deployer
	log    *testenv.SyncBuffer
	ledger string
}

var envSeq atomic.Int32

func newEnv(t *testing.T) *env {
	t.Helper()
	_, host := testenv.Docker(t)
	log := &testenv.SyncBuffer{}
	tg, err := docker.New(docker.Options{Host: host, StopTimeout: 5 * time.Second, Out: log})
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("t%d-%d", os.Getpid()%100000, envSeq.Add(1))
	t.Cleanup(func() {
		if err := tg.Destroy(context.Background(), name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		tg.Close()
	})
	s, err := suite.Load(filepath.Join(testenv.RepoRoot(), "testdata/suites/validation_cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{name: name, port: testenv.FreePort(t), target: tg, log: log, ledger: filepath.Join(t.TempDir(), "ledger.jsonl")}
	e.url = fmt.Sprintf("http://127.0.0.1:%d", e.port)
	e.d = &deploy.Deployer{Target: tg, Verifier: &deploy.Checks{Suite: s, Timeout: 30 * time.Second},
		Ledger: &deploy.Ledger{Path: e.ledger}, Out: e.log, ProgressEvery: time.Second, DrainTimeout: 30 * time.Second}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("deploy log:\n%s", e.log.String())
		}
	})
	return e
}

func (e *env) request(image string) deploy.Request {
	return deploy.Request{Env: e.name, Image: image, Engine: "sim", ServedName: "current", Port: e.port,
		PublishIP: "127.0.0.1", URL: e.url, ReadyTimeout: 60 * time.Second, GitSHA: "0123abc"}
}

func (e *env) deploy(t *testing.T, image string) *deploy.Result {
	t.Helper()
	res, err := e.d.Deploy(context.Background(), e.request(image))
	if err != nil {
		t.Fatalf("deploy %s: %v", image, err)
	}
	return res
}

func (e *env) version(t *testing.T) testenv.Version {
	t.Helper()
	return testenv.GetVersion(t, e.url)
}

// images builds (or finds) the test images and tags aliases of the good one,
// so that successive deploys of the same model are different references.
func images(t *testing.T) (good, regressed testenv.Built) {
	cli, _ := testenv.Docker(t)
	good = testenv.ServingImage(t, cli, testenv.ImageGood)
	regressed = testenv.ServingImage(t, cli, testenv.ImageRegressed)
	for _, tag := range []string{"modelship-test/good:2", "modelship-test/good:3"} {
		if err := cli.ImageTag(context.Background(), good.Tag, tag); err != nil {
			t.Fatal(err)
		}
	}
	return good, regressed
}

func TestBlueGreenUnderLoad(t *testing.T) {
	good, _ := images(t)
	cli, _ := testenv.Docker(t)
	// The new release takes 8 s to load, as a real model takes a while:
	// the load loop runs through the whole deploy.
	slow := testenv.ServingImage(t, cli, testenv.ImageSlowLoad)
	e := newEnv(t)
	first := e.deploy(t, good.Tag)
	if first.Plan.Strategy != deploy.BlueGreen {
		t.Errorf("engine sim: strategy %s, want blue-green", first.Plan.Strategy)
	}
	if v := e.version(t); v.Image != good.Tag || v.Digest != good.ModelDigest {
		t.Fatalf("after the first deploy /version = %+v, want image %s digest %s", v, good.Tag, good.ModelDigest)
	}

	// Let the loop reach steady state, then deploy while it runs.
	var res *deploy.Result
	load := testenv.UnderLoad(t, e.url, 8, 50, "blue-green", func() string {
		res = e.deploy(t, slow.Tag)
		return fmt.Sprintf("ready after %s, new-ready → switched %s, switched → old drained %s, verify %s", res.ReadyAfter.Round(time.Millisecond),
			res.SwitchAfterReady.Round(time.Millisecond), res.DrainedAfter.Round(time.Millisecond), res.Verify.Round(time.Millisecond))
	})
	if load.During == 0 {
		t.Errorf("no request was sent during the deploy: the load loop did not run through it")
	}
	if res.Plan.Strategy != deploy.BlueGreen || res.Previous == nil || res.Previous.ID != first.Release.ID {
		t.Errorf("second deploy: strategy %s previous %v", res.Plan.Strategy, res.Previous)
	}
	if v := e.version(t); v.Image != slow.Tag || v.Digest != slow.ModelDigest {
		t.Errorf("/version %+v, want image %s digest %s", v, slow.Tag, slow.ModelDigest)
	}
	// The live release restarts with the engine (after a reboot), as the
	// gateway does.
	for _, name := range []string{"modelship-" + e.name + "-" + res.Release.ID, "modelship-" + e.name + "-gateway"} {
		c, err := cli.ContainerInspect(context.Background(), name)
		if err != nil {
			t.Fatalf("inspecting %s: %v", name, err)
		}
		if p := c.HostConfig.RestartPolicy.Name; p != "unless-stopped" {
			t.Errorf("%s restart policy %q, want unless-stopped", name, p)
		}
	}
	// The previous release's container is gone, its image is not.
	if in, err := e.target.Instance(context.Background(), e.name, first.Release.ID); err != nil || in != nil {
		t.Errorf("previous release's container: %v %v, want removed", in, err)
	}
	hist, err := deploy.History(context.Background(), e.target, e.name)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].Outcome != deploy.Superseded || hist[1].Outcome != deploy.Live || !hist[1].Serving || hist[1].GitSHA != "0123abc" {
		t.Errorf("history: %s", dump(hist))
	}
}

func dump(v any) string { b, _ := json.MarshalIndent(v, "", " "); return string(b) }

func TestRegressedModelRollsBack(t *testing.T) {
	good, regressed := images(t)
	e := newEnv(t)
	first := e.deploy(t, good.Tag)
	var err error
	testenv.UnderLoad(t, e.url, 4, 0, "regressed deploy", func() string {
		_, err = e.d.Deploy(context.Background(), e.request(regressed.Tag))
		return ""
	})
	testenv.RolledBack(t, err, first.Release.ID)
	if v := e.version(t); v.Digest != good.ModelDigest || v.Image != good.Tag {
		t.Errorf("/version after the rollback = %+v, want the previous digest %s", v, good.ModelDigest)
	}
	hist, _ := deploy.History(context.Background(), e.target, e.name)
	if len(hist) != 2 || !hist[0].Serving || hist[1].Outcome != deploy.Failed || !strings.Contains(hist[1].Reason, "verify failed") {
		t.Errorf("history: %s", dump(hist))
	}
	ledger, _ := os.ReadFile(e.ledger)
	if !bytes.Contains(ledger, []byte(`"event":"rolled-back"`)) {
		t.Errorf("ledger has no rolled-back event:\n%s", ledger)
	}
}

var _ = errors.New

// The gateway follows the modelship binary of the release that goes live:
// a release with another binary upgrades it in place under load (no
// request fails, the gateway process changes, it keeps the active
// release), a release with the same binary leaves it alone, and a
// regressed release's binary never reaches it.
func TestGatewayFollowsTheLiveBinary(t *testing.T) {
	good, regressed := images(t)
	cli, _ := testenv.Docker(t)
	next := testenv.ServingImage(t, cli, testenv.ImageGoodNextBinary)
	e := newEnv(t)
	e.deploy(t, good.Tag)
	ctx := context.Background()
	first, err := e.target.GatewayState(ctx, e.name)
	if err != nil {
		t.Fatal(err)
	}
	bin := testenv.StaticBinary(t)
	if first.BinarySHA256 != sha(bin) {
		t.Fatalf("the gateway runs binary %s, want the release's %s", first.BinarySHA256, sha(bin))
	}
	var upgraded *docker.GatewayState
	testenv.UnderLoad(t, e.url, 4, 0, "deploy with another binary", func() string {
		e.deploy(t, next.Tag)
		if upgraded, err = e.target.GatewayState(ctx, e.name); err != nil {
			t.Fatal(err)
		}
		// A regressed release (same binary as the first) rolls back: the
		// gateway keeps the live release's binary.
		if _, err := e.d.Deploy(ctx, e.request(regressed.Tag)); err == nil {
			t.Fatal("the regressed release went live")
		}
		return ""
	})
	nextBin := append(bin[:len(bin):len(bin)], testenv.ImageGoodNextBinary.BinaryTrailer...)
	if upgraded.BinarySHA256 != sha(nextBin) || upgraded.PID == first.PID {
		t.Errorf("after the release with another binary the gateway runs %s (pid %d, was %d), want %s in a new process", upgraded.BinarySHA256, upgraded.PID, first.PID, sha(nextBin))
	}
	if !strings.Contains(e.log.String(), "upgraded in place") {
		t.Errorf("the deploy log does not say the gateway was upgraded:\n%s", e.log.String())
	}
	after, err := e.target.GatewayState(ctx, e.name)
	if err != nil {
		t.Fatal(err)
	}
	if after.BinarySHA256 != upgraded.BinarySHA256 || after.PID != upgraded.PID {
		t.Errorf("after the regressed release the gateway runs %s (pid %d), want %s (pid %d) unchanged", after.BinarySHA256, after.PID, upgraded.BinarySHA256, upgraded.PID)
	}
	if v := e.version(t); v.Image != next.Tag {
		t.Errorf("/version %+v, want %s", v, next.Tag)
	}
	// Restarted, the gateway runs the binary it was upgraded to.
	if err := cli.ContainerRestart(ctx, "modelship-"+e.name+"-gateway", container.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "the restarted gateway answers", func() bool {
		st, err := e.target.GatewayState(ctx, e.name)
		if err == nil && st.BinarySHA256 != sha(nextBin) {
			t.Fatalf("the restarted gateway runs %s, want the upgraded binary %s", st.BinarySHA256, sha(nextBin))
		}
		return err == nil
	})
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
