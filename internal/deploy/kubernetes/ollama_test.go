package kubernetes_test

import (
	"context"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/testenv"
)

// TestBlueGreenOnOllama: on the real cluster, the generated good GGUF
// model served by Ollama, a real engine, switched blue-green under a
// constant load loop through the ClusterIP: no request fails, and
// /version reports the GGUF's digest.
func TestBlueGreenOnOllama(t *testing.T) {
	testenv.Kubernetes(t)
	img := testenv.ImportImage(t, testenv.ImageOllamaGood, "modelship-test/ollama-good:2")
	img2 := img
	img2.Tag = "modelship-test/ollama-good:2"
	e := newEnv(t, 1)
	req := e.request(img, deploy.BlueGreen)
	req.Engine = "ollama"
	if _, err := e.d.Deploy(context.Background(), req); err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	url := e.clusterIP(t)
	if v := testenv.GetVersion(t, url); v.Engine != "ollama" || v.Digest != img.ModelDigest {
		t.Fatalf("/version %+v, want engine ollama and digest %s", v, img.ModelDigest)
	}
	l := testenv.LoadLoop(url, 2)
	var res *deploy.Result
	var err error
	req = e.request(img2, deploy.BlueGreen)
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
	t.Logf("blue-green on Ollama through the ClusterIP: %d requests during the %s deploy (%d in all), %d failed; ready after %s, switched %s after",
		during, took.Round(time.Millisecond), reqs, fails, res.ReadyAfter.Round(time.Millisecond), res.SwitchAfterReady.Round(time.Millisecond))
	if fails != 0 {
		t.Errorf("%d of %d requests failed, want 0: %q", fails, reqs, errs)
	}
	if v := testenv.GetVersion(t, url); v.Image != img2.Tag || v.Digest != img.ModelDigest {
		t.Errorf("/version %+v, want image %s digest %s", v, img2.Tag, img.ModelDigest)
	}
}
