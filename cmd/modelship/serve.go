package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/modelship/modelship/checkpoint"
	"github.com/modelship/modelship/internal/buildinfo"
	"github.com/modelship/modelship/internal/logging"
	"github.com/modelship/modelship/internal/serve"
	"github.com/modelship/modelship/serving"
)

func init() {
	register(command{name: "serve", summary: "container entrypoint: run vLLM (or sim) behind a draining proxy with /version and /ready", run: runServe})
}

// engineLookup returns the modelship executable for `--engine sim`; tests
// point it at a prebuilt binary.
var engineLookup = os.Executable

func runServe(ctx context.Context, args []string, s stdio) int {
	cfg, hashModel, err := serveConfig(args, os.Getenv, s.err)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		if !errors.Is(err, errFlagParse) {
			fmt.Fprintf(s.err, "modelship serve: %v\n", err)
		}
		return exitUsage
	}
	log, late := newServeLogger(s.err, cfg)
	cfg.Logger = log
	cfg.Stdout, cfg.Stderr = s.out, s.err // the engine's own logs pass through
	if hashModel {
		hash := modelDigest(log)
		cfg.Digest = func(ctx context.Context, path string) (string, error) {
			d, err := hash(ctx, path)
			if err == nil {
				late.Set(logging.KeyModelDigest, d)
			}
			return d, err
		}
	}
	err = serve.Run(ctx, cfg)
	var xe *serve.ExitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &xe):
		fmt.Fprintf(s.err, "modelship serve: %v\n", err)
		return xe.ExitCode()
	default:
		fmt.Fprintf(s.err, "modelship serve: %v\n", err)
		return exitFailed
	}
}

// errFlagParse marks a flag error the flag package has already printed.
var errFlagParse = errors.New("bad flags")

const serveUsage = `Usage: modelship serve [MODEL_PATH] [flags]

The serving container's entrypoint. Starts the engine on 127.0.0.1 (vLLM, or
modelship sim), and serves on the public port:
  /v1/...    the OpenAI API, proxied to the engine without buffering streams
  /health    the engine's /health (503 while the model loads)
  /ready     200 only when /health is 200, /v1/models lists the served model
             and a one-token generation succeeds; else 503 with a JSON reason
  /version   model digest, served name, image, git SHA, deploy time, versions
  /metrics   the engine's vllm:* metrics and this release's modelship_* series
The pre-stop hook, ` + "`modelship drain`" + `, runs in the container and drains
through --admin-socket: responses say "Connection: close" and /ready answers
503 until SIGTERM (or, if none comes, for 30s more; then ready again).
SIGTERM/SIGINT: stop accepting connections, let in-flight requests finish
(--drain-timeout), then signal the engine and kill it after --stop-timeout.
SIGHUP is forwarded. If the engine exits on its own, modelship exits with its
status (128+N if signal N killed it; 1 if it exited 0).

MODEL_PATH defaults to $MODEL_PATH, then /models/current.
Every setting comes from its flag, else its environment variable, else the
default (flag > env > default). The engine settings of modelship.yaml's
serving: section come from the environment below (the serving contract) and
become vLLM's flags: the engine starts as
  vllm serve MODEL_PATH --served-model-name NAME --host 127.0.0.1 --port P FLAGS...

Flags:
`

// serveConfig builds the serve settings: flags over environment (read with
// getenv) over defaults. hashModel is true when the model digest must be
// computed at startup.
func serveConfig(args []string, getenv func(string) string, stderr io.Writer) (cfg serve.Config, hashModel bool, err error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprint(w, serveUsage)
		fs.PrintDefaults()
		fmt.Fprintf(w, "\nEnvironment:\n")
		for _, e := range serve.Env {
			fmt.Fprintf(w, "  %-28s %s\n", e.Name, e.Help)
		}
	}
	cfg, envErr := serve.LoadEnv(getenv)
	var f serveFlags
	f.register(fs, &cfg, getenv)
	pos, err := parseFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return cfg, false, err
	}
	if err != nil {
		return cfg, false, errFlagParse
	}
	if envErr != nil {
		return cfg, false, fmt.Errorf("%v", envErr)
	}
	if err := f.apply(&cfg, pos); err != nil {
		return cfg, false, err
	}
	return cfg, cfg.ModelDigest == "" && !f.noDigest, nil
}

// serveFlags are serve's flags that are not set straight into the
// serve.Config.
type serveFlags struct {
	engine, engineCmd, name, deployedAt string
	noDigest                            bool
}

// register defines serve's flags on fs, with cfg (read from the
// environment) as their defaults.
func (f *serveFlags) register(fs *flag.FlagSet, cfg *serve.Config, getenv func(string) string) {
	fs.StringVar(&f.engine, "engine", cfg.Engine, "engine to run: vllm (`vllm serve`), sim (the same command line, run by modelship's simulator) or ollama (`ollama serve`, a GGUF checkpoint) [$MODELSHIP_ENGINE]")
	fs.StringVar(&f.engineCmd, "engine-cmd", serving.JoinWords(cfg.EngineCommand), "program that replaces `vllm serve` (or `ollama serve`), shell words, e.g. \"/opt/venv/bin/vllm serve\" [$MODELSHIP_ENGINE_CMD]")
	fs.StringVar(&f.name, "served-model-name", cfg.ServedModelName, "model name clients use and /ready expects in /v1/models; empty means the model path [$MODELSHIP_SERVED_MODEL_NAME]")
	fs.StringVar(&cfg.Host, "host", cfg.Host, "public address to listen on; empty means every interface")
	fs.IntVar(&cfg.Port, "port", cfg.Port, "public port serving the OpenAI API, /version and /ready [$PORT]")
	fs.IntVar(&cfg.EnginePort, "engine-port", cfg.EnginePort, "engine port on 127.0.0.1; 0 picks a free one [$MODELSHIP_ENGINE_PORT]")
	cfg.AdminSocket = serving.AdminSocket
	if v := getenv("MODELSHIP_ADMIN_SOCKET"); v != "" {
		cfg.AdminSocket = v
	}
	fs.StringVar(&cfg.AdminSocket, "admin-socket", cfg.AdminSocket, "unix socket for the pre-stop drain (`modelship drain`), never on the network; empty serves none [$MODELSHIP_ADMIN_SOCKET]")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", cfg.DrainTimeout, "on SIGTERM, how long in-flight requests may finish before the engine is stopped anyway")
	fs.DurationVar(&cfg.StopTimeout, "stop-timeout", cfg.StopTimeout, "after signalling the engine, how long it gets to exit before it is killed")
	fs.StringVar(&cfg.ModelDigest, "model-digest", cfg.ModelDigest, "model digest (sha256:...) for /version; empty means hash the checkpoint in the background [$MODELSHIP_MODEL_DIGEST]")
	fs.BoolVar(&f.noDigest, "no-digest", false, "do not hash the checkpoint when --model-digest is empty (/version reports digest_status unknown)")
	fs.StringVar(&cfg.Image, "image", cfg.Image, "image reference for /version [$MODELSHIP_IMAGE]")
	fs.StringVar(&cfg.ImageDigest, "image-digest", cfg.ImageDigest, "image digest for /version [$MODELSHIP_IMAGE_DIGEST]")
	fs.StringVar(&cfg.GitSHA, "git-sha", cfg.GitSHA, "git commit for /version [$MODELSHIP_GIT_SHA]")
	fs.StringVar(&f.deployedAt, "deployed-at", formatTime(cfg.DeployedAt), "deploy time for /version, RFC 3339; empty means the process start time [$MODELSHIP_DEPLOYED_AT]")
}

// apply sets into cfg the flags that need parsing and the positional
// MODEL_PATH, then checks cfg.
func (f *serveFlags) apply(cfg *serve.Config, pos []string) error {
	switch len(pos) {
	case 0:
	case 1:
		cfg.ModelPath = pos[0]
	default:
		return fmt.Errorf("want at most one MODEL_PATH, got %q", pos)
	}
	cfg.Engine, cfg.ServedModelName = f.engine, f.name
	var err error
	if cfg.EngineCommand, err = serving.SplitWords(f.engineCmd); err != nil {
		return fmt.Errorf("--engine-cmd: %v", err)
	}
	cfg.DeployedAt = time.Time{}
	if f.deployedAt != "" {
		if cfg.DeployedAt, err = time.Parse(time.RFC3339, f.deployedAt); err != nil {
			return fmt.Errorf("--deployed-at %q: want an RFC 3339 time such as 2025-01-02T15:04:05Z", f.deployedAt)
		}
	}
	if cfg.Engine == serve.EngineSim && len(cfg.EngineCommand) == 0 {
		if cfg.Self, err = engineLookup(); err != nil {
			return fmt.Errorf("find the modelship executable to run sim: %v", err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%v", err)
	}
	return nil
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339)
}

// newServeLogger is serve's logger (internal/logging): text on a terminal,
// else ECS JSON as service.name "modelship-serve", with the release id,
// model digest, image and image digest on every line (each once known: a
// digest hashed at startup joins from the line that reports it, through
// the returned Fields) and serve's own keys under modelship.serve.*. The API
// key and the Hugging Face token are redacted.
func newServeLogger(w io.Writer, cfg serve.Config) (*slog.Logger, *logging.Fields) {
	attrs := logging.ReleaseAttrs(cfg.ReleaseID, cfg.ModelDigest, cfg.Image, cfg.ImageDigest)
	late := &logging.Fields{}
	return logging.New(w, logging.Options{Service: "modelship-serve", Version: buildinfo.Version, Attrs: attrs, Fields: late,
		Namespace: "modelship.serve", Redactor: logging.NewRedactor(cfg.APIKey, os.Getenv(serving.EnvHFToken))}), late
}

// modelDigest hashes the checkpoint with the digest cache in the user cache
// directory (a cache that cannot be opened only costs time). Two workers keep
// the hashing from starving the engine's own loading.
func modelDigest(log *slog.Logger) func(ctx context.Context, path string) (string, error) {
	return func(ctx context.Context, path string) (string, error) {
		cache, err := checkpoint.OpenDigestCache("")
		if err != nil {
			log.Warn("digest cache unavailable; hashing every file", "err", err)
			cache = nil
		}
		info, err := checkpoint.Inspect(ctx, path, checkpoint.Options{Hash: true, Cache: cache, Workers: 2})
		if err != nil {
			return "", err
		}
		return info.Digest, nil
	}
}
