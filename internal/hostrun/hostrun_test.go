package hostrun

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/modelship/modelship/internal/secretsexec"
	"github.com/modelship/modelship/internal/testenv"
)

// The runner gets the config bundle as its working directory and the
// secrets as files, runs the command with the host's network, passes its
// stdout and stderr through apart, returns its exit status, and is gone
// afterwards; the secrets are never in the container's configuration.
func TestRunOnTheDockerHost(t *testing.T) {
	cli, host, imgs := testenv.DockerImages(t, testenv.ImageGood)
	img := imgs[0]
	bundle := t.TempDir()
	os.WriteFile(filepath.Join(bundle, "modelship.yaml"), []byte("model:\n  path: /models/current\nserving:\n  max-model-len: 2048\n"), 0o644)
	secrets := t.TempDir()
	// A file secret: a config of its own at a path the bundle does not have.
	p, _ := secretsexec.Path("file:/run/secrets/other.yaml")
	os.MkdirAll(filepath.Join(secrets, filepath.Dir(p)), 0o700)
	os.WriteFile(filepath.Join(secrets, p), []byte("model:\n  path: /models/current\nserving:\n  max-model-len: 4096\n"), 0o600)
	p, _ = secretsexec.Path("env:MODELSHIP_TEST_SECRET")
	os.MkdirAll(filepath.Join(secrets, filepath.Dir(p)), 0o700)
	os.WriteFile(filepath.Join(secrets, p), []byte("hunter2-secret"), 0o600)

	run := func(args []string, secretsDir string) (int, string, string, error) {
		var out, errs bytes.Buffer
		code, err := Run(context.Background(), cli, Options{
			Stage: "test", Image: img.Tag, Args: args, Bundle: bundle, Secrets: secretsDir,
			SocketPath: strings.TrimPrefix(host, "unix://"), Timeout: 2 * time.Minute, Pull: "missing",
			Env: []string{"GITHUB_RUN_ID=4242"}, Stdout: &out, Stderr: &errs,
		})
		return code, out.String(), errs.String(), err
	}
	code, out, errs, err := run([]string{"config", "serving", "modelship.yaml"}, "")
	if err != nil || code != 0 || !strings.Contains(out, "2048") {
		t.Fatalf("config serving of the bundle: exit %d, %v:\n%s\n%s", code, err, out, errs)
	}
	code, out, errs, err = run([]string{"config", "serving", "/run/secrets/other.yaml"}, secrets)
	if err != nil || code != 0 || !strings.Contains(out, "4096") {
		t.Fatalf("config serving of the file secret: exit %d, %v:\n%s\n%s", code, err, out, errs)
	}
	if strings.Contains(out+errs, "hunter2-secret") {
		t.Errorf("a secret's value was printed:\n%s\n%s", out, errs)
	}
	// The command's own exit status comes back; its complaint on stderr.
	code, out, errs, err = run([]string{"config", "serving", "missing.yaml"}, "")
	if err != nil || code == 0 || !strings.Contains(errs, "missing.yaml") || out != "" {
		t.Errorf("a failing command: exit %d, %v; stdout %q, stderr:\n%s", code, err, out, errs)
	}
	// Every runner is gone.
	list, err := cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "modelship.stage=test"))})
	if err != nil || len(list) != 0 {
		t.Errorf("runners left: %d (%v)", len(list), err)
	}
}

func TestTimeoutNamesTheStep(t *testing.T) {
	cli, _, imgs := testenv.DockerImages(t, testenv.ImageGood)
	img := imgs[0]
	var errs bytes.Buffer
	// modelship serve runs until stopped: the bound ends it.
	code, err := Run(context.Background(), cli, Options{Stage: "deploy", Image: img.Tag, Args: []string{"serve"},
		SocketPath: "/var/run/docker.sock", Timeout: 5 * time.Second, Pull: "missing", Stdout: &errs, Stderr: &errs})
	var te *TimeoutError
	if code != ExitTimeout || !errors.As(err, &te) || !strings.Contains(err.Error(), "deploy: modelship serve did not finish within the stage's timeout of 5s") {
		t.Fatalf("exit %d, %v; want 124 naming the step", code, err)
	}
}

func TestPullFailure(t *testing.T) {
	cli, _ := testenv.Docker(t)
	var errs bytes.Buffer
	code, err := Run(context.Background(), cli, Options{Stage: "deploy", Image: "127.0.0.1:1/modelship/none:1", Args: []string{"version"},
		Timeout: time.Minute, Stdout: &errs, Stderr: &errs})
	if code != ExitSetup || err == nil || !strings.Contains(err.Error(), "deploy: pull 127.0.0.1:1/modelship/none:1") {
		t.Fatalf("exit %d, %v; want 125 naming the image", code, err)
	}
}
