package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/modelship/modelship/internal/registryauth"
	"github.com/modelship/modelship/serving"
)

// applyDefaults fills in what the file left out; given says whether the
// file gave a key path a value (for defaults where 0 is not "unset").
func (c *Config) applyDefaults(given func(path string) bool) {
	if c.Version == 0 {
		c.Version = 1
	}
	if c.Model.ServedName == "" {
		c.Model.ServedName = "current"
	}
	s := &c.Serving
	if s.Engine == "" {
		s.Engine = "vllm"
	}
	if s.Image == "" && s.Engine == serving.EngineVLLM {
		s.Image = serving.VLLMImage() // the others' default base is the Dagger module's
	}
	if s.GPUMemoryUtilization == 0 {
		s.GPUMemoryUtilization = 0.9
	}
	if s.TensorParallelSize == 0 {
		s.TensorParallelSize = 1
	}
	if c.Gates.Validate.PassRate == 0 {
		c.Gates.Validate.PassRate = 1
	}
	if c.Notifications.Pushgateway != nil && c.Notifications.Pushgateway.Job == "" {
		c.Notifications.Pushgateway.Job = "modelship"
	}
	for name, e := range c.Environments {
		if e == nil {
			continue
		}
		if e.Target == "" {
			e.Target = "docker"
		}
		if e.Strategy == "" {
			e.Strategy = "auto"
		}
		e.rolloutDefaults(given, "environments."+name)
		if e.KeepReleases == 0 && !given("environments."+name+".keep-releases") {
			e.KeepReleases = DefaultKeepReleases
		}
		if e.Port == 0 {
			switch name {
			case "staging":
				e.Port = 8100
			case "production":
				e.Port = 8000
			}
		}
		// A Kubernetes environment without a url is verified through the
		// API server's service proxy.
		if e.URL == "" && e.Port != 0 && e.Target != "kubernetes" {
			e.URL = fmt.Sprintf("http://127.0.0.1:%d", e.Port)
		}
		if e.Target == "kubernetes" {
			k := &e.Kubernetes
			if k.Namespace == "" {
				k.Namespace = "default"
			}
			if k.Name == "" {
				k.Name = "modelship-" + name
			}
			if k.Replicas == 0 {
				k.Replicas = 1
			}
			if k.ServicePort == 0 {
				k.ServicePort = 80
			}
			if k.ImagePullPolicy == "" {
				k.ImagePullPolicy = "IfNotPresent"
			}
			for i := range k.Tolerations {
				if k.Tolerations[i].Operator == "" {
					k.Tolerations[i].Operator = "Equal"
				}
			}
		}
	}
}

var envName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

func (c *Config) validate(d *decoder) {
	bad := func(path, format string, args ...any) { d.errorf(d.at(path), path, format, args...) }
	oneOf := func(path, got string, allowed ...string) {
		if !slices.Contains(allowed, got) {
			bad(path, "expected %s, got %q", quoteList(allowed), got)
		}
	}
	port := func(path string, p int) {
		if p < 0 || p > 65535 {
			bad(path, "expected a port from 1 to 65535, got %d", p)
		}
	}
	httpURL := func(path, u string) {
		if u == "" {
			bad(path, "expected an http(s) URL, got nothing")
			return
		}
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			bad(path, "expected an http(s) URL, got %q", redactURL(u))
		}
	}
	fraction := func(path string, f float64, openLow bool) {
		if f > 1 || f < 0 || (openLow && f == 0) {
			low := "0"
			if openLow {
				low = "above 0"
			}
			bad(path, "expected a fraction from %s to 1, got %g", low, f)
		}
	}

	if c.Version != 1 {
		bad("version", "expected 1 (the only format version), got %d", c.Version)
	}
	if c.Model.Path == "" {
		bad("model.path", "required: the checkpoint directory or GGUF file")
	}
	if strings.ContainsAny(c.Model.ServedName, " \t\n") {
		bad("model.served-name", "expected a name without spaces, got %q", c.Model.ServedName)
	}
	for i, a := range c.Model.Aliases {
		p := fmt.Sprintf("model.aliases[%d]", i)
		switch {
		case a == "" || strings.ContainsAny(a, " \t\n") || strings.HasPrefix(a, "-"):
			bad(p, "expected a name without spaces, not starting with -, got %q", a)
		case a == c.Model.ServedName || slices.Contains(c.Model.Aliases[:i], a):
			bad(p, "%q is already a served name", a)
		}
	}
	s := c.Serving
	oneOf("serving.engine", s.Engine, serving.Engines...)
	c.validateServing(d, bad)

	g := c.Gates
	fraction("gates.validate.pass-rate", g.Validate.PassRate, true)
	fraction("gates.bench.max-error-rate", g.Bench.MaxErrorRate, false)
	if g.Bench.MinTokensPerSec < 0 {
		bad("gates.bench.min-tokens-per-sec", "expected 0 or more, got %g", g.Bench.MinTokensPerSec)
	}
	if g.Bench.MaxRegression < 0 || g.Bench.MaxRegression > 10 {
		bad("gates.bench.max-regression", "expected a fraction from 0 to 10 (0.1 = 10%% worse), got %g", g.Bench.MaxRegression)
	}

	if c.Registry.Repository != "" && strings.Contains(c.Registry.Repository, "://") {
		bad("registry.repository", "expected host/path without a scheme, got %q", c.Registry.Repository)
	}
	if r := c.Registry; (r.Username != "") != r.Password.IsSet() {
		bad("registry.username", "registry.username and registry.password go together")
	} else if r.Username != "" && r.Repository == "" {
		bad("registry.repository", "required with registry.username: the registry they log in to")
	}

	names := make([]string, 0, len(c.Environments))
	for name := range c.Environments {
		names = append(names, name)
	}
	slices.Sort(names)
	ports := map[int]string{}
	for _, name := range names {
		e, p := c.Environments[name], "environments."+name
		if !envName.MatchString(name) {
			bad(p, "expected an environment name of lower-case letters, digits and -, got %q", name)
		}
		if e == nil {
			bad(p, "expected the environment's settings, got nothing")
			continue
		}
		oneOf(p+".target", e.Target, "docker", "compose", "kubernetes")
		validateCompose(bad, p, e)
		oneOf(p+".strategy", e.Strategy, "auto", "recreate", "blue-green", "rolling", "canary")
		validateRollout(d, bad, p, e)
		if e.Strategy == "rolling" && e.Target != "kubernetes" {
			bad(p+".strategy", "rolling needs target kubernetes; a Docker host uses auto, recreate or blue-green")
		}
		if e.Port == 0 && e.Target != "kubernetes" {
			bad(p+".port", "required for environments other than staging (8100) and production (8000)")
		}
		port(p+".port", e.Port)
		if e.KeepReleases < 2 {
			bad(p+".keep-releases", "expected 2 or more (the serving release and one to roll back to), got %d", e.KeepReleases)
		}
		if other, dup := ports[e.Port]; dup && e.Target != "kubernetes" {
			bad(p+".port", "port %d is already used by environment %s", e.Port, other)
		}
		if e.Target != "kubernetes" {
			ports[e.Port] = name
		}
		if e.URL != "" || e.Target != "kubernetes" {
			httpURL(p+".url", e.URL)
		}
		if h := e.Docker.Host; h != "" && !hasAnyPrefix(h, "unix://", "tcp://", "ssh://", "npipe://") {
			bad(p+".docker.host", "expected unix://, tcp:// or ssh://, got %q", redactURL(h))
		}
		if d := e.Docker; strings.HasPrefix(d.Host, "tcp://") && d.CertPath == "" {
			switch {
			case d.TLSVerify:
				bad(p+".docker.tls-verify", "needs docker.cert-path, a directory with ca.pem, cert.pem and key.pem")
			case !d.AllowPlaintext:
				bad(p+".docker.host", "plaintext TCP to %s: give docker.cert-path (and tls-verify: true), use ssh://, or set docker.allow-plaintext: true", redactURL(d.Host))
			}
		}
		if d := e.Docker; (d.TLSVerify || d.CertPath != "" || d.AllowPlaintext) && !strings.HasPrefix(d.Host, "tcp://") && d.Host != "" {
			bad(p+".docker", "tls-verify, cert-path and allow-plaintext apply to tcp:// hosts only, not %q", redactURL(d.Host))
		}
		if k := e.Kubernetes; e.Target == "kubernetes" {
			if k.Replicas < 1 {
				bad(p+".kubernetes.replicas", "expected 1 or more, got %d", k.Replicas)
			}
			if k.GPUs < 0 {
				bad(p+".kubernetes.gpus", "expected 0 or more, got %d", k.GPUs)
			}
			port(p+".kubernetes.service-port", k.ServicePort)
			validateKubernetes(bad, p+".kubernetes", &k)
		}
	}

	n := c.Notifications
	if n.Slack != nil && !n.Slack.WebhookURL.IsSet() {
		bad("notifications.slack.webhook-url", "required: a secret reference such as env:SLACK_WEBHOOK_URL")
	}
	if n.Webhook != nil {
		httpURL("notifications.webhook.url", n.Webhook.URL)
		if !n.Webhook.Secret.IsSet() {
			bad("notifications.webhook.secret", "required: the HMAC key as a secret reference such as env:MODELSHIP_WEBHOOK_SECRET")
		}
	}
	if n.Grafana != nil {
		httpURL("notifications.grafana.url", n.Grafana.URL)
		if !n.Grafana.Token.IsSet() {
			bad("notifications.grafana.token", "required: a secret reference such as env:GRAFANA_TOKEN")
		}
	}
	if n.Pushgateway != nil {
		httpURL("notifications.pushgateway.url", n.Pushgateway.URL)
	}
}

// Environment is environments.NAME, or an error naming the config file
// when it has no such environment.
func (c *Config) Environment(name string) (*Environment, error) {
	if e := c.Environments[name]; e != nil {
		return e, nil
	}
	return nil, fmt.Errorf("%s has no environment %q", c.File, name)
}

// ModelPath is model.path resolved against the config file's directory.
func (c *Config) ModelPath() string {
	if c.Model.Path == "" {
		return ""
	}
	return c.Rel(c.Model.Path)
}

// Rel is a path the config file names (a suite, a compose file): as given
// when absolute, else relative to the config file's directory.
func (c *Config) Rel(path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(filepath.Dir(c.File), path)
}

// Secrets lists every secret reference in the config by key path, so callers
// can resolve (and mask) them all.
func (c *Config) Secrets() map[string]Secret {
	out := map[string]Secret{}
	add := func(path string, s Secret) {
		if s.IsSet() {
			out[path] = s
		}
	}
	add("serving.api-key", c.Serving.APIKey)
	add("serving.hf-token", c.Serving.HFToken)
	for name, e := range c.Environments {
		if e != nil {
			add("environments."+name+".serving.api-key", e.Serving.APIKey)
			add("environments."+name+".serving.hf-token", e.Serving.HFToken)
		}
	}
	add("registry.password", c.Registry.Password)
	add("registry.docker-config", c.Registry.DockerConfig)
	if n := c.Notifications; n.Slack != nil {
		add("notifications.slack.webhook-url", n.Slack.WebhookURL)
	}
	if n := c.Notifications; n.Webhook != nil {
		add("notifications.webhook.secret", n.Webhook.Secret)
	}
	if n := c.Notifications; n.Grafana != nil {
		add("notifications.grafana.token", n.Grafana.Token)
	}
	return out
}

func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// redactURL drops user info and query from a URL before it is printed: either
// may carry a credential.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable URL)"
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	if u.RawQuery != "" {
		u.RawQuery = "REDACTED"
	}
	return u.String()
}

var (
	dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dns1035Label = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
	labelName    = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// maxKubernetesName leaves room for "-RELEASE" (21 characters: a blue-green
// Deployment is NAME-20250102-150405-3fa9) in a 63-character name.
const maxKubernetesName = 42

// validKey reports whether k is a Kubernetes label or taint key:
// [PREFIX/]NAME, NAME up to 63 characters, PREFIX a DNS subdomain.
func validKey(k string) bool {
	prefix, name, found := strings.Cut(k, "/")
	if !found {
		prefix, name = "", k
	} else if prefix == "" || len(prefix) > 253 || !dnsSubdomain.MatchString(prefix) {
		return false
	}
	return len(name) <= 63 && labelName.MatchString(name)
}

func validValue(v string) bool { return v == "" || (len(v) <= 63 && labelName.MatchString(v)) }

func validateKubernetes(bad func(path, format string, args ...any), p string, k *KubernetesTarget) {
	if len(k.Namespace) > 63 || !dns1123Label.MatchString(k.Namespace) {
		bad(p+".namespace", "expected a namespace name (lower-case letters, digits and -, up to 63), got %q", k.Namespace)
	}
	if len(k.Name) > maxKubernetesName || !dns1035Label.MatchString(k.Name) {
		bad(p+".name", "expected a name of lower-case letters, digits and -, starting with a letter, up to %d characters (a blue-green Deployment adds -RELEASE), got %q", maxKubernetesName, k.Name)
	}
	if k.ServicePort == 0 {
		bad(p+".service-port", "expected a port from 1 to 65535, got 0")
	}
	keys := make([]string, 0, len(k.NodeSelector))
	for key := range k.NodeSelector {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	for _, key := range keys {
		if !validKey(key) {
			bad(p+".node-selector."+key, "expected a label key ([prefix/]name, name up to 63 letters, digits, -, _ or .), got %q", key)
		}
		if v := k.NodeSelector[key]; !validValue(v) {
			bad(p+".node-selector."+key, "expected a label value (up to 63 letters, digits, -, _ or ., starting and ending alphanumeric), got %q", v)
		}
	}
	if r := k.RuntimeClassName; r != "" && (len(r) > 253 || !dnsSubdomain.MatchString(r)) {
		bad(p+".runtime-class-name", "expected a RuntimeClass name (lower-case letters, digits, - and ., up to 253), got %q", r)
	}
	if !slices.Contains([]string{"Always", "IfNotPresent", "Never"}, k.ImagePullPolicy) {
		bad(p+".image-pull-policy", "expected \"Always\", \"IfNotPresent\" or \"Never\", got %q", k.ImagePullPolicy)
	}
	for i, t := range k.Tolerations {
		tp := fmt.Sprintf("%s.tolerations[%d]", p, i)
		if t.Key != "" && !validKey(t.Key) {
			bad(tp+".key", "expected a taint key ([prefix/]name), got %q", t.Key)
		}
		switch t.Operator {
		case "Equal":
			if t.Key == "" {
				bad(tp+".key", "required with operator Equal (use operator Exists to tolerate every taint)")
			}
			if !validValue(t.Value) {
				bad(tp+".value", "expected a taint value (up to 63 letters, digits, -, _ or .), got %q", t.Value)
			}
		case "Exists":
			if t.Value != "" {
				bad(tp+".value", "must be empty with operator Exists, got %q", t.Value)
			}
		default:
			bad(tp+".operator", "expected \"Equal\" or \"Exists\", got %q", t.Operator)
		}
		if !slices.Contains([]string{"", "NoSchedule", "PreferNoSchedule", "NoExecute"}, t.Effect) {
			bad(tp+".effect", "expected \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\" or nothing (all effects), got %q", t.Effect)
		}
		if t.TolerationSeconds != nil {
			if t.Effect != "NoExecute" {
				bad(tp+".toleration-seconds", "only applies to effect NoExecute, got effect %q", t.Effect)
			} else if *t.TolerationSeconds < 0 {
				bad(tp+".toleration-seconds", "expected 0 or more seconds, got %d", *t.TolerationSeconds)
			}
		}
	}
}

// validateServing checks the serving settings, the file's and each
// environment's as it will run (its override over the file's), as vLLM's
// command line would: ranges, choices and types from the recorded vLLM
// flags, and engine-args flag by flag. A problem is reported at the key
// that gave the value.
func (c *Config) validateServing(d *decoder, bad func(path, format string, args ...any)) {
	// given says whether this section gave the key; an environment reports
	// only what it gives, what it inherits is reported once at serving.
	check := func(prefix string, s serving.Settings, given func(key string) bool) {
		report := func(key, format string, args ...any) {
			if base, _, _ := strings.Cut(key, "["); given(base) {
				bad(prefix+key, format, args...)
			}
		}
		if s.GPUMemoryUtilization < 0 || s.GPUMemoryUtilization > 1 {
			report("gpu-memory-utilization", "expected a fraction above 0 and at most 1, got %g", s.GPUMemoryUtilization)
		}
		for _, k := range []struct {
			key string
			v   int
		}{{"tensor-parallel-size", s.TensorParallelSize}, {"max-model-len", s.MaxModelLen}, {"max-num-seqs", s.MaxNumSeqs}} {
			if k.v < 0 {
				report(k.key, "expected 1 or more (or leave it out for the default), got %d", k.v)
			}
		}
		if t := s.ChatTemplate; t != "" && (filepath.IsAbs(t) || strings.HasPrefix(filepath.Clean(t), "..")) {
			report("chat-template", "expected a file inside the checkpoint directory, relative to it (it travels in the image with the weights), got %q", t)
		}
		for _, p := range serving.VLLM().Check(s) {
			report(p.Key, "%s", p.Msg)
		}
		// What the file gives (vLLM's defaults filled in are not given).
		for _, p := range serving.Unsupported(c.Serving.Engine, s) {
			if d.given(prefix + p.Key) {
				report(p.Key, "%s", p.Msg)
			}
		}
	}
	check("serving.", c.Serving.Settings, func(string) bool { return true })
	names := make([]string, 0, len(c.Environments))
	for name, e := range c.Environments {
		if e != nil && !reflect.ValueOf(e.Serving.Settings).IsZero() {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		prefix := "environments." + name + ".serving."
		check(prefix, c.ServingFor(name), func(key string) bool { return d.given(prefix + key) })
	}
}

// ServingFor is the serving settings environment env runs with: the
// file's, with the environment's `serving:` override over them.
func (c *Config) ServingFor(env string) serving.Settings {
	s := c.Serving.Settings
	if e := c.Environments[env]; e != nil {
		s = s.Override(e.Serving.Settings)
	}
	return s
}

// CredentialsFor is the serving secrets environment env runs with: the
// file's, each replaced where the environment's `serving:` gives it.
func (c *Config) CredentialsFor(env string) Credentials {
	cr := c.Serving.Credentials
	if e := c.Environments[env]; e != nil {
		if e.Serving.APIKey.IsSet() {
			cr.APIKey = e.Serving.APIKey
		}
		if e.Serving.HFToken.IsSet() {
			cr.HFToken = e.Serving.HFToken
		}
	}
	return cr
}

// EngineSecrets resolves the serving secrets of environment env into the
// container variables that carry them (serving.EnvAPIKey,
// serving.EnvHFToken); unset ones are left out. An error names the key
// path and the reference, never a value.
func (c *Config) EngineSecrets(env string, getenv func(string) string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range [][2]string{{"api-key", serving.EnvAPIKey}, {"hf-token", serving.EnvHFToken}} {
		key, name := kv[0], kv[1]
		v, err := c.ServingSecret(env, key, getenv)
		if err != nil {
			return nil, err
		}
		if v != "" {
			out[name] = v
		}
	}
	return out, nil
}

// ServingSecret resolves environment env's serving secret key ("api-key"
// or "hf-token"); "" when the config gives none.
func (c *Config) ServingSecret(env, key string, getenv func(string) string) (string, error) {
	cr := c.CredentialsFor(env)
	ref := map[string]Secret{"api-key": cr.APIKey, "hf-token": cr.HFToken}[key]
	if !ref.IsSet() {
		return "", nil
	}
	v, err := ref.Resolve(getenv)
	if err != nil {
		return "", c.Errorf(c.ServingKey(env, key), "%v", err)
	}
	return v, nil
}

// ServingKey is the key path a serving setting of environment env was
// read from: the environment's override when it gives the key, else the
// file's serving section (env "" is the file's).
func (c *Config) ServingKey(env, key string) string {
	if env != "" {
		if p := "environments." + env + ".serving." + key; c.pos[p] != ([2]int{}) {
			return p
		}
	}
	return "serving." + key
}

// Errorf is an error about the value at a key path (serving.max-model-len),
// naming the file, line and column it was read from: for checks made after
// loading, against the checkpoint or the GPUs.
func (c *Config) Errorf(path, format string, args ...any) error {
	e := &Error{File: c.File, Path: path, Msg: fmt.Sprintf(format, args...)}
	for p := path; p != ""; {
		if pos, ok := c.pos[p]; ok {
			e.Line, e.Column = pos[0], pos[1]
			break
		}
		i := strings.LastIndex(p, ".")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return e
}

// RegistryCredentials are the logins deploys send when they pull: the
// registry.docker-config file's and registry.username/password for the
// registry of registry.repository (which wins for its host). nil when none
// is configured. getenv is os.Getenv when nil.
func (c *Config) RegistryCredentials(getenv func(string) string) (*registryauth.Store, error) {
	r := c.Registry
	var store *registryauth.Store
	if r.DockerConfig.IsSet() {
		data, err := r.DockerConfig.Resolve(getenv)
		if err != nil {
			return nil, c.Errorf("registry.docker-config", "%v", err)
		}
		if store, err = registryauth.ParseDockerConfig([]byte(data)); err != nil {
			return nil, c.Errorf("registry.docker-config", "%s: %v", r.DockerConfig, err)
		}
	}
	if r.Username != "" {
		pass, err := r.Password.Resolve(getenv)
		if err != nil {
			return nil, c.Errorf("registry.password", "%v", err)
		}
		host, err := registryauth.Registry(r.Repository)
		if err != nil {
			return nil, c.Errorf("registry.repository", "%v", err)
		}
		store = store.With(registryauth.Credential{Registry: host, Username: r.Username, Password: pass})
	}
	return store, nil
}
