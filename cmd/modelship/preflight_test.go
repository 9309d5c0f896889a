package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelship/modelship/serving/stage"
)

func TestPreflightBundledModel(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := t.TempDir()
	code, out, errs := runCLI(t, "preflight", "../../modelship.yaml", "--json", "--report-dir", dir)
	res := stageResult(t, "preflight", code, out, stage.Passed)
	wantReports(t, res, filepath.Join(dir, "preflight.json"))
	if res.Figures["parameters"] <= 0 || res.Figures["weight_bytes"] <= 0 || !strings.Contains(res.Message, "fit not checked") || !strings.Contains(errs, "Preflight: PASSED") {
		t.Errorf("preflight --json: %+v\n%s", res, errs)
	}
	var rep preflightReport
	b, err := os.ReadFile(filepath.Join(dir, "preflight.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	// The digest is inspect's, over the same files.
	_, inspectOut, _ := runCLI(t, "inspect", "../../testdata/models/good", "--json")
	var direct struct{ Digest string }
	json.Unmarshal([]byte(inspectOut), &direct)
	if rep.Checkpoint.Digest == "" || rep.Checkpoint.Digest != direct.Digest {
		t.Errorf("preflight digest %q, inspect digest %q", rep.Checkpoint.Digest, direct.Digest)
	}
	if rep.Fit != nil || !strings.Contains(rep.FitSkipped, "no NVIDIA GPU") || !rep.Passed {
		t.Errorf("without a GPU the fit must be skipped and said so: %+v", rep)
	}

	code, out, _ = runCLI(t, "preflight", "../../modelship.yaml", "--gpu-memory", "80GiB")
	if code != exitOK || !strings.Contains(out, "two copies: yes") || !strings.Contains(out, "Preflight: PASSED") {
		t.Errorf("80GiB: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "preflight", "../../modelship.yaml", "--gpu-memory", "256MiB")
	if code != exitFailed || !strings.Contains(out, "does not fit") {
		t.Errorf("256MiB: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "preflight", "../../modelship.yaml", "--gpu-memory", "256MiB", "--json")
	res = stageResult(t, "preflight", code, out, stage.Failed)
	if !strings.HasPrefix(res.Message, "failed: ") || !strings.HasSuffix(res.Message, "; does not fit the GPUs") || res.Figures["required_bytes"] <= res.Figures["budget_bytes"] || len(res.Reports) != 0 {
		t.Errorf("256MiB --json: %+v", res)
	}
}

func TestPreflightBadInput(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "modelship.yaml")
	os.WriteFile(cfg, []byte("model:\n  path: "+mustAbs(t, "../../testdata/models/corrupt")+"\n"), 0o644)
	code, _, errs := runCLI(t, "preflight", cfg)
	if code != exitUsage || !strings.Contains(errs, "model.path") || !strings.Contains(errs, "model.safetensors") {
		t.Errorf("corrupt checkpoint: exit %d, %s", code, errs)
	}
	code, _, errs = runCLI(t, "preflight", "../../modelship.yaml", "--gpu-memory", "lots")
	if code != exitUsage || !strings.Contains(errs, "--gpu-memory") {
		t.Errorf("bad --gpu-memory: exit %d, %s", code, errs)
	}
	code, _, errs = runCLI(t, "preflight", filepath.Join(dir, "none.yaml"))
	if code != exitUsage || !strings.Contains(errs, "none.yaml") {
		t.Errorf("missing config: exit %d, %s", code, errs)
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
