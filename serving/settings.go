package serving

import (
	"fmt"
	"path"
	"strconv"
	"strings"
)

// Settings are the engine settings of modelship.yaml's `serving:` section
// (and of an environment's `serving:` override). Each one becomes a vLLM
// flag (see Flags), an environment variable of the serving container (see
// Env) and a key of modelship.yaml (its yaml tag). A zero value leaves
// vLLM's own default.
type Settings struct {
	// MaxModelLen is --max-model-len: the longest prompt plus completion, in
	// tokens; 0 takes the checkpoint's context length.
	MaxModelLen int `yaml:"max-model-len,omitempty" json:"max-model-len,omitempty"`
	// GPUMemoryUtilization is --gpu-memory-utilization, a fraction in (0, 1].
	GPUMemoryUtilization float64 `yaml:"gpu-memory-utilization,omitempty" json:"gpu-memory-utilization,omitempty"`
	// TensorParallelSize is --tensor-parallel-size: GPUs one copy of the
	// model is split over. Above 1 the container gets a shared-memory /dev/shm.
	TensorParallelSize int `yaml:"tensor-parallel-size,omitempty" json:"tensor-parallel-size,omitempty"`
	// MaxNumSeqs is --max-num-seqs: sequences scheduled at once.
	MaxNumSeqs int `yaml:"max-num-seqs,omitempty" json:"max-num-seqs,omitempty"`
	// Dtype is --dtype: auto, half, float16, bfloat16, float or float32.
	Dtype string `yaml:"dtype,omitempty" json:"dtype,omitempty"`
	// Quantization is --quantization, e.g. awq, gptq, fp8.
	Quantization string `yaml:"quantization,omitempty" json:"quantization,omitempty"`
	// KVCacheDtype is --kv-cache-dtype, e.g. auto, fp8.
	KVCacheDtype string `yaml:"kv-cache-dtype,omitempty" json:"kv-cache-dtype,omitempty"`
	// EnablePrefixCaching is --enable-prefix-caching (true) or
	// --no-enable-prefix-caching (false); unset leaves vLLM's default.
	EnablePrefixCaching *bool `yaml:"enable-prefix-caching,omitempty" json:"enable-prefix-caching,omitempty"`
	// TrustRemoteCode is --trust-remote-code: run the checkpoint's own
	// Python code (custom architectures).
	TrustRemoteCode bool `yaml:"trust-remote-code,omitempty" json:"trust-remote-code,omitempty"`
	// ChatTemplate is --chat-template: a Jinja file inside the checkpoint
	// directory, relative to it (so it travels in the image's weight layer).
	ChatTemplate string `yaml:"chat-template,omitempty" json:"chat-template,omitempty"`
	// EngineArgs are further vLLM flags, last on the command line; each must
	// be a flag vLLM knows, with a value of its type.
	EngineArgs []string `yaml:"engine-args,omitempty" json:"engine-args,omitempty"`
}

// field is one setting: its key in modelship.yaml, its environment
// variable in the serving container and its vLLM flag.
type field struct {
	Key, Env, Flag string
	get            func(*Settings) string // "" when unset
	set            func(*Settings, string) error
}

func intField(key, env, flag string, p func(*Settings) *int, min int) field {
	return field{Key: key, Env: env, Flag: flag,
		get: func(s *Settings) string {
			if v := *p(s); v != 0 {
				return strconv.Itoa(v)
			}
			return ""
		},
		set: func(s *Settings, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < min {
				return fmt.Errorf("expected a whole number of %d or more, got %q", min, v)
			}
			*p(s) = n
			return nil
		}}
}

func stringField(key, env, flag string, p func(*Settings) *string) field {
	return field{Key: key, Env: env, Flag: flag,
		get: func(s *Settings) string { return *p(s) },
		set: func(s *Settings, v string) error { *p(s) = v; return nil }}
}

// fields is the table every conversion reads: one row per setting, in the
// order the flags appear on the command line.
var fields = []field{
	intField("max-model-len", "MAX_MODEL_LEN", "--max-model-len", func(s *Settings) *int { return &s.MaxModelLen }, 1),
	{Key: "gpu-memory-utilization", Env: "GPU_MEMORY_UTILIZATION", Flag: "--gpu-memory-utilization",
		get: func(s *Settings) string {
			if s.GPUMemoryUtilization == 0 {
				return ""
			}
			return strconv.FormatFloat(s.GPUMemoryUtilization, 'f', -1, 64)
		},
		set: func(s *Settings, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || !(f > 0 && f <= 1) {
				return fmt.Errorf("expected a fraction above 0 and at most 1, e.g. 0.9, got %q", v)
			}
			s.GPUMemoryUtilization = f
			return nil
		}},
	intField("tensor-parallel-size", "TENSOR_PARALLEL_SIZE", "--tensor-parallel-size", func(s *Settings) *int { return &s.TensorParallelSize }, 1),
	intField("max-num-seqs", "MODELSHIP_MAX_NUM_SEQS", "--max-num-seqs", func(s *Settings) *int { return &s.MaxNumSeqs }, 1),
	stringField("dtype", "MODELSHIP_DTYPE", "--dtype", func(s *Settings) *string { return &s.Dtype }),
	stringField("quantization", "MODELSHIP_QUANTIZATION", "--quantization", func(s *Settings) *string { return &s.Quantization }),
	stringField("kv-cache-dtype", "MODELSHIP_KV_CACHE_DTYPE", "--kv-cache-dtype", func(s *Settings) *string { return &s.KVCacheDtype }),
	{Key: "enable-prefix-caching", Env: "MODELSHIP_ENABLE_PREFIX_CACHING", Flag: "--enable-prefix-caching",
		get: func(s *Settings) string {
			if s.EnablePrefixCaching == nil {
				return ""
			}
			return strconv.FormatBool(*s.EnablePrefixCaching)
		},
		set: func(s *Settings, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("expected true or false, got %q", v)
			}
			s.EnablePrefixCaching = &b
			return nil
		}},
	{Key: "trust-remote-code", Env: "MODELSHIP_TRUST_REMOTE_CODE", Flag: "--trust-remote-code",
		get: func(s *Settings) string {
			if s.TrustRemoteCode {
				return "true"
			}
			return ""
		},
		set: func(s *Settings, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("expected true or false, got %q", v)
			}
			s.TrustRemoteCode = b
			return nil
		}},
	stringField("chat-template", "MODELSHIP_CHAT_TEMPLATE", "--chat-template", func(s *Settings) *string { return &s.ChatTemplate }),
	{Key: "engine-args", Env: "MODELSHIP_ENGINE_ARGS", Flag: "",
		get: func(s *Settings) string { return JoinWords(s.EngineArgs) },
		set: func(s *Settings, v string) error {
			w, err := SplitWords(v)
			if err != nil {
				return err
			}
			s.EngineArgs = w
			return nil
		}},
}

// Keys lists the settings' keys in modelship.yaml, in command-line order.
func Keys() []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.Key
	}
	return out
}

// EnvNames lists the serving container's environment variables that carry
// Settings, with the key each one carries.
func EnvNames() map[string]string {
	out := make(map[string]string, len(fields))
	for _, f := range fields {
		out[f.Env] = f.Key
	}
	return out
}

// Flags are the vLLM flags the settings become, in a fixed order (the
// table's), engine-args last. modelDir is where the checkpoint is, for the
// chat template's path.
func (s Settings) Flags(modelDir string) []string {
	var out []string
	for _, f := range fields {
		v := f.get(&s)
		switch {
		case v == "":
		case f.Key == "engine-args":
			out = append(out, s.EngineArgs...)
		case f.Key == "enable-prefix-caching" && v == "false":
			out = append(out, "--no-enable-prefix-caching")
		case f.Key == "enable-prefix-caching", f.Key == "trust-remote-code":
			out = append(out, f.Flag)
		case f.Key == "chat-template":
			out = append(out, f.Flag, path.Join(modelDir, v))
		default:
			out = append(out, f.Flag, v)
		}
	}
	return out
}

// Argv is the whole command line that starts vLLM on the checkpoint at
// modelDir: `vllm serve MODEL --served-model-name NAME... --host HOST
// --port PORT` and then Flags. It is pure: the same inputs always give the
// same argv, on a GPU server and in the simulator.
func (s Settings) Argv(modelDir string, servedNames []string, host string, port int) []string {
	argv := append([]string{}, VLLMProgram...)
	argv = append(argv, modelDir)
	if len(servedNames) > 0 {
		argv = append(argv, "--served-model-name")
		argv = append(argv, servedNames...)
	}
	argv = append(argv, "--host", host, "--port", strconv.Itoa(port))
	return append(argv, s.Flags(modelDir)...)
}

// Env is the serving container's environment for these settings
// (KEY=VALUE, set settings only), what `modelship serve` reads back with
// FromEnv. A target sets it on a release's container; the Dagger module
// bakes it into an image.
func (s Settings) Env() []string {
	var out []string
	for _, f := range fields {
		if v := f.get(&s); v != "" {
			out = append(out, f.Env+"="+v)
		}
	}
	return out
}

// FromEnv reads Settings from the environment variables Env writes, with
// getenv (os.Getenv in a container). An empty variable counts as unset; a
// malformed one is an error naming the variable and what was expected.
func FromEnv(getenv func(string) string) (Settings, error) {
	var s Settings
	var errs []string
	for _, f := range fields {
		v := getenv(f.Env)
		if strings.TrimSpace(v) == "" {
			continue
		}
		if f.Key != "engine-args" {
			v = strings.TrimSpace(v)
		}
		if err := f.set(&s, v); err != nil {
			errs = append(errs, fmt.Sprintf("%s=%q: %v", f.Env, v, err))
		}
	}
	if len(errs) > 0 {
		return s, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return s, nil
}

// Override returns s with every setting that o gives (non-zero) replacing
// s's: an environment's `serving:` over the file's. engine-args given in o
// replace s's whole list.
func (s Settings) Override(o Settings) Settings {
	for _, f := range fields {
		// get is "" only for an unset setting (enable-prefix-caching false
		// is "false"), so every value o gives replaces s's.
		if v := f.get(&o); v != "" {
			_ = f.set(&s, v)
		}
	}
	return s
}

// NeedsSharedMemory reports whether the engine needs a large /dev/shm:
// tensor-parallel workers exchange tensors through it (NCCL), and Docker's
// default 64 MiB is not enough.
func (s Settings) NeedsSharedMemory() bool { return s.TensorParallelSize > 1 }

// GPUs is how many GPUs one copy of the model takes.
func (s Settings) GPUs() int { return max(s.TensorParallelSize, 1) }

// EnvNameOf is the environment variable that carries the setting key
// ("engine-args" → MODELSHIP_ENGINE_ARGS), or "" for an unknown key.
func EnvNameOf(key string) string {
	for _, f := range fields {
		if f.Key == key {
			return f.Env
		}
	}
	return ""
}
