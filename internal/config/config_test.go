package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/modelship/modelship/serving"
)

func TestLoadRepoConfig(t *testing.T) {
	c, err := Load("../../modelship.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Serving.Engine != "sim" || c.Model.ServedName != "current" {
		t.Errorf("engine %q served-name %q", c.Serving.Engine, c.Model.ServedName)
	}
	if got := c.Environments["staging"].Port; got != 8100 {
		t.Errorf("staging port default = %d, want 8100", got)
	}
	if got := c.Environments["production"].URL; got != "http://127.0.0.1:8000" {
		t.Errorf("production url default = %q", got)
	}
	if c.Gates.Bench.MaxLatencyP99 != Duration(2*time.Second) {
		t.Errorf("max-latency-p99 = %v", c.Gates.Bench.MaxLatencyP99)
	}
	if got := c.ModelPath(); got != filepath.Join("../..", "testdata/models/good") {
		t.Errorf("ModelPath = %q", got)
	}
	if e, err := c.Environment("production"); err != nil || e != c.Environments["production"] {
		t.Errorf("Environment(production) = %v, %v", e, err)
	}
	if _, err := c.Environment("prod"); err == nil || err.Error() != `../../modelship.yaml has no environment "prod"` {
		t.Errorf("Environment(prod) error = %v", err)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse("m.yaml", []byte("model: {path: /m}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Serving.Engine != "vllm" || c.Serving.Image != serving.VLLMImage() || c.Serving.GPUMemoryUtilization != 0.9 ||
		c.Serving.TensorParallelSize != 1 || c.Gates.Validate.PassRate != 1 || c.Version != 1 {
		t.Errorf("defaults not applied: %+v %+v", c.Serving, c.Gates)
	}
	c, err = Parse("m.yaml", []byte("model: {path: /m}\nenvironments:\n  staging: {}\n  production: {keep-releases: 3}\n  canary: {port: 9000, keep-releases: ~}\n"))
	if err != nil {
		t.Fatal(err)
	}
	for env, want := range map[string]int{"staging": DefaultKeepReleases, "production": 3, "canary": DefaultKeepReleases} {
		if got := c.Environments[env].KeepReleases; got != want {
			t.Errorf("environments.%s.keep-releases = %d, want %d", env, got, want)
		}
	}
}

// Each bad file must be refused with the file, line, column and what was expected.
func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", "model:\n  path: /m\n  colour: red\n", []string{"m.yaml:3:3:", "model.colour", `unknown key "colour"`, "path, served-name"}},
		{"unknown top key", "model: {path: /m}\nservng: {}\n", []string{"m.yaml:2:1:", `unknown key "servng" in the top level`}},
		{"wrong type int", "model: {path: /m}\nserving:\n  max-model-len: lots\n", []string{"m.yaml:3:18:", "serving.max-model-len", `expected an integer, got "lots"`}},
		{"wrong type float", "model: {path: /m}\nserving:\n  gpu-memory-utilization: high\n", []string{"m.yaml:3:27:", `expected a number, got "high"`}},
		{"string for mapping", "model: /m\n", []string{"m.yaml:1:8:", "model: expected a mapping"}},
		{"list expected", "model: {path: /m}\nserving:\n  engine-args: --x\n", []string{"m.yaml:3:16:", "expected a list"}},
		{"out of range util", "model: {path: /m}\nserving:\n  gpu-memory-utilization: 1.5\n", []string{"m.yaml:3:27:", "serving.gpu-memory-utilization", "expected a fraction above 0 and at most 1, got 1.5"}},
		{"bad engine", "model: {path: /m}\nserving: {engine: tgi}\n", []string{"m.yaml:2:19:", `expected "vllm", "sim" or "ollama", got "tgi"`}},
		{"a setting engine ollama has no equivalent for", "model: {path: /m}\nserving: {engine: ollama, max-model-len: 512, dtype: bfloat16}\n", []string{"m.yaml:2:54:", "serving.dtype", "engine ollama has no equivalent of vLLM's --dtype"}},
		{"an environment's setting engine ollama cannot take", "model: {path: /m}\nserving: {engine: ollama}\nenvironments:\n  production:\n    serving: {tensor-parallel-size: 2}\n", []string{"environments.production.serving.tensor-parallel-size", "engine ollama has no equivalent of vLLM's --tensor-parallel-size"}},
		{"tp zero", "model: {path: /m}\nserving: {tensor-parallel-size: -2}\n", []string{"serving.tensor-parallel-size", "expected 1 or more (or leave it out for the default), got -2"}},
		{"serving.port is not a setting", "model: {path: /m}\nserving: {port: 70000}\n", []string{"m.yaml:2:11:", `unknown key "port" in serving`}},
		{"unknown vLLM flag", "model: {path: /m}\nserving:\n  engine-args: [--enforce-eager, --no-such-flag]\n", []string{"m.yaml:3:34:", "serving.engine-args[1]", "vLLM v0.16.0 has no flag --no-such-flag"}},
		{"vLLM flag value of the wrong type", "model: {path: /m}\nserving:\n  engine-args: [--max-num-batched-tokens, lots]\n", []string{"serving.engine-args", "invalid human_readable_int value: 'lots'"}},
		{"dtype not among vLLM's choices", "model: {path: /m}\nserving: {dtype: fp4}\n", []string{"m.yaml:2:18:", "serving.dtype", "invalid choice: 'fp4'"}},
		{"a flag modelship owns", "model: {path: /m}\nserving: {engine-args: [--port, '9000']}\n", []string{"serving.engine-args[0]", "set by modelship"}},
		{"an environment's override is checked where it is given", "model: {path: /m}\nenvironments:\n  production:\n    serving: {kv-cache-dtype: int3}\n", []string{"m.yaml:4:31:", "environments.production.serving.kv-cache-dtype", "invalid choice: 'int3'"}},
		{"alias with a space", "model: {path: /m, served-name: current, aliases: [llm v2]}\n", []string{"model.aliases[0]", "expected a name without spaces"}},
		{"alias repeating the served name", "model: {path: /m, served-name: current, aliases: [current]}\n", []string{"model.aliases[0]", `"current" is already a served name`}},
		{"runtime class name", "model: {path: /m}\nenvironments:\n  production:\n    target: kubernetes\n    kubernetes: {runtime-class-name: NVIDIA_GPU}\n", []string{"environments.production.kubernetes.runtime-class-name", "expected a RuntimeClass name"}},
		{"chat template outside the checkpoint", "model: {path: /m}\nserving: {chat-template: ../t.jinja}\n", []string{"serving.chat-template", "inside the checkpoint directory"}},
		{"missing path", "model: {served-name: x}\n", []string{"m.yaml:1:8:", "model.path: required"}},
		{"bad duration", "model: {path: /m}\ngates:\n  bench: {max-latency-p99: soon}\n", []string{"m.yaml:3:28:", "expected a duration like 90s"}},
		{"syntax", "model:\n  path: [a\n", []string{"m.yaml:", "invalid YAML"}},
		{"empty", "", []string{"m.yaml: empty file"}},
		{"rolling on docker", "model: {path: /m}\nenvironments:\n  staging: {strategy: rolling}\n", []string{"m.yaml:3:23:", "rolling needs target kubernetes"}},
		{"env without port", "model: {path: /m}\nenvironments:\n  canary: {target: docker}\n", []string{"environments.canary.port", "required"}},
		{"two envs one port", "model: {path: /m}\nenvironments:\n  staging: {port: 9000}\n  production: {port: 9000}\n", []string{"port 9000 is already used by environment production"}},
		{"duplicate key", "model: {path: /m}\nmodel: {path: /n}\n", []string{"m.yaml:2:1:", "key given twice"}},
		{"bool", "model: {path: /m}\nenvironments:\n  staging: {docker: {tls-verify: maybe}}\n", []string{"expected true or false"}},
		{"plaintext tcp docker host", "model: {path: /m}\nenvironments:\n  staging: {docker: {host: 'tcp://gpu-1:2375'}}\n", []string{"m.yaml:3:", "environments.staging.docker.host", "plaintext TCP", "allow-plaintext"}},
		{"tls-verify without certificates", "model: {path: /m}\nenvironments:\n  staging: {docker: {host: 'tcp://gpu-1:2376', tls-verify: true}}\n", []string{"environments.staging.docker.tls-verify", "needs docker.cert-path"}},
		{"tls settings on a unix host", "model: {path: /m}\nenvironments:\n  staging: {docker: {host: 'unix:///run/docker.sock', allow-plaintext: true}}\n", []string{"environments.staging.docker", "tcp:// hosts only"}},
		{"keep one release", "model: {path: /m}\nenvironments:\n  staging: {keep-releases: 1}\n", []string{"m.yaml:3:28:", "environments.staging.keep-releases", "expected 2 or more (the serving release and one to roll back to), got 1"}},
		{"keep zero releases", "model: {path: /m}\nenvironments:\n  production:\n    keep-releases: 0\n", []string{"m.yaml:4:20:", "environments.production.keep-releases", "expected 2 or more", "got 0"}},
		{"keep negative", "model: {path: /m}\nenvironments:\n  staging: {keep-releases: -5}\n", []string{"m.yaml:3:28:", "staging.keep-releases", "got -5"}},
		{"keep not a number", "model: {path: /m}\nenvironments:\n  staging: {keep-releases: all}\n", []string{"m.yaml:3:28:", "staging.keep-releases", `expected an integer, got "all"`}},
		{"webhook url", "model: {path: /m}\nnotifications:\n  webhook: {url: 'ftp://x', secret: env:S}\n", []string{"m.yaml:3:18:", "expected an http(s) URL"}},
	} {
		t.Run(tc.name, func(t *testing.T) { refused(t, tc.yaml, tc.want) })
	}
}

// refused checks that yaml is refused with an error containing each of want.
func refused(t *testing.T, yaml string, want []string) {
	t.Helper()
	_, err := Parse("m.yaml", []byte(yaml))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\n  does not contain %q", err, w)
		}
	}
}

func TestAllProblemsReported(t *testing.T) {
	_, err := Parse("m.yaml", []byte("model: {path: /m}\nserving: {engine: tgi, max-num-seqs: 0, gpu-memory-utilization: 2}\n"))
	if err == nil {
		t.Fatal("accepted")
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 2 {
		t.Errorf("want 2 problems (engine, utilization), got %d:\n%v", n, err)
	}
}

func TestSecretsAreReferences(t *testing.T) {
	const leaked = "https://hooks.slack.example/services/T000/B000/XXXXSECRET"
	_, err := Parse("m.yaml", []byte("model: {path: /m}\nnotifications:\n  slack: {webhook-url: '"+leaked+"'}\n"))
	if err == nil {
		t.Fatal("a literal secret was accepted")
	}
	if strings.Contains(err.Error(), "XXXXSECRET") {
		t.Errorf("error repeats the secret: %v", err)
	}
	if !strings.Contains(err.Error(), "m.yaml:3:24:") || !strings.Contains(err.Error(), "env:NAME or file:PATH") {
		t.Errorf("error does not say where or what: %v", err)
	}

	dir := t.TempDir()
	f := filepath.Join(dir, "token")
	os.WriteFile(f, []byte("s3cr3t\n"), 0o600)
	c, err := Parse("m.yaml", []byte("model: {path: /m}\nnotifications:\n  grafana: {url: 'http://g', token: 'file:"+f+"'}\n  webhook: {url: 'http://w', secret: env:HOOK_KEY}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.Notifications.Grafana.Token.Resolve(nil); err != nil || v != "s3cr3t" {
		t.Errorf("file secret = %q, %v", v, err)
	}
	env := map[string]string{"HOOK_KEY": "k"}
	if v, err := c.Notifications.Webhook.Secret.Resolve(func(k string) string { return env[k] }); err != nil || v != "k" {
		t.Errorf("env secret = %q, %v", v, err)
	}
	if _, err := c.Notifications.Webhook.Secret.Resolve(func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "HOOK_KEY is not set") {
		t.Errorf("unset env secret: %v", err)
	}
	if got := len(c.Secrets()); got != 2 {
		t.Errorf("Secrets() found %d, want 2", got)
	}
	out, _ := yaml.Marshal(c)
	if strings.Contains(string(out), "s3cr3t") || !strings.Contains(string(out), "env:HOOK_KEY") {
		t.Errorf("marshalled config shows a value or hides the reference:\n%s", out)
	}
}

func FuzzParse(f *testing.F) {
	seed, _ := os.ReadFile("../../modelship.yaml")
	f.Add(seed)
	f.Add([]byte("model: {path: /m}\nenvironments: {staging: ~}\n"))
	f.Add([]byte("a: &x [1]\nb: *x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data)
		if err == nil && c.Model.Path == "" {
			t.Fatal("accepted a config without model.path")
		}
		if err != nil && !strings.HasPrefix(err.Error(), "f.yaml") {
			t.Fatalf("error does not name the file: %v", err)
		}
	})
}

func TestRegistryCredentials(t *testing.T) {
	c, err := Parse("m.yaml", []byte("model: {path: /m}\nregistry:\n  repository: 127.0.0.1:5001/acme/llm\n  username: ci\n  password: env:REG_PASS\n  docker-config: env:DOCKER_CFG\n"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"REG_PASS": "pw", "DOCKER_CFG": `{"auths": {"ghcr.io": {"username": "bob", "password": "tok"}}}`}
	store, err := c.RegistryCredentials(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cr, ok := store.For("127.0.0.1:5001/acme/llm:1"); !ok || cr.Username != "ci" || cr.Password != "pw" {
		t.Errorf("registry.username/password: %v %v", cr, ok)
	}
	if cr, ok := store.For("ghcr.io/acme/llm:1"); !ok || cr.Username != "bob" {
		t.Errorf("registry.docker-config: %v %v", cr, ok)
	}
	env["DOCKER_CFG"] = "{broken"
	if _, err := c.RegistryCredentials(func(k string) string { return env[k] }); err == nil ||
		!strings.Contains(err.Error(), "m.yaml:6:18: registry.docker-config: env:DOCKER_CFG: not a Docker config.json (JSON with \"auths\"): invalid JSON at byte 2") {
		t.Errorf("a broken docker config: %v", err)
	}
	for yaml, want := range map[string]string{
		"model: {path: /m}\nregistry: {username: ci}\n":                     "registry.username and registry.password go together",
		"model: {path: /m}\nregistry: {username: ci, password: env:P}\n":    "registry.repository: required with registry.username",
		"model: {path: /m}\nregistry: {docker-config: '{\"auths\": {}}'}\n": "secrets are never values in the file",
	} {
		if _, err := Parse("m.yaml", []byte(yaml)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", yaml, err, want)
		}
	}
}

// TestEngineSecrets: serving.api-key and hf-token are references, resolved
// into the container variables that carry them; an environment may give
// its own; a literal is refused where it is written, without repeating it.
func TestEngineSecrets(t *testing.T) {
	_, err := Parse("m.yaml", []byte("model: {path: /m}\nserving:\n  api-key: sk-live-0123456789\n"))
	if err == nil || !strings.Contains(err.Error(), "m.yaml:3:12: serving.api-key") ||
		!strings.Contains(err.Error(), "env:NAME or file:PATH") || strings.Contains(err.Error(), "0123456789") {
		t.Errorf("a literal API key: %v", err)
	}
	c, err := Parse("m.yaml", []byte("model: {path: /m}\nserving:\n  api-key: env:KEY\n  hf-token: env:HF\nenvironments:\n  production:\n    serving: {api-key: env:PROD_KEY}\n"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"KEY": "k-staging", "HF": "hf_x", "PROD_KEY": "k-prod"}
	getenv := func(k string) string { return env[k] }
	for name, want := range map[string]map[string]string{
		"staging":    {"VLLM_API_KEY": "k-staging", "HF_TOKEN": "hf_x"},
		"production": {"VLLM_API_KEY": "k-prod", "HF_TOKEN": "hf_x"},
	} {
		got, err := c.EngineSecrets(name, getenv)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("EngineSecrets(%s) = %v, %v; want %v", name, got, err, want)
		}
	}
	if n := len(c.Secrets()); n != 3 {
		t.Errorf("Secrets() lists %d references, want 3 (so they are masked)", n)
	}
	delete(env, "PROD_KEY")
	if _, err := c.EngineSecrets("production", getenv); err == nil ||
		!strings.Contains(err.Error(), "m.yaml:7:24: environments.production.serving.api-key: secret env:PROD_KEY: environment variable PROD_KEY is not set") {
		t.Errorf("an unset key: %v", err)
	}
	if got, err := (&Config{}).EngineSecrets("staging", getenv); err != nil || len(got) != 0 {
		t.Errorf("no secrets configured: %v %v", got, err)
	}
}
