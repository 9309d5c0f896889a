package kubernetes_test

import (
	"context"
	"strings"
	"testing"

	"github.com/modelship/modelship/internal/deploy/kubernetes"
	"github.com/modelship/modelship/internal/registryauth"
	"github.com/modelship/modelship/internal/testenv"
)

// TestPrivateRegistryPull: the cluster's containerd pulls a serving image
// from a password-protected registry only with the image pull secret the
// deploy writes from the credentials. Without them the release never
// starts and the deploy fails saying the registry refused; with them it
// serves.
func TestPrivateRegistryPull(t *testing.T) {
	images(t)
	cli, _ := testenv.Docker(t)
	reg := testenv.StartPrivateRegistry(t)
	reg.TrustInCluster(t)
	ctx := context.Background()
	built := testenv.ServingImage(t, cli, testenv.ImageGood)
	ref := reg.Host + "/modelship-test/good:private"
	cred := registryauth.Credential{Registry: reg.Host, Username: reg.Username, Password: reg.Password}
	reg.Push(t, cli, built.Tag, ref)
	img := built
	img.Tag = ref

	e := newEnv(t, 1)
	// The other tests import their images (pull policy Never); this one
	// pulls, as a user's cluster does.
	target := func(store *registryauth.Store) {
		o := e.target.Options()
		o.ImagePullPolicy, o.Credentials = "IfNotPresent", store
		tg, err := kubernetes.New(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tg.Close() })
		e.d.Target = tg
	}
	target(nil)
	req := e.request(img, "")
	req.ReadyTimeout = 20e9
	_, err := e.d.Deploy(ctx, req)
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "401 unauthorized") {
		t.Fatalf("deploy without credentials: %v, want the registry's refusal", err)
	}
	if strings.Contains(err.Error(), reg.Password) {
		t.Errorf("the error shows the password")
	}

	target(new(registryauth.Store).With(cred))
	if _, err := e.d.Deploy(ctx, e.request(img, "")); err != nil {
		t.Fatalf("deploy with credentials: %v", err)
	}
	if v := testenv.GetVersion(t, e.clusterIP(t)); v.Image != ref {
		t.Errorf("/version image %q, want %s", v.Image, ref)
	}
}
