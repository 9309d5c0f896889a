package secretsexec

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func put(t *testing.T, dir, ref, value string) {
	t.Helper()
	p, err := Path(ref)
	if err != nil {
		t.Fatal(err)
	}
	p = filepath.Join(dir, p)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(value), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestApply(t *testing.T) {
	dir, root := filepath.Join(t.TempDir(), "secrets"), t.TempDir()
	put(t, dir, "env:MODELSHIP_WEBHOOK_SECRET", "s3cret value\nwith a line")
	put(t, dir, "file:/run/secrets/slack-url", "https://hooks.example/x")
	// A file already there (a mounted default) is replaced, and made private.
	if err := os.MkdirAll(filepath.Join(root, "run/secrets"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "run/secrets/slack-url"), []byte("old"), 0o644)

	env, err := Apply(dir, root)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(env, []string{"MODELSHIP_WEBHOOK_SECRET=s3cret value\nwith a line"}) {
		t.Errorf("env = %q", env)
	}
	got, err := os.ReadFile(filepath.Join(root, "run/secrets/slack-url"))
	if err != nil || string(got) != "https://hooks.example/x" {
		t.Errorf("file secret: %q, %v", got, err)
	}
	if fi, _ := os.Stat(filepath.Join(root, "run/secrets/slack-url")); fi.Mode().Perm() != 0o600 {
		t.Errorf("file secret mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the secrets directory is still there: %v", err)
	}
}

func TestApplyNoDirectory(t *testing.T) {
	env, err := Apply(filepath.Join(t.TempDir(), "none"), t.TempDir())
	if err != nil || env != nil {
		t.Errorf("Apply(missing) = %q, %v; want nothing", env, err)
	}
}

func TestPathRefuses(t *testing.T) {
	for _, ref := range []string{"env:1BAD", "env:", "file:relative/path", "file:/a/../b", "file:/", "vault:x", "MODELSHIP_TOKEN"} {
		if _, err := Path(ref); err == nil || !strings.Contains(err.Error(), "env:NAME or file:/absolute/path") {
			t.Errorf("Path(%q) = %v, want a refusal saying what is expected", ref, err)
		}
	}
}

func TestApplyRefusesABadName(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "env"), 0o700)
	os.WriteFile(filepath.Join(dir, "env", "not-a-name"), []byte("hidden-value"), 0o600)
	_, err := Apply(dir, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "not-a-name") || strings.Contains(err.Error(), "hidden-value") {
		t.Errorf("err = %v, want one naming the entry and not its value", err)
	}
}
