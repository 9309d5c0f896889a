// Package hostrun runs one modelship command in a short-lived container on
// a Docker host: the runner of the pipeline's Docker deploy stages.
//
// A Docker target is driven from the Docker host itself: modelship deploy
// probes the releases it starts on the host's loopback (ports published on
// 127.0.0.1), which a pipeline container cannot reach. So the pipeline
// (ci/) runs `modelship host-run`, which pulls the serving image on the
// host's engine, creates a container of it with the host's network and the
// engine's socket (label modelship.role=runner), copies the config bundle
// into its working directory and the secrets in as files (never in the
// container's configuration), starts it, streams its output, waits for it
// and removes it, all bounded by one timeout that names the step that hung.
package hostrun

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/modelship/modelship/internal/secretsexec"
	"github.com/modelship/modelship/serving"
)

// WorkDir is the runner's working directory: the config bundle's contents.
const WorkDir = "/tmp/modelship"

// Exit codes besides the command's own: the stage's bound was reached
// (timeout(1)'s), and the runner could not be made (docker run's).
const (
	ExitTimeout = 124
	ExitSetup   = 125
)

// Options describe one run.
type Options struct {
	Stage string   // names the run in messages and the label modelship.stage
	Image string   // serving image whose modelship runs Args
	Args  []string // modelship's arguments, e.g. deploy --env staging ...
	// Bundle is a directory copied to WorkDir (the config and the files it
	// names); "" copies nothing.
	Bundle string
	// Secrets is a directory laid out as secretsexec reads it, copied into
	// the runner and applied by `modelship secrets-exec` there before Args
	// run; "" runs modelship directly.
	Secrets string
	// SocketPath is the Docker engine's socket on the host, bound into the
	// runner at /var/run/docker.sock.
	SocketPath string
	Env        []string      // NAME=VALUE set in the runner (the CI run's variables)
	Timeout    time.Duration // bound on the whole run, pull included
	// Pull is "always" (the registry's image for the reference, as a
	// release wants) or "missing" (pull only when the host lacks it).
	Pull string
	// Stdout and Stderr get the runner's output and, on Stderr, what the
	// run does.
	Stdout, Stderr io.Writer
}

// TimeoutError is a run past its bound: the step that did not finish.
type TimeoutError struct {
	Stage, Step string
	Limit       time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("%s: %s did not finish within the stage's timeout of %s on the Docker host (raise it with --timeout; --deploy-timeout on release)", e.Stage, e.Step, e.Limit)
}

// Run runs opt.Args in a runner container on the engine cli talks to and
// returns the command's exit status. The error is set when the run could
// not be made or finish: a *TimeoutError past the bound, any other when
// the image could not be pulled or the runner made.
func Run(ctx context.Context, cli client.APIClient, opt Options) (int, error) {
	if opt.Timeout <= 0 {
		return ExitSetup, fmt.Errorf("%s: timeout %s: expected a positive duration", opt.Stage, opt.Timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	step := "pulling " + opt.Image
	timedOut := func(err error) error {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return &TimeoutError{Stage: opt.Stage, Step: step, Limit: opt.Timeout}
		}
		return err
	}
	if err := pull(ctx, cli, opt); err != nil {
		return ExitSetup, timedOut(fmt.Errorf("%s: pull %s: %w", opt.Stage, opt.Image, err))
	}
	cmd := append([]string{serving.BinaryPath}, opt.Args...)
	if opt.Secrets != "" {
		cmd = append([]string{serving.BinaryPath, "secrets-exec", "--dir", secretsexec.Dir, "--"}, opt.Args...)
	}
	step = "creating the runner"
	created, err := cli.ContainerCreate(ctx, &container.Config{
		Image:      opt.Image,
		Entrypoint: cmd,
		Cmd:        []string{},
		WorkingDir: WorkDir,
		Env:        append([]string{"DOCKER_HOST=unix:///var/run/docker.sock"}, opt.Env...),
		Labels:     map[string]string{"modelship.role": "runner", "modelship.stage": opt.Stage},
	}, &container.HostConfig{
		NetworkMode: "host",
		Binds:       []string{opt.SocketPath + ":/var/run/docker.sock"},
	}, nil, nil, "")
	if err != nil {
		return ExitSetup, timedOut(fmt.Errorf("%s: creating the runner from %s: %w", opt.Stage, opt.Image, err))
	}
	defer func() {
		rm, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := cli.ContainerRemove(rm, created.ID, container.RemoveOptions{Force: true}); err != nil {
			fmt.Fprintf(opt.Stderr, "%s: removing the runner %.12s: %v\n", opt.Stage, created.ID, err)
		}
	}()
	step = "copying the config bundle and secrets in"
	if err := copyIn(ctx, cli, created.ID, opt.Bundle, filepath.Base(WorkDir)); err != nil {
		return ExitSetup, timedOut(fmt.Errorf("%s: copying the config bundle into the runner: %w", opt.Stage, err))
	}
	if err := copyIn(ctx, cli, created.ID, opt.Secrets, filepath.Base(secretsexec.Dir)); err != nil {
		// The error names the entry, never a value (tar headers only).
		return ExitSetup, timedOut(fmt.Errorf("%s: copying the secrets into the runner: %w", opt.Stage, err))
	}
	step = "modelship " + strings.Join(opt.Args, " ")
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		return ExitSetup, timedOut(fmt.Errorf("%s: starting the runner: %w", opt.Stage, err))
	}
	deadline, _ := ctx.Deadline()
	fmt.Fprintf(opt.Stderr, "%s: %s (container %.12s on the Docker host, up to %s)\n", opt.Stage, step, created.ID, time.Until(deadline).Round(time.Second))
	logs, err := cli.ContainerLogs(ctx, created.ID, container.LogsOptions{Follow: true, ShowStdout: true, ShowStderr: true})
	if err != nil {
		return ExitSetup, timedOut(fmt.Errorf("%s: reading the runner's output: %w", opt.Stage, err))
	}
	_, err = stdcopy.StdCopy(opt.Stdout, opt.Stderr, logs)
	logs.Close()
	if err != nil && ctx.Err() != nil {
		return ExitTimeout, timedOut(err)
	}
	waitC, errC := cli.ContainerWait(ctx, created.ID, container.WaitConditionNotRunning)
	select {
	case w := <-waitC:
		if w.Error != nil {
			return ExitSetup, fmt.Errorf("%s: waiting for the runner: %s", opt.Stage, w.Error.Message)
		}
		return int(w.StatusCode), nil
	case err := <-errC:
		if ctx.Err() != nil {
			return ExitTimeout, timedOut(err)
		}
		return ExitSetup, fmt.Errorf("%s: waiting for the runner: %w", opt.Stage, err)
	}
}

// pull pulls opt.Image on the host (with its own credentials), unless
// opt.Pull is "missing" and the host has it.
func pull(ctx context.Context, cli client.APIClient, opt Options) error {
	switch opt.Pull {
	case "missing":
		if _, err := cli.ImageInspect(ctx, opt.Image); err == nil {
			return nil
		}
	case "", "always":
	default:
		return fmt.Errorf("pull policy %q: expected always or missing", opt.Pull)
	}
	fmt.Fprintf(opt.Stderr, "%s: pulling %s on the Docker host\n", opt.Stage, opt.Image)
	rc, err := cli.ImagePull(ctx, opt.Image, image.PullOptions{})
	if err != nil {
		return err
	}
	defer rc.Close()
	return jsonmessage.DisplayJSONMessagesStream(rc, io.Discard, 0, false, nil)
}

// copyIn copies directory dir into the container's /tmp as /tmp/name.
func copyIn(ctx context.Context, cli client.APIClient, id, dir, name string) error {
	if dir == "" {
		return nil
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(filepath.Join(name, rel))
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if !fi.Mode().IsRegular() && !fi.IsDir() {
			return fmt.Errorf("%s: not a file or a directory", p)
		}
		if err := tw.WriteHeader(hdr); err != nil || fi.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return cli.CopyToContainer(ctx, id, "/tmp", &buf, container.CopyToContainerOptions{})
}
