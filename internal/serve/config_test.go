package serve

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/serving"
)

func TestCommand(t *testing.T) {
	vllm := []string{"vllm", "serve"}
	tests := []struct {
		name    string
		cfg     func(*Config)
		program string
		want    []string
	}{
		{name: "vllm defaults", cfg: func(c *Config) {}, program: "vllm",
			want: append(vllm, "/models/current", "--served-model-name", "/models/current", "--host", "127.0.0.1", "--port", "8001")},
		{name: "vllm everything", cfg: func(c *Config) {
			c.ServedModelName = "llama-3-8b"
			c.Settings = serving.Settings{MaxModelLen: 4096, GPUMemoryUtilization: 0.9, TensorParallelSize: 2,
				EngineArgs: []string{"--enforce-eager", "--dtype", "bfloat16"}}
			c.EnginePort = 9001
		}, program: "vllm", want: append(vllm, "/models/current", "--served-model-name", "llama-3-8b", "--host", "127.0.0.1", "--port", "9001",
			"--max-model-len", "4096", "--gpu-memory-utilization", "0.9", "--tensor-parallel-size", "2", "--enforce-eager", "--dtype", "bfloat16")},
		{name: "vllm program override", cfg: func(c *Config) {
			c.EngineCommand = []string{"/opt/venv/bin/vllm", "serve"}
			c.ServedModelName = "m"
		}, program: "/opt/venv/bin/vllm", want: []string{"/opt/venv/bin/vllm", "serve", "/models/current",
			"--served-model-name", "m", "--host", "127.0.0.1", "--port", "8001"}},
		// The simulator runs the very same command line: only the program
		// differs (this binary, with argv[0] "vllm").
		{name: "sim", cfg: func(c *Config) {
			c.Engine = EngineSim
			c.Self = "/usr/local/bin/modelship"
			c.ModelPath = "testdata/tiny"
			c.ServedModelName = "tiny"
			c.Settings = serving.Settings{MaxModelLen: 2048}
		}, program: "/usr/local/bin/modelship", want: append(vllm, "testdata/tiny", "--served-model-name", "tiny", "--host", "127.0.0.1",
			"--port", "8001", "--max-model-len", "2048")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.cfg(&c)
			program, argv := Command(c)
			if program != tt.program || !reflect.DeepEqual(argv, tt.want) {
				t.Errorf("Command = %q\n %q\nwant %q\n %q", program, argv, tt.program, tt.want)
			}
		})
	}
}

func TestLoadEnv(t *testing.T) {
	env := map[string]string{
		"MODEL_PATH":                      "/models/llama",
		"MODELSHIP_ENGINE":                "sim",
		"MODELSHIP_ENGINE_CMD":            "/opt/venv/bin/vllm serve",
		"MODELSHIP_SERVED_MODEL_NAME":     "llama",
		"MODELSHIP_SERVED_MODEL_ALIASES":  "llama-3 'llama v3'",
		"MAX_MODEL_LEN":                   "4096",
		"GPU_MEMORY_UTILIZATION":          "0.85",
		"TENSOR_PARALLEL_SIZE":            "4",
		"MODELSHIP_ENGINE_ARGS":           `--enforce-eager --override-generation-config '{"temperature": 0.5}'`,
		"MODELSHIP_MAX_NUM_SEQS":          "64",
		"MODELSHIP_DTYPE":                 "bfloat16",
		"MODELSHIP_QUANTIZATION":          "fp8",
		"MODELSHIP_KV_CACHE_DTYPE":        "fp8",
		"MODELSHIP_ENABLE_PREFIX_CACHING": "false",
		"MODELSHIP_TRUST_REMOTE_CODE":     "true",
		"MODELSHIP_CHAT_TEMPLATE":         "chat.jinja",
		"MODELSHIP_SIM_ARGS":              "--ttft 5ms",
		"VLLM_API_KEY":                    "k3y",
		"MODELSHIP_ADMIN_TOKEN":           "adm1n",
		"PORT":                            "9000",
		"MODELSHIP_ENGINE_PORT":           "9100",
		"MODELSHIP_MODEL_DIGEST":          "sha256:aa",
		"MODELSHIP_IMAGE":                 "ghcr.io/acme/llm:1",
		"MODELSHIP_IMAGE_DIGEST":          "sha256:bb",
		"MODELSHIP_GIT_SHA":               "deadbeef",
		"MODELSHIP_DEPLOYED_AT":           "2025-06-01T12:00:00Z",
		"MODELSHIP_RELEASE_ID":            "20250601-120000-ab12",
	}
	c, err := LoadEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.ModelPath = "/models/llama"
	want.Engine = EngineSim
	want.EngineCommand = []string{"/opt/venv/bin/vllm", "serve"}
	want.ServedModelName = "llama"
	want.ServedAliases = []string{"llama-3", "llama v3"}
	no := false
	want.Settings = serving.Settings{MaxModelLen: 4096, GPUMemoryUtilization: 0.85, TensorParallelSize: 4, MaxNumSeqs: 64,
		Dtype: "bfloat16", Quantization: "fp8", KVCacheDtype: "fp8", EnablePrefixCaching: &no, TrustRemoteCode: true,
		ChatTemplate: "chat.jinja", EngineArgs: []string{"--enforce-eager", "--override-generation-config", `{"temperature": 0.5}`}}
	want.APIKey = "k3y"
	want.AdminToken = "adm1n"
	want.Port = 9000
	want.EnginePort = 9100
	want.ModelDigest = "sha256:aa"
	want.Image = "ghcr.io/acme/llm:1"
	want.ImageDigest = "sha256:bb"
	want.GitSHA = "deadbeef"
	want.DeployedAt = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	want.ReleaseID = "20250601-120000-ab12"
	if !reflect.DeepEqual(c, want) {
		t.Errorf("LoadEnv =\n%+v\nwant\n%+v", c, want)
	}
	for _, e := range Env {
		if _, ok := env[e.Name]; !ok {
			t.Errorf("Env lists %s but this test does not set it", e.Name)
		}
	}

	// Unset and empty variables leave the defaults.
	c, err = LoadEnv(func(k string) string {
		if k == "PORT" {
			return "  "
		}
		return ""
	})
	if err != nil || !reflect.DeepEqual(c, Default()) {
		t.Errorf("LoadEnv(empty) = %+v, %v; want Default()", c, err)
	}
}

func TestLoadEnvErrors(t *testing.T) {
	env := map[string]string{
		"MAX_MODEL_LEN":          "4k",
		"GPU_MEMORY_UTILIZATION": "90",
		"TENSOR_PARALLEL_SIZE":   "0",
		"MODELSHIP_ENGINE_ARGS":  `--x 'open`,
		"PORT":                   "http",
		"MODELSHIP_DEPLOYED_AT":  "yesterday",
	}
	_, err := LoadEnv(func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("LoadEnv accepted malformed values")
	}
	for _, want := range []string{
		`MAX_MODEL_LEN="4k": expected a whole number of 1 or more`,
		`GPU_MEMORY_UTILIZATION="90": expected a fraction above 0 and at most 1`,
		`TENSOR_PARALLEL_SIZE="0": expected a whole number of 1 or more`,
		`MODELSHIP_ENGINE_ARGS="--x 'open": unterminated single quote at byte 4`,
		`PORT="http": want a TCP port number`,
		`MODELSHIP_DEPLOYED_AT="yesterday": want an RFC 3339 time`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"unknown engine", func(c *Config) { c.Engine = "tgi" }, `engine "tgi": want "vllm", "sim" or "ollama"`},
		{"sim without self", func(c *Config) { c.Engine = EngineSim }, "engine sim needs the modelship executable"},
		{"same ports", func(c *Config) { c.EnginePort = 8000 }, "port and engine port are both 8000"},
		{"port range", func(c *Config) { c.Port = 70000 }, "port 70000: want 0-65535"},
		{"empty model", func(c *Config) { c.ModelPath = "" }, "model path is empty"},
	}
	for _, tt := range tests {
		c := Default()
		tt.mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate = %v, want %q", tt.name, err, tt.want)
		}
	}
	c := Default()
	if err := c.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
}
