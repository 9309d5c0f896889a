package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/modelship/modelship/notify"
)

func notifyConfig(t *testing.T, notifications string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "modelship.yaml")
	yaml := "version: 1\nmodel:\n  path: .\n  served-name: tiny\nnotifications:\n" + notifications
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

func TestNotifyCommand(t *testing.T) {
	var mu sync.Mutex
	var bodies [][]byte
	var sigOK bool
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		bodies = append(bodies, b)
		sigOK = notify.VerifySignature([]byte("cmd-hmac-key-123"), r.Header.Get(notify.HeaderTimestamp), b, r.Header.Get(notify.HeaderSignature), 0) == nil
	}))
	defer hook.Close()
	slackSecret := "http://" + deadAddr(t) + "/services/T1/B1/SLACKtokenNEVERprinted"
	t.Setenv("TEST_SLACK_URL", slackSecret)
	t.Setenv("TEST_HOOK_KEY", "cmd-hmac-key-123")
	t.Setenv("GITHUB_SERVER_URL", "https://github.com")
	t.Setenv("GITHUB_REPOSITORY", "acme/models")
	t.Setenv("GITHUB_RUN_ID", "777")
	t.Setenv("GITHUB_RUN_ATTEMPT", "")
	t.Setenv("GITHUB_SHA", "0123456789abcdef")
	cfg := notifyConfig(t, "  slack:\n    webhook-url: env:TEST_SLACK_URL\n  webhook:\n    url: "+hook.URL+"/in\n    secret: env:TEST_HOOK_KEY\n")

	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"notify", "--config", cfg, "--stage", "deploy", "--status", "passed", "--env", "production",
		"--message", "tried by hand", "--timeout", "1s", "--log-format", "json"}, stdio{out: &out, err: &errb})
	if code != exitOK {
		t.Fatalf("exit %d, want 0 (a failing sink only warns)\n%s%s", code, out.String(), errb.String())
	}
	all := out.String() + errb.String()
	if strings.Contains(all, "SLACKtokenNEVERprinted") || strings.Contains(all, "cmd-hmac-key-123") {
		t.Errorf("a secret was printed:\n%s", all)
	}
	for _, want := range []string{"event: deploy passed in production", "webhook      delivered", "slack        warning: slack: Post <redacted webhook URL>"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errb.String(), `"log.level":"warn"`) || !strings.Contains(errb.String(), `"modelship.sink":"slack"`) {
		t.Errorf("no JSON warning on stderr:\n%s", errb.String())
	}
	mu.Lock()
	if len(bodies) != 1 || !sigOK {
		t.Fatalf("webhook got %d bodies, signature ok %v", len(bodies), sigOK)
	}
	var got notify.WebhookBody
	json.Unmarshal(bodies[0], &got)
	mu.Unlock()
	if got.Stage != "deploy" || got.Environment != "production" || got.Model != "tiny" || got.Message != "tried by hand" ||
		got.RunURL != "https://github.com/acme/models/actions/runs/777" || got.GitSHA != "0123456789abcdef" || !strings.HasPrefix(got.Release, "manual-") {
		t.Errorf("event sent: %+v", got)
	}

	// --strict turns the warning into exit 1; --sink picks sinks.
	out.Reset()
	errb.Reset()
	code = run(context.Background(), []string{"notify", "--config", cfg, "--stage", "deploy", "--status", "failed", "--sink", "slack", "--strict", "--timeout", "1s", "--json"}, stdio{out: &out, err: &errb})
	if code != exitFailed {
		t.Errorf("--strict with a failing sink: exit %d, want 1", code)
	}
	var res struct {
		Results []struct {
			Sink      string
			Delivered bool
			Warning   string
		}
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || len(res.Results) != 1 || res.Results[0].Sink != "slack" || res.Results[0].Delivered {
		t.Errorf("--json: %v %s", err, out.String())
	}
	if strings.Contains(out.String()+errb.String(), "SLACKtokenNEVERprinted") {
		t.Error("secret printed with --json")
	}
}

func TestNotifyCommandUsage(t *testing.T) {
	cfg := notifyConfig(t, "  pushgateway:\n    url: http://"+deadAddr(t)+"\n")
	empty := notifyConfig(t, "  {}\n")
	t.Setenv("UNSET_HOOK_KEY", "")
	missing := notifyConfig(t, "  webhook:\n    url: http://"+deadAddr(t)+"\n    secret: env:UNSET_HOOK_KEY\n")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"help", []string{"--help"}, exitOK, "--strict"},
		{"no stage", []string{"--config", cfg, "--status", "passed"}, exitUsage, "--stage and --status are required"},
		{"bad stage", []string{"--config", cfg, "--stage", "deploi", "--status", "passed"}, exitUsage, `unknown stage "deploi"`},
		{"bad status", []string{"--config", cfg, "--stage", "deploy", "--status", "ok"}, exitUsage, `unknown status "ok"`},
		{"bad sink", []string{"--config", cfg, "--stage", "deploy", "--status", "passed", "--sink", "teams"}, exitUsage, `unknown sink kind "teams"`},
		{"bad log format", []string{"--config", cfg, "--stage", "deploy", "--status", "passed", "--log-format", "xml"}, exitUsage, "unknown log format"},
		{"no config", []string{"--config", filepath.Join(t.TempDir(), "none.yaml"), "--stage", "deploy", "--status", "passed"}, exitUsage, "none.yaml"},
		{"nothing configured", []string{"--config", empty, "--stage", "deploy", "--status", "passed"}, exitUsage, "configures no notifications"},
		{"unset secret warns", []string{"--config", missing, "--stage", "deploy", "--status", "passed"}, exitOK, "UNSET_HOOK_KEY is not set"},
		{"unset secret strict", []string{"--config", missing, "--stage", "deploy", "--status", "passed", "--strict"}, exitFailed, "UNSET_HOOK_KEY is not set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), append([]string{"notify"}, tc.args...), stdio{out: &out, err: &errb})
			if code != tc.code || !strings.Contains(out.String()+errb.String(), tc.want) {
				t.Errorf("exit %d, want %d with %q:\n%s%s", code, tc.code, tc.want, out.String(), errb.String())
			}
		})
	}
}
