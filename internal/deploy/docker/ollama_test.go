package docker_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/testenv"
	"github.com/modelship/modelship/internal/testmodels"
	"github.com/modelship/modelship/serving"
)

// TestBlueGreenOnOllama: the generated good GGUF model served by Ollama, a
// real engine, deployed blue-green under a constant load loop on the real
// Docker engine: no request fails while the new release loads and takes
// over, and /version reports the GGUF's digest.
func TestBlueGreenOnOllama(t *testing.T) {
	cli, _ := testenv.Docker(t)
	img := testenv.ServingImage(t, cli, testenv.ImageOllamaGood)
	const second = "modelship-test/ollama-good:2"
	if err := cli.ImageTag(context.Background(), img.Tag, second); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	req := e.request(img.Tag)
	req.Engine = "ollama"
	first, err := e.d.Deploy(context.Background(), req)
	if err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	if v := e.version(t); v.Engine != "ollama" || v.Digest != img.ModelDigest {
		t.Fatalf("after the first deploy /version = %+v, want engine ollama and digest %s", v, img.ModelDigest)
	}

	l := testenv.LoadLoop(e.url, 2)
	var res *deploy.Result
	req = e.request(second)
	req.Engine = "ollama"
	during, took := l.During(10, func() {
		if res, err = e.d.Deploy(context.Background(), req); err != nil {
			t.Errorf("second deploy: %v", err)
		}
	})
	reqs, fails, errs := l.Stop()
	if res == nil {
		t.FailNow()
	}
	t.Logf("blue-green on Ollama under load: %d requests during the %s deploy (%d in all), %d failed; ready after %s, switched %s after, old drained %s after",
		during, took.Round(time.Millisecond), reqs, fails, res.ReadyAfter.Round(time.Millisecond),
		res.SwitchAfterReady.Round(time.Millisecond), res.DrainedAfter.Round(time.Millisecond))
	if fails != 0 {
		t.Errorf("%d of %d requests failed, want 0: %q", fails, reqs, errs)
	}
	if during < 10 {
		t.Errorf("only %d requests during the deploy, want at least 10", during)
	}
	if res.Plan.Strategy != deploy.BlueGreen || res.Previous == nil || res.Previous.ID != first.Release.ID {
		t.Errorf("second deploy: strategy %s previous %v", res.Plan.Strategy, res.Previous)
	}
	if v := e.version(t); v.Image != second || v.Digest != img.ModelDigest || v.Engine != "ollama" {
		t.Errorf("/version %+v, want image %s digest %s", v, second, img.ModelDigest)
	}
}

// TestBrokenGGUFOnOllama: a GGUF that Ollama's create accepts but cannot
// load (an architecture no runner has) never becomes ready: the deploy fails saying why (Ollama's load
// error) and the previous release keeps serving.
func TestBrokenGGUFOnOllama(t *testing.T) {
	cli, _ := testenv.Docker(t)
	good := testenv.ServingImage(t, cli, testenv.ImageOllamaGood)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "model.gguf"), testmodels.UnloadableGGUF(), 0o644); err != nil {
		t.Fatal(err)
	}
	broken := testenv.ServingImage(t, cli, testenv.TestImage{Tag: "modelship-test/ollama-broken:1", Model: dir, Engine: serving.EngineOllama})
	e := newEnv(t)
	req := e.request(good.Tag)
	req.Engine = "ollama"
	if _, err := e.d.Deploy(context.Background(), req); err != nil {
		t.Fatalf("deploy of the good model: %v", err)
	}
	req = e.request(broken.Tag)
	req.Engine, req.ReadyTimeout = "ollama", 30*time.Second
	_, err := e.d.Deploy(context.Background(), req)
	if err == nil || !strings.Contains(err.Error(), "loading current: ollama answered 500: unable to load model") {
		t.Fatalf("deploy of the broken GGUF: %v, want Ollama's load error", err)
	}
	if v := e.version(t); v.Image != good.Tag || v.Digest != good.ModelDigest {
		t.Errorf("after the failed deploy /version = %+v, want the good release still serving", v)
	}
}
