// Package serving is the serving contract: what a modelship serving image
// is (its labels, environment names, paths and port, the pinned engine
// images) and how the `serving:` section of modelship.yaml becomes the
// engine's command line.
//
// Every stage starts the engine from this one package: `modelship serve`
// turns Settings into vLLM's argv with Argv, the Dagger module bakes
// Settings into the image's environment and labels, and the deploy targets
// set an environment's Settings on the containers they start. vLLM's own
// flags and startup refusals are recorded as data (vllm.json, read by
// VLLM), so that `modelship config check` and the simulator refuse exactly
// what vLLM would.
//
// The package depends on the standard library only, so the Dagger module
// (a Go module of its own) imports it too.
package serving

import "strings"

// The serving image's layout.
const (
	// Port is the public port of `modelship serve` in every serving image.
	Port = 8000
	// EnginePort is the engine's port on 127.0.0.1 behind the proxy.
	EnginePort = 8001
	// ModelDir is where a serving image keeps the checkpoint.
	ModelDir = "/models/current"
	// BinaryPath is where the modelship binary sits in a serving image.
	BinaryPath = "/usr/local/bin/modelship"
	// DefaultServedName is the model id clients send when none is configured.
	DefaultServedName = "current"
	// AdminSocket is the unix socket of `modelship serve`'s admin endpoints
	// (the pre-stop drain), inside the container only: nothing on the
	// network can drain a replica. `modelship drain` talks to it.
	AdminSocket = "/tmp/modelship-serve.sock"
	// DrainPath is the drain endpoint on the admin socket.
	DrainPath = "/-/drain"
)

// Labels of a serving image, beside the OCI ones.
const (
	// LabelModelDigest is the checkpoint's content digest (sha256:...).
	LabelModelDigest = "modelship.model-digest"
	// LabelEngine is the engine the image runs: vllm or sim.
	LabelEngine = "modelship.engine"
	// LabelBinary is the path of the modelship binary in the image.
	LabelBinary = "modelship.binary"
	// LabelHealthcheck is the image's health check, Docker's HEALTHCHECK CMD
	// form as JSON (OCI configs have no HEALTHCHECK field).
	LabelHealthcheck = "modelship.healthcheck"
	// LabelSettings is the engine's command line after `vllm serve MODEL`
	// with the settings baked into the image (JSON list of strings): what
	// `docker inspect` shows of how the engine will start.
	LabelSettings = "modelship.engine-flags"
	// LabelRevision is the git commit the image was built from.
	LabelRevision = "org.opencontainers.image.revision"
)

// Environment variables `modelship serve` reads in a serving container.
const (
	EnvModelPath  = "MODEL_PATH"
	EnvEngine     = "MODELSHIP_ENGINE"
	EnvServedName = "MODELSHIP_SERVED_MODEL_NAME"
	// EnvServedAliases are further served names (shell words).
	EnvServedAliases = "MODELSHIP_SERVED_MODEL_ALIASES"
	EnvModelDigest   = "MODELSHIP_MODEL_DIGEST"
	EnvPort          = "PORT"
	EnvGitSHA        = "MODELSHIP_GIT_SHA"
	EnvImage         = "MODELSHIP_IMAGE"
	EnvImageDigest   = "MODELSHIP_IMAGE_DIGEST"
	EnvDeployedAt    = "MODELSHIP_DEPLOYED_AT"
	// EnvReleaseID is the deploy's release id: on every log line and metric.
	EnvReleaseID = "MODELSHIP_RELEASE_ID"
	// EnvSimArgs are the simulator's own options (latency, faults) as shell
	// words; vLLM's command line has no room for them.
	EnvSimArgs = "MODELSHIP_SIM_ARGS"
)

// Secrets of a serving container: never baked into an image, never in a
// label or a report; a deploy sets them (Docker: the container's
// environment; Kubernetes: a Secret the pod reads through secretKeyRef).
const (
	// EnvAPIKey is the key clients must send on /v1/ routes, as
	// "Authorization: Bearer KEY" (or "api-key: KEY", the header that
	// passes the Kubernetes API server's service proxy). vLLM reads the same
	// variable; in a serving image `modelship serve` checks it in front of
	// the engine, which listens on loopback only and is started without it.
	EnvAPIKey = "VLLM_API_KEY"
	// EnvHFToken is the Hugging Face token the engine uses for gated
	// repositories (a tokenizer or a chat template it fetches).
	EnvHFToken = "HF_TOKEN"
	// EnvAdminToken is the token `modelship serve` asks of the deployer on
	// its rollout endpoint (serve.RoutePath, header HeaderAdminToken):
	// on Kubernetes, where the deployer reaches each pod through the API
	// server's pod proxy to mirror requests or keep a sticky header's
	// requests on one version. Unset: the endpoint is off. The engine is
	// started without it.
	EnvAdminToken = "MODELSHIP_ADMIN_TOKEN"
	// HeaderAdminToken carries EnvAdminToken's value.
	HeaderAdminToken = "X-Modelship-Admin-Token"
	// HeaderAPIKey carries the API key where Authorization cannot (the
	// Kubernetes API server's service proxy consumes Authorization).
	HeaderAPIKey = "Api-Key"
)

// BearerToken is the token of an "Authorization: Bearer TOKEN" header
// value (the scheme in any case); ok is false for any other value.
func BearerToken(authorization string) (token string, ok bool) {
	const scheme = "Bearer "
	if len(authorization) <= len(scheme) || !strings.EqualFold(authorization[:len(scheme)], scheme) {
		return "", false
	}
	return authorization[len(scheme):], true
}

// Engines.
const (
	// EngineVLLM serves on GPUs with vLLM.
	EngineVLLM = "vllm"
	// EngineSim serves on the CPU with `modelship sim`, which takes vLLM's
	// command line and refuses what vLLM refuses.
	EngineSim = "sim"
)

// Engines lists the engines a serving image may run.
var Engines = []string{EngineVLLM, EngineSim, EngineOllama}

// VLLMProgram is how a serving image starts vLLM: `vllm serve MODEL
// FLAGS...`. The simulator is started with the same argv (its argv[0] is
// "vllm"), so a CPU run executes exactly the command line a GPU server would.
var VLLMProgram = []string{"vllm", "serve"}

// DefaultBaseImage is the base of the simulator's serving image.
const DefaultBaseImage = "debian:bookworm-slim"

// VLLMImage is the pinned vLLM image, the release whose flags and startup
// rules vllm.json records.
func VLLMImage() string { return VLLM().Image }

// Contract is what the serving contract makes of a config's serving
// section, as `modelship config serving` prints it (JSON) and the Dagger
// module reads it to build images.
type Contract struct {
	Engine     string   `json:"engine"`
	Image      string   `json:"image"`
	ServedName string   `json:"served_name"`
	Aliases    []string `json:"aliases,omitempty"`
	Settings   Settings `json:"settings"`
	// Env is the serving container's environment carrying the settings.
	Env []string `json:"env"`
	// Argv is the engine's command line in a serving image.
	Argv []string `json:"argv"`
	// VLLM is the vLLM version the settings were checked against.
	VLLM string `json:"vllm"`
}
