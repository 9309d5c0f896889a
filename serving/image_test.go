package serving

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// The image's layout carries what the deploy targets and `modelship serve`
// read: the settings as engine flags (label) and environment, the model
// digest both ways, the served names, the health check a Docker target can
// run, and the git commit only when known.
func TestLayout(t *testing.T) {
	c := &Contract{ServedName: "llama", Aliases: []string{"a", "b"}, Env: []string{"MODELSHIP_MAX_MODEL_LEN=4096"},
		Argv: Settings{}.Argv(ModelDir, []string{"llama", "a", "b"}, "127.0.0.1", EnginePort)}
	f := ImageFacts{Engine: EngineSim, ModelDigest: "sha256:abc", Revision: "0123abc", Created: "2026-01-02T03:04:05Z",
		BaseName: "debian:bookworm-slim", BaseDigest: "sha256:def"}
	l, err := c.Layout(f)
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{}
	for _, kv := range l.Labels {
		labels[kv[0]] = kv[1]
	}
	var flags, health []string
	if err := json.Unmarshal([]byte(labels[LabelSettings]), &flags); err != nil || !slices.Equal(flags, c.Argv[len(VLLMProgram)+1:]) {
		t.Errorf("label %s = %s (%v), want the argv after %v MODEL: %q", LabelSettings, labels[LabelSettings], err, VLLMProgram, c.Argv)
	}
	if err := json.Unmarshal([]byte(labels[LabelHealthcheck]), &health); err != nil || len(health) < 3 || health[0] != "CMD" || health[1] != BinaryPath || health[2] != "smoke" ||
		!strings.Contains(labels[LabelHealthcheck], "http://127.0.0.1:8000") {
		t.Errorf("label %s = %s (%v), want modelship smoke against port 8000 in the CMD form", LabelHealthcheck, labels[LabelHealthcheck], err)
	}
	for k, want := range map[string]string{LabelModelDigest: "sha256:abc", LabelEngine: EngineSim, LabelBinary: BinaryPath, LabelRevision: "0123abc",
		"org.opencontainers.image.created": f.Created, "org.opencontainers.image.base.name": f.BaseName, "org.opencontainers.image.base.digest": f.BaseDigest} {
		if labels[k] != want {
			t.Errorf("label %s = %q, want %q", k, labels[k], want)
		}
	}
	for _, want := range []string{"MODEL_PATH=/models/current", "MODELSHIP_ENGINE=sim", "MODELSHIP_MODEL_DIGEST=sha256:abc", "PORT=8000",
		"MODELSHIP_SERVED_MODEL_NAME=llama", "MODELSHIP_SERVED_MODEL_ALIASES=a b", "MODELSHIP_MAX_MODEL_LEN=4096", "MODELSHIP_GIT_SHA=0123abc"} {
		if !slices.Contains(l.Env, want) {
			t.Errorf("env %q lacks %s", l.Env, want)
		}
	}
	if !slices.Equal(l.Entrypoint, []string{BinaryPath, "serve"}) || l.Port != Port {
		t.Errorf("entrypoint %q port %d, want modelship serve on %d", l.Entrypoint, l.Port, Port)
	}

	// Without repository metadata: no commit, no creation time.
	l, err = c.Layout(ImageFacts{Engine: EngineVLLM, ModelDigest: "sha256:abc"})
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range l.Labels {
		if kv[0] == LabelRevision || kv[0] == "org.opencontainers.image.created" {
			t.Errorf("label %s = %q without a commit", kv[0], kv[1])
		}
	}
	for _, kv := range l.Env {
		if strings.HasPrefix(kv, EnvGitSHA+"=") {
			t.Errorf("env %s without a commit", kv)
		}
	}
	// A contract whose argv is no vLLM command line is refused, naming it.
	if _, err := (&Contract{Argv: []string{"vllm"}}).Layout(f); err == nil || !strings.Contains(err.Error(), "argv") {
		t.Errorf("short argv: %v, want an error naming the argv", err)
	}
}
