package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// OllamaBinEnv names the Ollama binary the tests run (.ci/run sets it to
// what .ci/deps/ollama-build.sh built).
const OllamaBinEnv = "MODELSHIP_OLLAMA_BIN"

// Ollama is the Ollama binary for a test: MODELSHIP_OLLAMA_BIN, else
// `ollama` on PATH. Without one the test is skipped (failed under CI=true).
func Ollama(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv(OllamaBinEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			tb.Fatalf("%s: %v", OllamaBinEnv, err)
		}
		return p
	}
	if p, err := exec.LookPath("ollama"); err == nil {
		return p
	}
	Unavailable(tb, "no Ollama binary: set "+OllamaBinEnv+" (bash .ci/deps/ollama-build.sh builds one) or put ollama on PATH")
	return ""
}
