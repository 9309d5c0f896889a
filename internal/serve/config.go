// Package serve is the entrypoint of the serving container: it starts the
// inference engine (vLLM, or the modelship simulator) as a child process,
// proxies the OpenAI API to it without buffering streams, adds GET /version
// and GET /ready, forwards signals, drains in-flight requests on SIGTERM
// before stopping the engine, and exits when the engine dies so that Docker
// or Kubernetes sees the failure.
//
// Settings come from flags, then environment variables, then defaults
// (flag > env > default): LoadEnv applies the environment over Default, and
// the command's flags, whose defaults are LoadEnv's result, override both.
package serve

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Engines Run can start.
const (
	EngineVLLM = "vllm" // python3 -m vllm.entrypoints.openai.api_server
	EngineSim  = "sim"  // modelship sim, the CPU simulator
)

// DefaultVLLMCommand is the command that starts vLLM's OpenAI server; the
// engine arguments follow it.
var DefaultVLLMCommand = []string{"python3", "-m", "vllm.entrypoints.openai.api_server"}

// Config is everything Run needs. Build it with Default or LoadEnv and
// override fields from flags.
type Config struct {
	// Engine is EngineVLLM or EngineSim.
	Engine string
	// EngineCommand replaces the program that starts the engine (for vllm
	// DefaultVLLMCommand; for sim [Self, "sim"]). The engine arguments are
	// appended to it.
	EngineCommand []string
	// Self is the modelship executable, re-executed as `Self sim ...` for the
	// sim engine.
	Self string
	// ModelPath is the checkpoint directory or file given to the engine.
	ModelPath string
	// ServedModelName is the model name clients use and /ready expects in
	// /v1/models; empty means ModelPath, as vLLM does.
	ServedModelName string
	// MaxModelLen, GPUMemoryUtilization and TensorParallelSize are passed to
	// the engine when non-zero; zero leaves the engine's own default.
	MaxModelLen          int
	GPUMemoryUtilization float64
	TensorParallelSize   int
	// EngineArgs are extra engine arguments appended last.
	EngineArgs []string
	// EngineEnv is added to the engine's environment (KEY=VALUE).
	EngineEnv []string

	// Host and Port are the public address the proxy listens on; Host ""
	// means every interface. Listener, when set, is used instead.
	Host     string
	Port     int
	Listener net.Listener
	// EnginePort is the engine's port on 127.0.0.1; 0 picks a free one.
	EnginePort int

	// DrainTimeout bounds how long in-flight requests may run after SIGTERM
	// before the engine is stopped anyway.
	DrainTimeout time.Duration
	// StopTimeout is how long the engine gets to exit after SIGTERM before
	// it is killed.
	StopTimeout time.Duration
	// ReadyTTL is how long a successful readiness check is reused.
	ReadyTTL time.Duration
	// ProgressInterval is how often "waiting for engine" is logged.
	ProgressInterval time.Duration

	// Provenance reported by GET /version.
	ModelDigest string // "sha256:..."; empty means compute it with Digest
	Image       string
	ImageDigest string
	GitSHA      string
	DeployedAt  time.Time // zero means the process start time

	// Digest computes the model digest in the background when ModelDigest is
	// empty; nil leaves the digest unknown.
	Digest func(ctx context.Context, path string) (string, error)
	// Signals delivers the signals Run acts on; nil means Run subscribes to
	// SIGINT, SIGTERM and SIGHUP itself. Tests send on their own channel.
	Signals <-chan os.Signal
	// Stdout and Stderr receive the engine's output; nil means os.Stdout and
	// os.Stderr.
	Stdout, Stderr io.Writer
	// Logger receives modelship's own logs; nil means slog.Default().
	Logger *slog.Logger
}

// Default returns the settings used when neither flags nor environment say
// otherwise: engine vllm, model /models/current, public port 8000, engine
// port 8001, 30s drain, 15s stop timeout.
func Default() Config {
	return Config{
		Engine:           EngineVLLM,
		ModelPath:        "/models/current",
		Port:             8000,
		EnginePort:       8001,
		DrainTimeout:     30 * time.Second,
		StopTimeout:      15 * time.Second,
		ReadyTTL:         5 * time.Second,
		ProgressInterval: 5 * time.Second,
	}
}

// Env lists the environment variables LoadEnv reads and what each sets.
var Env = []struct{ Name, Help string }{
	{"MODEL_PATH", "checkpoint path (default /models/current)"},
	{"MODELSHIP_ENGINE", "engine: vllm or sim"},
	{"MODELSHIP_ENGINE_CMD", "command that starts the engine, shell words"},
	{"MODELSHIP_SERVED_MODEL_NAME", "model name served in the API"},
	{"MAX_MODEL_LEN", "engine --max-model-len"},
	{"GPU_MEMORY_UTILIZATION", "engine --gpu-memory-utilization (0 < f <= 1)"},
	{"TENSOR_PARALLEL_SIZE", "engine --tensor-parallel-size"},
	{"MODELSHIP_ENGINE_ARGS", "extra engine arguments, shell words"},
	{"PORT", "public port"},
	{"MODELSHIP_ENGINE_PORT", "engine port on 127.0.0.1"},
	{"MODELSHIP_MODEL_DIGEST", "model digest for /version (computed when empty)"},
	{"MODELSHIP_IMAGE", "image reference for /version"},
	{"MODELSHIP_IMAGE_DIGEST", "image digest for /version"},
	{"MODELSHIP_GIT_SHA", "git commit for /version"},
	{"MODELSHIP_DEPLOYED_AT", "deploy time for /version, RFC 3339 (default: start time)"},
}

// LoadEnv returns Default overridden by the environment variables listed in
// Env, read with getenv (os.Getenv in production). An empty variable counts
// as unset. A malformed value is an error naming the variable and what was
// expected.
func LoadEnv(getenv func(string) string) (Config, error) {
	c := Default()
	str := func(name string, dst *string) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			*dst = v
		}
	}
	var errs []string
	num := func(name string, dst *int, min int, what string) {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < min {
			errs = append(errs, fmt.Sprintf("%s=%q: want %s", name, v, what))
			return
		}
		*dst = n
	}
	words := func(name string, dst *[]string) {
		v := getenv(name)
		if strings.TrimSpace(v) == "" {
			return
		}
		w, err := SplitWords(v)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", name, err))
			return
		}
		*dst = w
	}
	str("MODEL_PATH", &c.ModelPath)
	str("MODELSHIP_ENGINE", &c.Engine)
	words("MODELSHIP_ENGINE_CMD", &c.EngineCommand)
	str("MODELSHIP_SERVED_MODEL_NAME", &c.ServedModelName)
	num("MAX_MODEL_LEN", &c.MaxModelLen, 1, "a positive whole number of tokens")
	if v := strings.TrimSpace(getenv("GPU_MEMORY_UTILIZATION")); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f > 0 && f <= 1) {
			errs = append(errs, fmt.Sprintf("GPU_MEMORY_UTILIZATION=%q: want a fraction in (0, 1], e.g. 0.9", v))
		} else {
			c.GPUMemoryUtilization = f
		}
	}
	num("TENSOR_PARALLEL_SIZE", &c.TensorParallelSize, 1, "a positive number of GPUs")
	words("MODELSHIP_ENGINE_ARGS", &c.EngineArgs)
	num("PORT", &c.Port, 0, "a TCP port number")
	num("MODELSHIP_ENGINE_PORT", &c.EnginePort, 0, "a TCP port number")
	str("MODELSHIP_MODEL_DIGEST", &c.ModelDigest)
	str("MODELSHIP_IMAGE", &c.Image)
	str("MODELSHIP_IMAGE_DIGEST", &c.ImageDigest)
	str("MODELSHIP_GIT_SHA", &c.GitSHA)
	if v := strings.TrimSpace(getenv("MODELSHIP_DEPLOYED_AT")); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			errs = append(errs, fmt.Sprintf("MODELSHIP_DEPLOYED_AT=%q: want an RFC 3339 time such as 2025-01-02T15:04:05Z", v))
		} else {
			c.DeployedAt = t
		}
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("environment: %s", strings.Join(errs, "; "))
	}
	return c, nil
}

// Validate reports the first setting Run cannot work with.
func (c *Config) Validate() error {
	switch c.Engine {
	case EngineVLLM, EngineSim:
	default:
		return fmt.Errorf("engine %q: want %q or %q", c.Engine, EngineVLLM, EngineSim)
	}
	if c.ModelPath == "" {
		return fmt.Errorf("model path is empty")
	}
	if c.Engine == EngineSim && len(c.EngineCommand) == 0 && c.Self == "" {
		return fmt.Errorf("engine sim needs the modelship executable (Self) or an engine command")
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"port", c.Port}, {"engine port", c.EnginePort}} {
		if p.v < 0 || p.v > 65535 {
			return fmt.Errorf("%s %d: want 0-65535", p.name, p.v)
		}
	}
	if c.Listener == nil && c.Port != 0 && c.Port == c.EnginePort {
		return fmt.Errorf("port and engine port are both %d: they must differ", c.Port)
	}
	if c.MaxModelLen < 0 {
		return fmt.Errorf("max model len %d: want a positive number of tokens", c.MaxModelLen)
	}
	if c.GPUMemoryUtilization < 0 || c.GPUMemoryUtilization > 1 {
		return fmt.Errorf("gpu memory utilization %g: want a fraction in (0, 1]", c.GPUMemoryUtilization)
	}
	if c.TensorParallelSize < 0 {
		return fmt.Errorf("tensor parallel size %d: want a positive number of GPUs", c.TensorParallelSize)
	}
	if c.DrainTimeout < 0 || c.StopTimeout < 0 {
		return fmt.Errorf("drain and stop timeouts must not be negative")
	}
	return nil
}

// servedName is the name the engine serves the model under.
func (c *Config) servedName() string {
	if c.ServedModelName != "" {
		return c.ServedModelName
	}
	return c.ModelPath
}

// EngineArgs returns the full command line (program first) that starts the
// engine on 127.0.0.1:c.EnginePort. It is pure: the same Config always gives
// the same argv.
//
//	vllm: python3 -m vllm.entrypoints.openai.api_server --model PATH --served-model-name NAME
//	      --host 127.0.0.1 --port P [--max-model-len N] [--gpu-memory-utilization F]
//	      [--tensor-parallel-size N] [extra...]
//	sim:  SELF sim PATH --served-model-name NAME --host 127.0.0.1 --port P [same optional flags] [extra...]
func EngineArgs(c Config) []string {
	var argv []string
	switch {
	case len(c.EngineCommand) > 0:
		argv = append(argv, c.EngineCommand...)
	case c.Engine == EngineSim:
		argv = append(argv, c.Self, "sim")
	default:
		argv = append(argv, DefaultVLLMCommand...)
	}
	if c.Engine == EngineSim {
		argv = append(argv, c.ModelPath)
	} else {
		argv = append(argv, "--model", c.ModelPath)
	}
	argv = append(argv,
		"--served-model-name", c.servedName(),
		"--host", "127.0.0.1",
		"--port", strconv.Itoa(c.EnginePort))
	if c.MaxModelLen > 0 {
		argv = append(argv, "--max-model-len", strconv.Itoa(c.MaxModelLen))
	}
	if c.GPUMemoryUtilization > 0 {
		argv = append(argv, "--gpu-memory-utilization", strconv.FormatFloat(c.GPUMemoryUtilization, 'f', -1, 64))
	}
	if c.TensorParallelSize > 0 {
		argv = append(argv, "--tensor-parallel-size", strconv.Itoa(c.TensorParallelSize))
	}
	return append(argv, c.EngineArgs...)
}
