package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/modelship/modelship/internal/logging/ecsref"
)

// The serving proxy's logger: its service name, the release's fields on
// every line, a digest that arrives later, short keys moved to ECS names
// or under the namespace, secrets still redacted.
func TestServiceLogger(t *testing.T) {
	var buf bytes.Buffer
	late := &Fields{}
	red := NewRedactor("sk-secret-key-0123")
	l := New(&buf, Options{Format: FormatJSON, Redactor: red, Service: "modelship-serve", Version: "1.2.3", Namespace: "modelship.serve", Fields: late,
		Attrs: []slog.Attr{slog.String(KeyRelease, "r-42"), slog.String(KeyImage, "registry.example/serve:1")}})
	early := l.With("engine", "sim")
	l.Info("starting engine", "cmd", "vllm serve --api-key sk-secret-key-0123", "pid", 4242)
	late.Set(KeyModelDigest, "sha256:abc")
	early.Warn("proxy error", "method", "POST", "path", "/v1/completions", "status", 502, "err", errors.New("refused"))
	late.Set(KeyModelDigest, "sha256:def")
	l.WithGroup("modelship.serve.g").Info("grouped", "k", "v")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), buf.String())
	}
	if strings.Contains(buf.String(), "sk-secret-key-0123") {
		t.Errorf("secret leaked:\n%s", buf.String())
	}
	c := ecsref.NewChecker()
	var got []map[string]any
	for _, line := range lines {
		for _, err := range c.Line([]byte(line)) {
			t.Error(err)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	for _, err := range c.Conflicts() {
		t.Error(err)
	}
	for i, m := range got {
		for k, v := range map[string]any{"service.name": "modelship-serve", "service.version": "1.2.3", KeyRelease: "r-42", KeyImage: "registry.example/serve:1"} {
			if m[k] != v {
				t.Errorf("line %d: %s = %v, want %v", i, k, m[k], v)
			}
		}
	}
	if _, ok := got[0][KeyModelDigest]; ok {
		t.Errorf("digest on a line before it was known: %v", got[0])
	}
	want := map[string]any{KeyModelDigest: "sha256:abc", "modelship.serve.engine": "sim", "http.request.method": "POST",
		"url.path": "/v1/completions", "modelship.serve.status": 502.0, KeyError: "refused"}
	for k, v := range want {
		if got[1][k] != v {
			t.Errorf("line 2: %s = %v, want %v", k, got[1][k], v)
		}
	}
	if got[0]["process.pid"] != 4242.0 || got[2][KeyModelDigest] != "sha256:def" {
		t.Errorf("pid %v, later digest %v", got[0]["process.pid"], got[2][KeyModelDigest])
	}
	if g, _ := got[2]["modelship.serve.g"].(map[string]any); g["k"] != "v" {
		t.Errorf("group attrs: %v", got[2])
	}
}

// The CLI's lines (the documented fields) are ECS or modelship's own.
func TestCLIFieldsAgainstECS(t *testing.T) {
	if ecsref.Version != ECSVersion {
		t.Fatalf("the ECS reference is %s, logging writes ecs.version %s", ecsref.Version, ECSVersion)
	}
	var buf bytes.Buffer
	l := New(&buf, Options{Redactor: NewRedactor(), Version: "1.2.3", Getenv: noEnv}).With(slog.String(KeyStage, "deploy"), slog.String(KeyEnvironment, "staging"))
	l.Info("deploy started", slog.String(KeyStatus, "started"), slog.String(KeyRelease, "r-1"), slog.String(KeyModel, "m"),
		slog.String(KeyModelDigest, "sha256:a"), slog.String(KeyImage, "img:1"), slog.String(KeyImageDigest, "sha256:b"),
		slog.String(KeyGitSHA, "abc"), slog.String(KeyRunURL, "https://ci/1"))
	l.Error("deploy failed", slog.String(KeyOutcome, "failure"), slog.String(KeyStatus, "failed"), Err(errors.New("boom")))
	c := ecsref.NewChecker()
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		for _, err := range c.Line([]byte(line)) {
			t.Error(err)
		}
	}
	for _, err := range c.Conflicts() {
		t.Error(err)
	}
	if n := len(c.Names()); n < 17 {
		t.Errorf("%d field names checked: %v", n, c.Names())
	}
}
