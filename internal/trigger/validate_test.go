package trigger

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mlflowEvent is a model_version.created payload for name and version,
// with digest as the modelship.digest tag when set.
func mlflowEvent(name, version, digest string) string {
	tags := map[string]string{}
	if digest != "" {
		tags[DigestTag] = digest
	}
	b, _ := json.Marshal(map[string]any{"entity": "model_version", "action": "created", "timestamp": "2026-09-22T10:00:00+00:00",
		"data": map[string]any{"name": name, "version": version, "source": "models:/m-123", "tags": tags}})
	return string(b)
}

// TestUnsafeEventValuesNeverReachTheCommand: every value a --run command
// can receive is checked before anything runs; a refused event is a 4xx
// naming the field and what was expected, and the command never runs.
func TestUnsafeEventValuesNeverReachTheCommand(t *testing.T) {
	f := newFixture(t)
	out := filepath.Join(t.TempDir(), "args")
	c := &Command{Argv: []string{"sh", "-c", `printf '%s|' "$@" >> "$0"`, out, "release", "{repo}", "{revision}", "{digest}", "--source={source}"}}
	f.s.Starter = c
	digest := "sha256:" + strings.Repeat("4a", 32)
	sha := "575db8b7a51b6f85eb06eee540738584589f131c"
	tests := []struct {
		name string
		post func() (int, Result)
		code int
		want []string
	}{
		{"mlflow name that is an option", func() (int, Result) {
			return f.postMLflow(t, mlflowSecret, "d-1", f.now, mlflowEvent("--config=/tmp/x.yaml", "3", digest))
		}, 400, []string{`data.name "--config=/tmp/x.yaml"`, "expected", "not starting with -"}},
		{"mlflow digest tag that is not a digest", func() (int, Result) {
			return f.postMLflow(t, mlflowSecret, "d-2", f.now, mlflowEvent("tiny-chat", "3", "sha256:zz"))
		}, 400, []string{`data.tags["modelship.digest"] "sha256:zz"`, "expected sha256: and 64 lowercase hex digits"}},
		{"mlflow name with a path escape", func() (int, Result) {
			return f.postMLflow(t, mlflowSecret, "d-3", f.now, mlflowEvent("../../etc", "3", digest))
		}, 400, []string{"data.name", "expected"}},
		{"mlflow without the digest the command needs", func() (int, Result) {
			return f.postMLflow(t, mlflowSecret, "d-4", f.now, mlflowEvent("tiny-chat", "3", ""))
		}, 422, []string{"{digest}", "digest is empty", "expected sha256: and 64 lowercase hex digits"}},
		{"hf repository with shell syntax", func() (int, Result) {
			return f.postHF(t, hfSecret, strings.Replace(hfPayloadFor(sha), "acme/tiny-chat", "acme/x;touch pwned", 1))
		}, 400, []string{`repo.name "acme/x;touch pwned"`, "expected"}},
		{"hf short commit", func() (int, Result) {
			return f.postHF(t, hfSecret, hfPayloadFor("575db8b"))
		}, 400, []string{`"575db8b"`, "expected a git commit: 40 lowercase hex digits"}},
		{"hf event (never a digest) for a command that needs one", func() (int, Result) {
			return f.postHF(t, hfSecret, hfPayloadFor(sha))
		}, 422, []string{"{digest}", "digest is empty"}},
	}
	for _, tt := range tests {
		code, r := tt.post()
		if code != tt.code || r.Status != "rejected" {
			t.Errorf("%s: %d %+v, want %d rejected", tt.name, code, r, tt.code)
		}
		for _, w := range tt.want {
			if !strings.Contains(r.Reason, w) {
				t.Errorf("%s: reason %q lacks %q", tt.name, r.Reason, w)
			}
		}
	}
	if k := f.s.Store.Keys(""); len(k) != 0 {
		t.Errorf("refused events were recorded: %v", k)
	}
	if b, err := os.ReadFile(out); err == nil {
		t.Errorf("the command ran with %q", b)
	}
	for _, leak := range []string{hfSecret, mlflowSecret} {
		if strings.Contains(f.logs.String(), leak) {
			t.Errorf("log holds a secret:\n%s", f.logs)
		}
	}

	// A valid event runs it, every value one argument.
	code, r := f.postMLflow(t, mlflowSecret, "d-9", f.now, mlflowEvent("team.llm/tiny_chat-2", "12", digest))
	if code != http.StatusAccepted {
		t.Fatalf("valid event: %d %+v\n%s", code, r, f.logs)
	}
	want := "release|team.llm/tiny_chat-2|12|" + digest + "|--source=mlflow:team.llm/tiny_chat-2/12|"
	key := "mlflow:team.llm/tiny_chat-2/12"
	waitFor(t, key+" finished", func() bool { return f.s.Store.State(key) == Finished })
	if b, _ := os.ReadFile(out); string(b) != want {
		t.Errorf("the command got %q\nwant %q", b, want)
	}
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline (a bound on a hang, not a speed requirement).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestEventValidate checks each field's pattern on its own.
func TestEventValidate(t *testing.T) {
	sha := strings.Repeat("ab", 20)
	digest := "sha256:" + strings.Repeat("0f", 32)
	good := []Event{
		{Source: "huggingface", Repo: "acme/tiny-chat", Revision: sha},
		{Source: "huggingface", Repo: "gpt2", Revision: strings.Repeat("c", 64)},
		{Source: "mlflow", Repo: "prod.llm.tiny_chat", Revision: "1", Digest: digest},
		{Source: "mlflow", Repo: "Tiny", Revision: "99"},
	}
	for _, ev := range good {
		if err := ev.Validate(); err != nil {
			t.Errorf("%+v: %v", ev, err)
		}
	}
	bad := []struct {
		ev   Event
		want string
	}{
		{Event{Source: "github", Repo: "a/b", Revision: sha}, `source "github": expected huggingface or mlflow`},
		{Event{Source: "huggingface", Repo: "", Revision: sha}, "repo is empty: expected"},
		{Event{Source: "huggingface", Repo: "-x/y", Revision: sha}, `repo "-x/y": expected`},
		{Event{Source: "huggingface", Repo: "a/b/c", Revision: sha}, `repo "a/b/c": expected`},
		{Event{Source: "huggingface", Repo: "a/" + strings.Repeat("n", 200), Revision: sha}, "at most 96"},
		{Event{Source: "huggingface", Repo: "a/b", Revision: strings.ToUpper(sha)}, "expected a git commit"},
		{Event{Source: "huggingface", Repo: "a/b", Revision: ""}, "revision is empty"},
		{Event{Source: "mlflow", Repo: "m", Revision: "03"}, `revision "03": expected a version number`},
		{Event{Source: "mlflow", Repo: "m", Revision: "1", Digest: "sha256:" + strings.Repeat("0F", 32)}, "expected sha256: and 64 lowercase hex digits"},
		{Event{Source: "mlflow", Repo: "a b", Revision: "1"}, `repo "a b": expected`},
		{Event{Source: "mlflow", Repo: "a\nb", Revision: "1"}, `repo "a\nb": expected`},
	}
	for _, tt := range bad {
		err := tt.ev.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.ev, err, tt.want)
		}
	}
}
