package docker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/deploy/docker"
	"github.com/modelship/modelship/internal/registryauth"
	"github.com/modelship/modelship/internal/testenv"
)

// TestPrivateRegistryPull: a serving image in a password-protected
// registry deploys only with its credentials. Without them, or with wrong
// ones, the deploy fails naming the registry and nothing changes; with
// them, the pull sends the registry auth header and the release serves.
func TestPrivateRegistryPull(t *testing.T) {
	good, _ := images(t)
	reg := testenv.StartPrivateRegistry(t)
	cli, host := testenv.Docker(t)
	ctx := context.Background()
	ref := reg.Host + "/modelship-test/good:private"
	right := registryauth.Credential{Registry: reg.Host, Username: reg.Username, Password: reg.Password}
	// The deploy must pull it: only the registry has it under this name.
	reg.Push(t, cli, good.Tag, ref)

	e := newEnv(t)
	e.deploy(t, good.Tag)
	deployWith := func(store *registryauth.Store) error {
		tg, err := docker.New(docker.Options{Host: host, StopTimeout: 5 * time.Second, Credentials: store})
		if err != nil {
			t.Fatal(err)
		}
		defer tg.Close()
		e.d.Target = tg
		_, err = e.d.Deploy(ctx, e.request(ref))
		return err
	}
	err := deployWith(nil)
	if err == nil || !strings.Contains(err.Error(), "registry "+reg.Host+" refused to serve "+ref+" without credentials") {
		t.Fatalf("deploy without credentials: %v", err)
	}
	e.serving(t, good.Tag)
	wrong := right
	wrong.Password = "not-the-password"
	err = deployWith(new(registryauth.Store).With(wrong))
	if err == nil || !strings.Contains(err.Error(), "refused the credentials of "+reg.Username) {
		t.Fatalf("deploy with wrong credentials: %v", err)
	}
	if strings.Contains(err.Error(), wrong.Password) || strings.Contains(err.Error(), reg.Password) {
		t.Fatalf("the error shows a password: %v", err)
	}
	e.serving(t, good.Tag)
	if err := deployWith(new(registryauth.Store).With(right)); err != nil {
		t.Fatalf("deploy with the registry's credentials: %v", err)
	}
	if v := e.version(t); v.Image != ref {
		t.Errorf("after the private deploy /version image = %s, want %s", v.Image, ref)
	}
}
