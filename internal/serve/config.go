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
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/modelship/modelship/serving"
)

// Engines Run can start.
const (
	EngineVLLM = serving.EngineVLLM // vllm serve MODEL ...
	EngineSim  = serving.EngineSim  // the same argv, run by modelship's simulator
	// EngineOllama runs `ollama serve` and makes the GGUF checkpoint an
	// Ollama model (serving.EngineOllama).
	EngineOllama = serving.EngineOllama
)

// Config is everything Run needs. Build it with Default or LoadEnv and
// override fields from flags.
type Config struct {
	// Engine is EngineVLLM or EngineSim.
	Engine string
	// EngineCommand replaces the program that starts vLLM (`vllm serve`),
	// e.g. ["/opt/venv/bin/vllm", "serve"]; the checkpoint and the flags
	// follow it. Empty: `vllm` from PATH for engine vllm, and for sim this
	// modelship binary (Self) run with argv[0] "vllm", so that both engines
	// get the same command line.
	EngineCommand []string
	// Self is the modelship executable, which runs the simulator when
	// started as "vllm".
	Self string
	// ModelPath is the checkpoint directory or file given to the engine.
	ModelPath string
	// ServedModelName is the model name clients use and /ready expects in
	// /v1/models; empty means ModelPath, as vLLM does.
	ServedModelName string
	// ServedAliases are further names the engine serves the model under.
	ServedAliases []string
	// Settings are the engine settings of the serving contract; each set
	// one becomes a vLLM flag (serving.Settings.Flags).
	Settings serving.Settings
	// EngineEnv is added to the engine's environment (KEY=VALUE).
	EngineEnv []string
	// APIKey, when set, is required on /v1/ routes (serving.EnvAPIKey): the
	// proxy checks it; the engine, on loopback, never sees it.
	APIKey string
	// AdminToken, when set, opens the rollout endpoint (RoutePath) to the
	// deployer that sends it (serving.EnvAdminToken); unset, the endpoint
	// answers 404. Like APIKey it is never logged, never in /version, and
	// the engine never sees it.
	AdminToken string

	// Host and Port are the public address the proxy listens on; Host ""
	// means every interface. Listener, when set, is used instead.
	Host     string
	Port     int
	Listener net.Listener
	// EnginePort is the engine's port on 127.0.0.1; 0 picks a free one.
	EnginePort int
	// AdminSocket is the unix socket serving the drain endpoint
	// (serving.DrainPath) for the pre-stop hook; "" serves none. It is
	// never on the public port: one request there would empty a Service.
	AdminSocket string
	// DrainHold bounds a drain that no shutdown follows: after the drain's
	// wait plus DrainHold without SIGTERM, serve is ready again (0: 30s).
	DrainHold time.Duration

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
	ReleaseID   string    // the deploy's release id (logs, metrics); "" outside a deploy

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
		ModelPath:        serving.ModelDir,
		Port:             serving.Port,
		EnginePort:       serving.EnginePort,
		DrainTimeout:     30 * time.Second,
		StopTimeout:      15 * time.Second,
		ReadyTTL:         5 * time.Second,
		ProgressInterval: 5 * time.Second,
	}
}

// Env lists the environment variables LoadEnv reads and what each sets;
// the engine settings' variables are the serving contract's (serving.Env).
var Env = func() []struct{ Name, Help string } {
	env := []struct{ Name, Help string }{
		{serving.EnvModelPath, "checkpoint path (default " + serving.ModelDir + ")"},
		{serving.EnvEngine, "engine: vllm or sim"},
		{"MODELSHIP_ENGINE_CMD", "program that replaces `vllm serve`, shell words"},
		{serving.EnvServedName, "model name served in the API"},
		{serving.EnvServedAliases, "further names of the model, shell words"},
	}
	names := serving.EnvNames()
	for _, k := range serving.Keys() {
		for name, key := range names {
			if key == k {
				env = append(env, struct{ Name, Help string }{name, "serving." + k + " (the engine flag it becomes)"})
			}
		}
	}
	return append(env, []struct{ Name, Help string }{
		{serving.EnvAPIKey, "API key clients must send on /v1/ routes (Bearer, or an api-key header); never passed to the engine"},
		{serving.EnvAdminToken, "token the deployer must send (" + serving.HeaderAdminToken + ") to set this replica's rollout route; unset: no rollout endpoint; never passed to the engine"},
		{serving.EnvSimArgs, "the simulator's own options (latency, faults), shell words; engine sim only"},
		{serving.EnvPort, "public port"},
		{"MODELSHIP_ENGINE_PORT", "engine port on 127.0.0.1"},
		{serving.EnvModelDigest, "model digest for /version (computed when empty)"},
		{serving.EnvImage, "image reference for /version"},
		{serving.EnvImageDigest, "image digest for /version"},
		{serving.EnvGitSHA, "git commit for /version"},
		{serving.EnvDeployedAt, "deploy time for /version, RFC 3339 (default: start time)"},
		{serving.EnvReleaseID, "the deploy's release id, on every log line and metric"},
	}...)
}()

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
		w, err := serving.SplitWords(v)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", name, err))
			return
		}
		*dst = w
	}
	str(serving.EnvModelPath, &c.ModelPath)
	str(serving.EnvEngine, &c.Engine)
	words("MODELSHIP_ENGINE_CMD", &c.EngineCommand)
	str(serving.EnvServedName, &c.ServedModelName)
	words(serving.EnvServedAliases, &c.ServedAliases)
	settings, err := serving.FromEnv(getenv)
	if err != nil {
		errs = append(errs, err.Error())
	}
	c.Settings = settings
	c.APIKey = getenv(serving.EnvAPIKey) // as given: a key may have any bytes
	c.AdminToken = getenv(serving.EnvAdminToken)
	num(serving.EnvPort, &c.Port, 0, "a TCP port number")
	num("MODELSHIP_ENGINE_PORT", &c.EnginePort, 0, "a TCP port number")
	str(serving.EnvModelDigest, &c.ModelDigest)
	str(serving.EnvImage, &c.Image)
	str(serving.EnvImageDigest, &c.ImageDigest)
	str(serving.EnvGitSHA, &c.GitSHA)
	str(serving.EnvReleaseID, &c.ReleaseID)
	if v := strings.TrimSpace(getenv(serving.EnvDeployedAt)); v != "" {
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
	case EngineVLLM, EngineSim, EngineOllama:
	default:
		return fmt.Errorf("engine %q: want %q, %q or %q", c.Engine, EngineVLLM, EngineSim, EngineOllama)
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

// Command is the program to execute and the command line (argv[0]
// first) that starts the engine on 127.0.0.1:c.EnginePort: the serving
// contract's `vllm serve MODEL --served-model-name NAME --host 127.0.0.1
// --port P FLAGS...` for vllm and sim. For sim the program is this
// modelship binary, which runs the simulator when argv[0] is "vllm". For
// ollama it is `ollama serve` (EngineCommand replaces it whole), whose
// address and settings are its environment (serving.OllamaEnv). It is
// pure: the same Config always gives the same command.
func Command(c Config) (program string, argv []string) {
	if c.Engine == EngineOllama {
		// Its settings are the Modelfile's and the environment's.
		argv = slices.Clone(serving.OllamaProgram)
		if len(c.EngineCommand) > 0 {
			argv = slices.Clone(c.EngineCommand)
		}
		return argv[0], argv
	}
	argv = c.Settings.Argv(c.ModelPath, append([]string{c.servedName()}, c.ServedAliases...), "127.0.0.1", c.EnginePort)
	switch {
	case len(c.EngineCommand) > 0:
		argv = append(slices.Clone(c.EngineCommand), argv[len(serving.VLLMProgram):]...)
		return argv[0], argv
	case c.Engine == EngineSim:
		return c.Self, argv
	default:
		return argv[0], argv
	}
}
