package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/client"

	"github.com/modelship/modelship/internal/hostrun"
	"github.com/modelship/modelship/internal/secretsexec"
	"github.com/modelship/modelship/internal/smoke"
	"github.com/modelship/modelship/internal/waitready"
)

// The commands the pipeline (ci/) runs around the stages: the Docker-host
// runner, the secrets hand-over in it, and the wait for a model service.
func init() {
	register(command{name: "host-run", summary: "run a modelship command in a short-lived container on a Docker host (the pipeline's Docker deploy stages)", run: runHostRun})
	register(command{name: "secrets-exec", summary: "hand a stage the secrets copied into its container (env: and file: references), then run it", run: runSecretsExec})
	register(command{name: "wait-ready", summary: "wait until a model service is ready (smoke test passes), saying every 10s why it is not", run: runWaitReady})
}

func runHostRun(ctx context.Context, args []string, s stdio) int {
	fs := flag.NewFlagSet("host-run", flag.ContinueOnError)
	fs.SetOutput(s.err)
	opt := hostrun.Options{Stdout: s.out, Stderr: s.err}
	fs.StringVar(&opt.Image, "image", "", "serving `image` whose modelship runs the command (required)")
	fs.StringVar(&opt.Stage, "stage", "host-run", "stage `name` for messages and the runner's modelship.stage label")
	fs.StringVar(&opt.Bundle, "bundle", "", "`directory` copied to the runner's working directory "+hostrun.WorkDir+" (the config and the files it names)")
	fs.StringVar(&opt.Secrets, "secrets", "", "`directory` of secrets (env/NAME, file/PATH) applied in the runner by modelship secrets-exec")
	fs.StringVar(&opt.SocketPath, "socket-path", "/var/run/docker.sock", "the Docker engine's socket `path` on the host, bound into the runner")
	fs.StringVar(&opt.Pull, "pull", "always", "`policy`: always pull the image on the host, or only when missing")
	fs.DurationVar(&opt.Timeout, "timeout", 30*time.Minute, "bound on the whole run (pull, create, run), a Go duration; past it exit 124 naming the step")
	fs.Func("env", "`NAME=VALUE` set in the runner (repeatable)", func(v string) error {
		if name, _, ok := strings.Cut(v, "="); !ok || name == "" {
			return fmt.Errorf("expected NAME=VALUE")
		}
		opt.Env = append(opt.Env, v)
		return nil
	})
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: modelship host-run --image IMAGE [flags] -- ARGS...

Runs modelship ARGS from IMAGE in a container on the Docker engine that
DOCKER_HOST names (default the socket at /var/run/docker.sock), with the
host's network and that engine's socket: pulls the image, creates the
container (label modelship.role=runner), copies --bundle into its working
directory and --secrets in as files, starts it, streams its stdout and
stderr here, waits, and removes it.

Exit codes: the command's own; 124 past --timeout (the message names the
step that hung); 125 the image could not be pulled or the runner made; 2 usage.

Flags:
`)
		fs.PrintDefaults()
	}
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if opt.Image == "" || len(pos) == 0 {
		fmt.Fprintln(s.err, "modelship host-run: --image and the command (after --) are required")
		return exitUsage
	}
	opt.Args = pos
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		fmt.Fprintf(s.err, "modelship host-run: %v\n", err)
		return hostrun.ExitSetup
	}
	defer cli.Close()
	status, err := hostrun.Run(ctx, cli, opt)
	var te *hostrun.TimeoutError
	switch {
	case errors.As(err, &te):
		fmt.Fprintln(s.err, err)
		return hostrun.ExitTimeout
	case err != nil:
		fmt.Fprintln(s.err, err)
	}
	return status
}

func runSecretsExec(ctx context.Context, args []string, s stdio) int {
	fs := flag.NewFlagSet("secrets-exec", flag.ContinueOnError)
	fs.SetOutput(s.err)
	dir := fs.String("dir", secretsexec.Dir, "`directory` of secrets: env/NAME becomes the variable NAME, file/PATH the file /PATH (mode 0600); deleted before ARGS run")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: modelship secrets-exec [--dir DIR] -- ARGS...\n\nApplies the secrets in DIR, deletes it, then runs modelship ARGS in this process.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		fmt.Fprintln(s.err, "modelship secrets-exec: the command to run (after --) is required")
		return exitUsage
	}
	env, err := secretsexec.Apply(*dir, "/")
	if err != nil {
		fmt.Fprintf(s.err, "modelship secrets-exec: %v\n", err)
		return exitUsage
	}
	self, err := os.Executable()
	if err == nil {
		err = syscall.Exec(self, append([]string{"modelship"}, pos...), append(os.Environ(), env...))
	}
	fmt.Fprintf(s.err, "modelship secrets-exec: running modelship: %v\n", err)
	return exitFailed
}

func runWaitReady(ctx context.Context, args []string, s stdio) int {
	fs := flag.NewFlagSet("wait-ready", flag.ContinueOnError)
	fs.SetOutput(s.err)
	endpoint := fs.String("endpoint", "", "base `URL` of the model service, e.g. http://model:8000 (required)")
	var opt smoke.Options
	fs.StringVar(&opt.Model, "model", "", "served model `name` /v1/models must list (default: the first one listed)")
	fs.DurationVar(&opt.Timeout, "check-timeout", 10*time.Second, "bound on one check (a smoke test: the model listed, one generation)")
	budget := fs.Duration("timeout", 10*time.Minute, "bound on the whole wait; past it exit 124 with the last check's reason")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: modelship wait-ready --endpoint URL [--model NAME] [--timeout 10m]

Runs modelship smoke's checks against the endpoint every second until they
pass. Every 10 seconds it says on stderr how long it has waited and why the
service is not ready; past --timeout it exits 124 with the last check's
reason, so a service that cannot be reached ends the stage with that reason.

Exit codes: 0 ready, 124 not ready within --timeout, 2 usage.

Flags:
`)
		fs.PrintDefaults()
	}
	if _, code, ok := parseArgs(fs, args); !ok {
		return code
	}
	if _, err := smoke.ParseEndpoint(*endpoint); err != nil {
		fmt.Fprintf(s.err, "modelship wait-ready: --endpoint: %v\n", err)
		return exitUsage
	}
	check := func(ctx context.Context) error {
		res, err := smoke.Run(ctx, *endpoint, opt)
		if err != nil {
			return err
		}
		if failed := res.Failed(); len(failed) > 0 {
			return fmt.Errorf("%s: %s", failed[0].Name, failed[0].Detail)
		}
		return nil
	}
	err := waitready.Wait(ctx, check, waitready.Options{What: *endpoint, Budget: *budget, Log: s.err})
	switch {
	case waitready.IsTimeout(err):
		fmt.Fprintln(s.err, err)
		return 124
	case err != nil:
		fmt.Fprintf(s.err, "modelship wait-ready: %v\n", err)
		return exitFailed
	}
	return exitOK
}
