package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, stdio{in: strings.NewReader(""), out: &out, err: &errb})
	return code, out.String(), errb.String()
}

func TestConfigCheck(t *testing.T) {
	t.Setenv("MODELSHIP_WEBHOOK_SECRET", "hunter2-value")
	code, out, errs := runCLI(t, "config", "check", "../../modelship.yaml")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"engine: sim", "image: vllm/vllm-openai:", "port: 8100", "secret: env:MODELSHIP_WEBHOOK_SECRET", "pass-rate: 1", "keep-releases: 10"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+errs, "hunter2-value") {
		t.Error("a resolved secret was printed")
	}
}

func TestConfigCheckErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "modelship.yaml")
	os.WriteFile(bad, []byte("model:\n  path: .\nserving:\n  engine: tgi\n"), 0o644)
	code, _, errs := runCLI(t, "config", "check", bad)
	if code != exitUsage || !strings.Contains(errs, bad+":4:11: serving.engine: expected \"vllm\" or \"sim\"") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	os.WriteFile(bad, []byte("model:\n  path: nowhere\n"), 0o644)
	code, _, errs = runCLI(t, "config", "check", bad)
	if code != exitUsage || !strings.Contains(errs, "model.path") || !strings.Contains(errs, "does not exist") {
		t.Errorf("missing model: exit %d, stderr %q", code, errs)
	}
	code, _, errs = runCLI(t, "config", "check", filepath.Join(dir, "absent.yaml"))
	if code != exitUsage || !strings.Contains(errs, "absent.yaml") {
		t.Errorf("missing file: exit %d, stderr %q", code, errs)
	}
	t.Setenv("MODELSHIP_WEBHOOK_SECRET", "")
	code, _, errs = runCLI(t, "config", "check", "../../modelship.yaml")
	if code != exitOK || !strings.Contains(errs, "warning:") || !strings.Contains(errs, "MODELSHIP_WEBHOOK_SECRET is not set") {
		t.Errorf("unresolvable secret: exit %d, stderr %q", code, errs)
	}
}
