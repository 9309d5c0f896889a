package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/deploy"
)

// promote, abort and resume refuse bad usage before reaching a target,
// print their help, and report a target they cannot reach (a Kubernetes
// environment is steered through its Service), naming it.
func TestControlUsage(t *testing.T) {
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: not-a-real-token}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600)
	cfg := filepath.Join(dir, "modelship.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("model: {path: /m}\nenvironments:\n  k8s:\n    target: kubernetes\n    kubernetes: {kubeconfig: %s}\n", kubeconfig)), 0o644)
	for _, action := range []string{"promote", "abort", "resume"} {
		for _, tc := range []struct {
			args []string
			code int
			want string
		}{
			{nil, exitUsage, "modelship " + action + ": --env NAME is required"},
			{[]string{"--env", "k8s", "--config", cfg, "now"}, exitUsage, "--env NAME is required and nothing else"},
			{[]string{"--env", "staging", "--config", cfg}, exitUsage, `has no environment "staging"`},
			{[]string{"--env", "k8s", "--config", filepath.Join(dir, "absent.yaml")}, exitUsage, "absent.yaml"},
			{[]string{"--colour"}, exitUsage, "flag provided but not defined: -colour"},
			{[]string{"--env", "k8s", "--config", cfg}, exitFailed,
				"modelship " + action + ": target unreachable: kubernetes API server https://127.0.0.1:1 does not answer (reading service modelship-k8s)"},
		} {
			code, out, errs := runCmd(t, append([]string{action}, tc.args...)...)
			if code != tc.code || !strings.Contains(errs, tc.want) || out != "" {
				t.Errorf("%s %q: exit %d, stdout %q, stderr %q; want exit %d and %q", action, tc.args, code, out, errs, tc.code, tc.want)
			}
		}
		code, _, errs := runCmd(t, action, "--help")
		if code != exitOK || !strings.Contains(errs, "Usage: modelship "+action+" --env NAME") || !strings.Contains(errs, "-env environment") {
			t.Errorf("%s --help: exit %d\n%s", action, code, errs)
		}
	}
	if code, out, _ := runCmd(t, "help"); code != exitOK || !strings.Contains(out, "  promote ") || !strings.Contains(out, "  abort ") || !strings.Contains(out, "  resume ") {
		t.Errorf("the command list lacks promote, abort or resume:\n%s", out)
	}
}

// fakeSplitter is a target whose router takes SetControl (the rest of
// deploy.Target and Splitter is not called).
type fakeSplitter struct {
	deploy.Target
	deploy.Splitter
	asked []string
	err   error
}

func (f *fakeSplitter) SetControl(_ context.Context, env, action string) error {
	f.asked = append(f.asked, env+" "+action)
	return f.err
}

// The action reaches the router, and the command says what the rollout
// will do and within how long; the router's refusal (no rollout running)
// is the command's error, exit 1.
func TestAskRollout(t *testing.T) {
	for _, c := range controls {
		tg := &fakeSplitter{}
		var out, errb bytes.Buffer
		s := stdio{out: &out, err: &errb}
		if code := askRollout(context.Background(), s, tg, "staging", c.name, c.does, 10*time.Second); code != exitOK || errb.Len() > 0 {
			t.Errorf("%s: exit %d, stderr %q", c.name, code, errb.String())
		}
		if want := []string{"staging " + c.name}; fmt.Sprint(tg.asked) != fmt.Sprint(want) {
			t.Errorf("%s: the router was asked %q, want %q", c.name, tg.asked, want)
		}
		if want := "asked the rollout on staging to " + c.name + ": " + c.does + " (within 10s)\n"; out.String() != want {
			t.Errorf("%s said %q, want %q", c.name, out.String(), want)
		}
		tg.err = errors.New("no canary or shadow rollout is running in staging")
		out.Reset()
		if code := askRollout(context.Background(), s, tg, "staging", c.name, c.does, time.Second); code != exitFailed || out.Len() > 0 ||
			!strings.Contains(errb.String(), "modelship "+c.name+": no canary or shadow rollout is running in staging") {
			t.Errorf("%s refused: exit %d, stdout %q, stderr %q", c.name, code, out.String(), errb.String())
		}
	}
	promote := controls[0]
	if promote.name != "promote" || !strings.Contains(promote.does, "all traffic to the new release") {
		t.Errorf("promote says %q", promote.does)
	}
}

// The time the command quotes is the environment's canary.interval.
func TestAnalysisInterval(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "modelship.yaml")
	os.WriteFile(cfg, []byte("model: {path: /m}\nenvironments:\n  staging: {canary: {interval: 3s}}\n  production: {}\n"), 0o644)
	for env, want := range map[string]time.Duration{"staging": 3 * time.Second, "production": 10 * time.Second} {
		if got := analysisInterval(cfg, env); got != want {
			t.Errorf("%s: %s, want %s", env, got, want)
		}
	}
}
