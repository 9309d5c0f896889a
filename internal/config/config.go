// Package config reads modelship.yaml: the model, how it is served, the suites
// and gates that guard it, the environments it is deployed to, and where
// people are told what happened.
//
// Reading is strict: an unknown key, a value of the wrong type or a value out
// of range is an error that names the file, line and column and says what was
// expected. Secrets are never values in the file, only references to where the
// value lives (see Secret).
package config

import (
	"fmt"
	"strconv"
	"time"

	"github.com/modelship/modelship/serving"
)

// DefaultFile is the file `modelship` reads when none is named.
const DefaultFile = "modelship.yaml"

// Config is the whole of modelship.yaml.
type Config struct {
	// Version of the file format; only 1 exists.
	Version       int                     `yaml:"version"`
	Model         Model                   `yaml:"model"`
	Serving       Serving                 `yaml:"serving"`
	Suites        Suites                  `yaml:"suites"`
	Gates         Gates                   `yaml:"gates"`
	Registry      Registry                `yaml:"registry"`
	Environments  map[string]*Environment `yaml:"environments"`
	Notifications Notifications           `yaml:"notifications"`

	// File is the path the config was read from (not part of the YAML).
	File string `yaml:"-"`
	// pos is where each key path was read: line, column.
	pos map[string][2]int
}

// Model names the checkpoint and the name clients ask for.
type Model struct {
	// Path to the checkpoint directory or GGUF file, relative to the config file.
	Path string `yaml:"path"`
	// ServedName is the model id in /v1/models and in requests (vLLM's
	// --served-model-name). Default "current".
	ServedName string `yaml:"served-name"`
	// Aliases are further names the model answers to (vLLM's
	// --served-model-name NAME ALIAS...), e.g. while clients move to a new
	// name; readiness and verify use ServedName.
	Aliases []string `yaml:"aliases"`
}

// Serving says how the model is served: the engine, its image, and the
// engine settings of the serving contract (package serving), each of which
// becomes a vLLM flag.
type Serving struct {
	// Engine is "vllm" (a GPU), "sim" (the modelship simulator, a CPU),
	// which takes vLLM's command line and refuses what vLLM refuses, or
	// "ollama" (a GGUF checkpoint on CPUs, Ollama's llama.cpp runner).
	Engine string `yaml:"engine"`
	// Image is the base the serving image is built from: default the
	// pinned vLLM image whose flags the contract records (engine vllm),
	// the Dagger module's base image (sim), or that base plus the ollama
	// binary the module builds (ollama; the official ollama/ollama image
	// of serving.OllamaVersion brings its own).
	Image string `yaml:"image"`
	// Settings are vLLM's flags: max-model-len, gpu-memory-utilization,
	// tensor-parallel-size, max-num-seqs, dtype, quantization,
	// kv-cache-dtype, enable-prefix-caching, trust-remote-code,
	// chat-template and engine-args.
	serving.Settings `yaml:",inline"`
	// Credentials are the engine's secrets: api-key and hf-token.
	Credentials `yaml:",inline"`
}

// Credentials are a serving container's secrets, each a Secret reference
// that a deploy resolves where it runs and hands to the container (Docker:
// its environment; Kubernetes: a Secret read through secretKeyRef). They
// are never baked into an image.
type Credentials struct {
	// APIKey, when set, is required from clients on the endpoint's /v1/
	// routes (serving.EnvAPIKey); verify and smoke send it.
	APIKey Secret `yaml:"api-key"`
	// HFToken is the Hugging Face token the engine uses for gated
	// repositories (serving.EnvHFToken).
	HFToken Secret `yaml:"hf-token"`
}

// EnvServing is an environment's override of the serving section.
type EnvServing struct {
	serving.Settings `yaml:",inline"`
	Credentials      `yaml:",inline"`
}

// Suites are the files the gates run.
type Suites struct {
	// Validation cases: the article's validation_cases.json or a YAML suite.
	Validation string `yaml:"validation"`
	// Integration suite run against staging.
	Integration string `yaml:"integration"`
	// Smoke suite run after a production deploy.
	Smoke string `yaml:"smoke"`
	// BenchmarkPrompts: JSONL, ShareGPT JSON.
	BenchmarkPrompts string `yaml:"benchmark-prompts"`
}

// Gates are the thresholds a model must meet to go further.
type Gates struct {
	Validate ValidateGate `yaml:"validate"`
	Bench    BenchGate    `yaml:"bench"`
}

// ValidateGate is the validation suite's threshold.
type ValidateGate struct {
	// PassRate is the fraction of cases that must pass, in (0, 1]. Default 1.
	PassRate float64 `yaml:"pass-rate"`
}

// BenchGate is the benchmark's thresholds; zero means not checked.
type BenchGate struct {
	// MinTokensPerSec is the article's --min-tokens-per-sec (output tokens/s).
	MinTokensPerSec float64 `yaml:"min-tokens-per-sec"`
	// MaxLatencyP99 is the article's --max-latency-p99 (end-to-end).
	MaxLatencyP99 Duration `yaml:"max-latency-p99"`
	// MaxTTFTP99 bounds time to first token at p99.
	MaxTTFTP99 Duration `yaml:"max-ttft-p99"`
	// MaxTPOTP99 bounds time per output token at p99.
	MaxTPOTP99 Duration `yaml:"max-tpot-p99"`
	// MaxErrorRate is the highest fraction of failed requests, in [0, 1].
	MaxErrorRate float64 `yaml:"max-error-rate"`
	// MaxRegression is how much worse than production a figure may be, as a
	// fraction (0.1 = 10%); 0 means no comparison.
	MaxRegression float64 `yaml:"max-regression"`
}

// Registry is where serving images come from, and the credentials that
// deploys send when they pull them (Docker: the X-Registry-Auth header;
// Kubernetes: an image pull secret).
type Registry struct {
	// Repository, e.g. registry.example.com/ai-inference: its host is the
	// registry Username and Password log in to.
	Repository string `yaml:"repository"`
	Username   string `yaml:"username"`
	Password   Secret `yaml:"password"`
	// DockerConfig is a Docker config.json with the logins inline ("auths",
	// as `docker login` writes it), as a secret reference: every registry
	// it names.
	DockerConfig Secret `yaml:"docker-config"`
}

// Environment is one place the model is deployed (staging, production).
type Environment struct {
	// Target is "docker" (a Docker host), "compose" (a service of a
	// docker compose project on a Docker host) or "kubernetes".
	Target string `yaml:"target"`
	// Strategy is "auto", "recreate", "blue-green", "rolling" or "canary".
	Strategy string `yaml:"strategy"`
	// Canary is the canary rollout of strategy canary (defaults when the
	// block is left out: see DefaultCanary) or auto (where two copies
	// fit); Shadow, when set, mirrors live traffic to the new release
	// before the canary's first step, so before any client sees it.
	// Docker targets only.
	Canary *Canary `yaml:"canary,omitempty"`
	Shadow *Shadow `yaml:"shadow,omitempty"`
	// Port the endpoint is reached on.
	Port int `yaml:"port"`
	// URL the endpoint is reached at, for verify; default http://127.0.0.1:PORT.
	URL string `yaml:"url"`
	// Docker host settings when Target is docker or compose.
	Docker DockerTarget `yaml:"docker"`
	// Compose is the project and service a compose target deploys.
	Compose ComposeTarget `yaml:"compose"`
	// Kubernetes settings when Target is kubernetes.
	Kubernetes KubernetesTarget `yaml:"kubernetes"`
	// GPUs to use, by UUID; empty lets modelship choose from free memory.
	GPUs []string `yaml:"gpus"`
	// ReadyTimeout bounds how long a new release may take to become ready;
	// 0 sizes it from the checkpoint.
	ReadyTimeout Duration `yaml:"ready-timeout"`
	// Serving overrides the file's serving settings in this environment
	// (e.g. a larger max-model-len in production); see ServingFor.
	Serving EnvServing `yaml:"serving,omitempty"`
	// KeepReleases is how many releases the environment keeps (their
	// records and, on Docker, their images); older ones are pruned after
	// each deploy and rollback, never the serving one nor the one a
	// rollback would go back to. Default 10, at least 2.
	KeepReleases int `yaml:"keep-releases"`
}

// Canary is environments.NAME.canary: the steps traffic moves to the new
// release in, and the analysis each step must pass.
type Canary struct {
	// Steps are the percents of requests the new release takes, ascending,
	// each a number or {percent, bake, pause}; the last, 100, is the
	// promotion (the switch), with no bake or pause of its own.
	Steps []CanaryStep `yaml:"steps"`
	// Bake is how long a step runs before it can pass, where the step
	// gives none (default 1m).
	Bake Duration `yaml:"bake"`
	// Interval is how often a step is analysed (default 10s).
	Interval Duration `yaml:"interval"`
	// StickyHeader keeps requests with the same value of this header on
	// one version for the whole rollout.
	StickyHeader string `yaml:"sticky-header"`
	// Traffic is what a step with too few requests does: "wait" (default)
	// or "synthetic" (send the benchmark's prompts).
	Traffic string `yaml:"traffic"`
	// Deadline is how long a step may stay inconclusive (default 10m).
	Deadline Duration `yaml:"deadline"`
	// Analysis are the limits every step is held to; a key left out takes
	// the analysis default.
	Analysis Analysis `yaml:"analysis"`
}

// CanaryStep is one step of canary.steps.
type CanaryStep struct {
	Percent float64  `yaml:"percent"`
	Bake    Duration `yaml:"bake"` // 0: canary.bake
	// Pause: after it passed, the step waits for modelship resume or
	// promote.
	Pause bool `yaml:"pause"`
}

// MarshalYAML writes a step with only a percent as the bare number.
func (s CanaryStep) MarshalYAML() (any, error) {
	if s.Bake == 0 && !s.Pause {
		return s.Percent, nil
	}
	type plain CanaryStep // without this method
	return plain(s), nil
}

// Analysis is canary.analysis, analysis.Thresholds by the names of
// analysis.FieldNames: a key left out takes its default (min-samples 20,
// max-error-rate 0.01, max-error-rate-delta 0.01, ttft-ratio 1.5, alpha
// 0.05) or is off.
type Analysis struct {
	MinSamples        int      `yaml:"min-samples"`
	MaxErrorRate      float64  `yaml:"max-error-rate"`
	MaxErrorRateDelta float64  `yaml:"max-error-rate-delta"`
	TTFTP95           Duration `yaml:"ttft-p95"`
	ITLP95            Duration `yaml:"itl-p95"`
	TTFTRatio         float64  `yaml:"ttft-ratio"`
	ITLRatio          float64  `yaml:"itl-ratio"`
	KVCacheUsage      float64  `yaml:"kv-cache-usage"`
	RequestsWaiting   float64  `yaml:"requests-waiting"`
	Alpha             float64  `yaml:"alpha"`
}

// Shadow is environments.NAME.shadow: a share of live requests mirrored
// to the new release before the switch, its answers compared with the
// serving release's.
type Shadow struct {
	Percent  float64  `yaml:"percent"`  // (0, 100], default 10
	Duration Duration `yaml:"duration"` // default 2m
	// MinAgreement (0..1, default 0.9) is the lowest rate of same answers
	// that passes; MinSamples (default 20) the fewest compared answers.
	MinAgreement float64 `yaml:"min-agreement"`
	MinSamples   int     `yaml:"min-samples"`
}

// DefaultKeepReleases is environments.NAME.keep-releases when not given.
const DefaultKeepReleases = 10

// DockerTarget is a Docker Engine reached like the docker CLI does.
type DockerTarget struct {
	// Host is DOCKER_HOST: unix://, tcp:// or ssh://; empty uses the environment.
	Host string `yaml:"host"`
	// TLS for tcp hosts: cert-path holds ca.pem, cert.pem and key.pem;
	// tls-verify also checks the engine's certificate against ca.pem.
	TLSVerify bool   `yaml:"tls-verify"`
	CertPath  string `yaml:"cert-path"`
	// AllowPlaintext allows a tcp host without TLS (refused otherwise).
	AllowPlaintext bool `yaml:"allow-plaintext"`
}

// KubernetesTarget is a cluster reached through a kubeconfig.
type KubernetesTarget struct {
	Kubeconfig string `yaml:"kubeconfig"`
	Context    string `yaml:"context"`
	Namespace  string `yaml:"namespace"`
	Name       string `yaml:"name"`
	Replicas   int    `yaml:"replicas"`
	// GPUs per pod (nvidia.com/gpu).
	GPUs         int               `yaml:"gpus"`
	NodeSelector map[string]string `yaml:"node-selector"`
	// Tolerations let the pods run on tainted (e.g. GPU) nodes.
	Tolerations []Toleration `yaml:"tolerations"`
	ServicePort int          `yaml:"service-port"`
	// ImagePullPolicy is Always, IfNotPresent (default) or Never.
	ImagePullPolicy string `yaml:"image-pull-policy"`
	// RuntimeClassName is the pods' runtimeClassName (e.g. "nvidia" where
	// the NVIDIA runtime is not the node's default); "" leaves the default.
	RuntimeClassName string `yaml:"runtime-class-name"`
}

// Toleration is a Kubernetes pod toleration.
type Toleration struct {
	Key string `yaml:"key"`
	// Operator is Equal (default) or Exists.
	Operator string `yaml:"operator"`
	Value    string `yaml:"value"`
	// Effect is NoSchedule, PreferNoSchedule, NoExecute or empty (all).
	Effect string `yaml:"effect"`
	// TolerationSeconds bounds how long a NoExecute taint is tolerated.
	TolerationSeconds *int `yaml:"toleration-seconds"`
}

// Notifications are where events go; every credential is a Secret.
type Notifications struct {
	Slack       *Slack       `yaml:"slack"`
	Webhook     *Webhook     `yaml:"webhook"`
	Grafana     *Grafana     `yaml:"grafana"`
	Pushgateway *Pushgateway `yaml:"pushgateway"`
}

// Slack is an incoming webhook; its URL is itself a secret.
type Slack struct {
	WebhookURL Secret `yaml:"webhook-url"`
}

// Webhook is a generic JSON webhook signed with HMAC-SHA256.
type Webhook struct {
	URL    string `yaml:"url"`
	Secret Secret `yaml:"secret"`
}

// Grafana posts annotations.
type Grafana struct {
	URL   string `yaml:"url"`
	Token Secret `yaml:"token"`
}

// Pushgateway receives deploy and gate metrics.
type Pushgateway struct {
	URL string `yaml:"url"`
	Job string `yaml:"job"`
}

// Duration is a time.Duration written as "90s", "2m" or a number of seconds.
type Duration time.Duration

// String formats like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes the duration as "2s".
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

func (d *Duration) set(s string) error {
	if v, err := time.ParseDuration(s); err == nil {
		*d = Duration(v)
		return nil
	}
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		*d = Duration(secs * float64(time.Second))
		return nil
	}
	return fmt.Errorf("expected a duration like 90s or 2m, or a number of seconds, got %q", s)
}
