package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/trigger"
)

// lockedBuffer is a bytes.Buffer safe to read while the server writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestTriggerDispatchesOnceAndStops(t *testing.T) {
	var mu sync.Mutex
	var dispatches []string
	gh := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		dispatches = append(dispatches, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization")+" "+string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer gh.Close()
	t.Setenv("TEST_HF_SECRET", "hf-secret-value")
	t.Setenv("TEST_GH_TOKEN", "gh-token-value")
	store := filepath.Join(t.TempDir(), "released.json")

	ctx, cancel := context.WithCancel(context.Background())
	var errb lockedBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"trigger", "--listen", "127.0.0.1:0", "--store", store, "--hf-secret", "env:TEST_HF_SECRET",
			"--github-repo", "acme/models", "--github-api", gh.URL, "--github-token", "env:TEST_GH_TOKEN", "--input", "environment=staging"},
			stdio{in: strings.NewReader(""), out: io.Discard, err: &errb})
	}()
	addr := ""
	for addr == "" { // the server says where it listens before serving
		select {
		case code := <-done:
			t.Fatalf("exited %d: %s", code, errb.String())
		default:
		}
		if m := regexp.MustCompile(`listening on (http://\S+)`).FindStringSubmatch(errb.String()); m != nil {
			addr = m[1]
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	sha := "575db8b7a51b6f85eb06eee540738584589f131c"
	body := `{"event":{"action":"update","scope":"repo.content"},"repo":{"type":"model","name":"acme/tiny","headSha":"` + sha + `"},"updatedRefs":[{"ref":"refs/heads/main","oldSha":null,"newSha":"` + sha + `"}]}`
	post := func(secret string) int {
		req, _ := http.NewRequest(http.MethodPost, addr+"/hooks/huggingface", strings.NewReader(body))
		req.Header.Set(trigger.HFSecretHeader, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong secret: %d", code)
	}
	if code := post("hf-secret-value"); code != http.StatusAccepted {
		t.Errorf("valid delivery: %d\n%s", code, errb.String())
	}
	if code := post("hf-secret-value"); code != http.StatusOK {
		t.Errorf("duplicate: %d", code)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("exit %d", code)
	}
	want := `POST /repos/acme/models/actions/workflows/deploy-model.yml/dispatches Bearer gh-token-value {"inputs":{"environment":"staging","source":"hf:acme/tiny@` + sha + `"},"ref":"main"}`
	if len(dispatches) != 1 || dispatches[0] != want {
		t.Errorf("dispatches %q\nwant [%q]", dispatches, want)
	}
	logs := errb.String()
	for _, leak := range []string{"hf-secret-value", "gh-token-value", `"scope"`} {
		if strings.Contains(logs, leak) {
			t.Errorf("stderr holds %q:\n%s", leak, logs)
		}
	}
	if !strings.Contains(logs, "webhook rejected") || !strings.Contains(logs, "release started") || !strings.Contains(logs, "modelship trigger: stopped") {
		t.Errorf("stderr:\n%s", logs)
	}
}

func TestTriggerUsage(t *testing.T) {
	t.Setenv("TEST_HF_SECRET", "x")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--github-repo", "a/b"}, "give --hf-secret or --mlflow-secret"},
		{[]string{"--hf-secret", "plain-value", "--github-repo", "a/b"}, "--hf-secret: secrets are never values"},
		{[]string{"--hf-secret", "env:TEST_UNSET_SECRET_X", "--github-repo", "a/b"}, "environment variable TEST_UNSET_SECRET_X is not set"},
		{[]string{"--hf-secret", "env:TEST_HF_SECRET"}, "give --github-repo OWNER/REPO"},
		{[]string{"--hf-secret", "env:TEST_HF_SECRET", "--github-repo", "a/b", "--run", "true"}, "exclusive"},
		{[]string{"--hf-secret", "env:TEST_HF_SECRET", "--github-repo", "nobody"}, "expected OWNER/REPO"},
		{[]string{"--hf-secret", "env:TEST_HF_SECRET", "--github-repo", "a/b", "--github-token", "env:TEST_HF_SECRET", "--input", "novalue"}, "--input: expected NAME=VALUE"},
		{[]string{"--hf-secret", "env:TEST_HF_SECRET", "--run", "true", "--max-age", "0s"}, "--max-age"},
		{[]string{"--hf-secret", "env:TEST_HF_SECRET", "--run", "true", "--log-format", "xml"}, "--log-format"},
		{[]string{"extra"}, "unexpected argument"},
	}
	for _, tt := range tests {
		code, _, errs := runCLI(t, append([]string{"trigger"}, tt.args...)...)
		if code != exitUsage || !strings.Contains(errs, tt.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tt.args, code, errs, tt.want)
		}
	}
	code, _, errs := runCLI(t, "trigger", "--help")
	for _, want := range []string{"X-MLflow-Signature", "X-Webhook-Secret", "-github-repo", "-run", "-store", "-max-age", "never its body"} {
		if code != exitOK || !strings.Contains(errs, want) {
			t.Errorf("--help lacks %q (exit %d)", want, code)
		}
	}
}
