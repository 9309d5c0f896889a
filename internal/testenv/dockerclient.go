package testenv

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/docker/docker/client"
)

// DockerImages is how a test that runs serving images on the Docker engine
// starts: the engine's client and host (see Docker: skipped without an
// engine, failed under CI=true) and imgs built on it by ServingImage, in
// the order given.
func DockerImages(t testing.TB, imgs ...TestImage) (*client.Client, string, []Built) {
	t.Helper()
	cli, host := Docker(t)
	built := make([]Built, len(imgs))
	for i, img := range imgs {
		built[i] = ServingImage(t, cli, img)
	}
	return cli, host, built
}

// EnvTarget is the deploy target a test's environment lives on (a
// docker.Target; testenv does not import the deployers, whose own tests
// use it).
type EnvTarget interface {
	Destroy(ctx context.Context, env string) error
	Close() error
}

// Env is the name of a test's environment on tg, unique to this process
// (prefix and the pid, kept short: it names containers and networks). When
// the test ends the environment is destroyed on tg (its releases, gateway
// and lock) and tg closed.
func Env(t testing.TB, prefix string, tg EnvTarget) string {
	name := fmt.Sprintf("%s%d", prefix, os.Getpid()%100000)
	t.Cleanup(func() { tg.Destroy(context.Background(), name); tg.Close() })
	return name
}
