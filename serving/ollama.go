package serving

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// EngineOllama serves a GGUF checkpoint on CPUs (and small GPUs) with
// Ollama's llama.cpp runner: `ollama serve` on loopback, the checkpoint
// made an Ollama model from a Modelfile (OllamaModelfile) under each
// served name, preloaded and kept loaded.
const EngineOllama = "ollama"

// OllamaVersion is the Ollama release the contract is written for: the
// one the CI builds from the Go module proxy (.ci/deps/ollama-build.sh).
const OllamaVersion = "0.12.6"

// OllamaImage is the official image of that release: serving.image may
// name it for engine ollama (the binary is at /usr/bin/ollama there).
const OllamaImage = "ollama/ollama:" + OllamaVersion

// OllamaProgram is how a serving image starts Ollama; its settings are the
// Modelfile's and the environment's, not flags.
var OllamaProgram = []string{"ollama", "serve"}

// ollamaKeys are the settings Ollama has an equivalent for: max-model-len
// is the Modelfile's num_ctx, max-num-seqs is OLLAMA_NUM_PARALLEL.
var ollamaKeys = []string{"max-model-len", "max-num-seqs"}

// Unsupported lists the settings s gives that engine has no equivalent
// for, each with why; vLLM and the simulator take them all.
func Unsupported(engine string, s Settings) []Problem {
	if engine != EngineOllama {
		return nil
	}
	var out []Problem
	for _, f := range fields {
		if f.get(&s) == "" || slices.Contains(ollamaKeys, f.Key) {
			continue
		}
		out = append(out, Problem{Key: f.Key, Msg: fmt.Sprintf("engine ollama has no equivalent of vLLM's %s (it takes max-model-len and max-num-seqs); remove it, or serve with engine vllm", f.Flag)})
	}
	return out
}

// OllamaModelfile is the Modelfile that makes the GGUF file gguf an Ollama
// model with s: FROM the file, num_ctx from max-model-len. Greedy answers
// stay as the model gives them: no parameter overrides a request's own.
func (s Settings) OllamaModelfile(gguf string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "FROM %s\n", gguf)
	if s.MaxModelLen > 0 {
		fmt.Fprintf(&b, "PARAMETER num_ctx %d\n", s.MaxModelLen)
	}
	return b.String()
}

// OllamaEnv is `ollama serve`'s environment for s on host:port with its
// models in modelsDir: loopback only, models kept loaded for ever, and
// max-num-seqs as the requests served at once.
func (s Settings) OllamaEnv(host string, port int, modelsDir string) []string {
	env := []string{
		"OLLAMA_HOST=" + host + ":" + strconv.Itoa(port),
		"OLLAMA_MODELS=" + modelsDir,
		"OLLAMA_KEEP_ALIVE=-1",
		// One model per serving container: never unload it for another.
		"OLLAMA_MAX_LOADED_MODELS=1",
	}
	if s.MaxNumSeqs > 0 {
		env = append(env, "OLLAMA_NUM_PARALLEL="+strconv.Itoa(s.MaxNumSeqs))
	}
	return env
}
