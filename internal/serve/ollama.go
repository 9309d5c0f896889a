package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// EngineAPI is where serve finds an engine's health and version, and what
// the engine appends to model ids in GET /v1/models (which the proxy
// hides from clients, so the served name is exactly model.served-name).
type EngineAPI struct {
	Health, Version string
	ModelIDSuffix   string
	// NoMetrics: the engine exports no /metrics; the proxy measures.
	NoMetrics bool
}

// APIFor is engine's EngineAPI: vLLM's (and the simulator's) /health and
// /version, or Ollama's / and /api/version with ":latest" ids.
func APIFor(engine string) EngineAPI {
	if engine == EngineOllama {
		return EngineAPI{Health: "/", Version: "/api/version", ModelIDSuffix: ":latest", NoMetrics: true}
	}
	return EngineAPI{Health: "/health", Version: "/version"}
}

// FindGGUF is the GGUF file of a checkpoint: path itself, or the one
// *.gguf file in the directory path.
func FindGGUF(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return path, nil
	}
	files, _ := filepath.Glob(filepath.Join(path, "*.gguf"))
	switch len(files) {
	case 1:
		return files[0], nil
	case 0:
		return "", fmt.Errorf("engine ollama serves a GGUF file; %s has no *.gguf", path)
	}
	return "", fmt.Errorf("engine ollama serves one GGUF file; %s has %d: %s", path, len(files), strings.Join(files, ", "))
}

// ollama makes the checkpoint an Ollama model under every served name and
// loads it: the engine's part of becoming ready.
type ollama struct {
	program   string   // the ollama binary
	env       []string // the engine's environment (OLLAMA_HOST, ...)
	modelfile string   // path of the Modelfile
	names     []string // served name first, then the aliases
	proxy     *Proxy
	log       *slog.Logger
}

// newOllama writes the Modelfile for c into dir and returns the preparer.
func newOllama(c Config, program string, env []string, dir string, p *Proxy, log *slog.Logger) (*ollama, string, error) {
	gguf, err := FindGGUF(c.ModelPath)
	if err != nil {
		return nil, "", err
	}
	if gguf, err = filepath.Abs(gguf); err != nil {
		return nil, "", err
	}
	mf := c.Settings.OllamaModelfile(gguf)
	path := filepath.Join(dir, "Modelfile")
	if err := os.WriteFile(path, []byte(mf), 0o644); err != nil {
		return nil, "", err
	}
	return &ollama{program: program, env: env, modelfile: path,
		names: append([]string{c.servedName()}, c.ServedAliases...), proxy: p, log: log}, mf, nil
}

// prepare creates the model under each name (`ollama create NAME -f
// Modelfile`: the GGUF is copied into the models directory once) and
// loads it (POST /api/generate with keep_alive -1). A GGUF that Ollama
// accepts but cannot load fails here, with the runner's error.
func (o *ollama) prepare(ctx context.Context) error {
	for _, name := range o.names {
		t := time.Now()
		cmd := exec.CommandContext(ctx, o.program, "create", name, "-f", o.modelfile)
		cmd.Env = o.env
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("ollama create %s: %v: %s", name, err, lastLine(out))
		}
		o.log.Info("ollama model created", "name", name, "took", time.Since(t).Round(time.Millisecond).String())
	}
	t := time.Now()
	o.log.Info("loading the model", "name", o.names[0])
	req, _ := json.Marshal(map[string]any{"model": o.names[0], "keep_alive": -1})
	code, body, err := o.proxy.call(ctx, "POST", "/api/generate", req)
	if err != nil {
		return fmt.Errorf("loading %s: %v", o.names[0], err)
	}
	if code != 200 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("loading %s: ollama answered %d: %s", o.names[0], code, e.Error)
		}
		return fmt.Errorf("loading %s: ollama answered %d%s", o.names[0], code, snippet(body))
	}
	o.log.Info("model loaded", "name", o.names[0], "took", time.Since(t).Round(time.Millisecond).String())
	return nil
}

// lastLine is the last non-empty line of a command's output, without the
// terminal control sequences Ollama's CLI writes.
func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(stripANSI(lines[i]))
		if l != "" {
			return l
		}
	}
	return "(no output)"
}

func stripANSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
				j++
			}
			i = j
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// rewriteModelIDs strips suffix from the ids of an OpenAI model list.
func rewriteModelIDs(body []byte, suffix string) ([]byte, error) {
	var list map[string]any
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, err
	}
	data, _ := list["data"].([]any)
	for _, m := range data {
		if obj, ok := m.(map[string]any); ok {
			if id, ok := obj["id"].(string); ok {
				obj["id"] = strings.TrimSuffix(id, suffix)
			}
		}
	}
	return json.Marshal(list)
}

// ollamaEngine sets what engine ollama needs before Run starts it: its
// models directory (OLLAMA_MODELS as given, else a new one under the
// temporary directory, removed by cleanup), its environment (env: base
// with the contract's variables, own: those alone, for /version) and the
// Modelfile; it sets p.Prepare to create and load the model.
func ollamaEngine(c Config, program string, base []string, p *Proxy, log *slog.Logger) (env, own []string, modelfile string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "modelship-ollama-")
	if err != nil {
		return nil, nil, "", func() {}, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	models := filepath.Join(dir, "models")
	if v := os.Getenv("OLLAMA_MODELS"); v != "" {
		models = v
	}
	env = slices.Clone(base)
	if !writableDir(os.Getenv("HOME")) {
		// Ollama writes its key under $HOME/.ollama and fails without it;
		// a non-root pod's HOME is "/" when the image has no such user.
		env = append(env, "HOME="+dir)
	}
	own = c.Settings.OllamaEnv("127.0.0.1", c.EnginePort, models)
	env = append(env, own...)
	o, mf, err := newOllama(c, program, env, dir, p, log)
	if err != nil {
		cleanup()
		return nil, nil, "", func() {}, err
	}
	p.Prepare = o.prepare
	return env, own, mf, cleanup, nil
}

// writableDir reports whether dir is a directory this process can create
// files in.
func writableDir(dir string) bool {
	if dir == "" {
		return false
	}
	f, err := os.CreateTemp(dir, ".modelship-probe-")
	if err != nil {
		return false
	}
	f.Close()
	os.Remove(f.Name())
	return true
}
