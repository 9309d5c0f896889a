package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelship/modelship/notify"
)

// hookSecretEnv names the variable the test configs' webhook secret is
// read from (notifications.webhook.secret: env:...), given to the Dagger
// functions with --secrets env:... .
const hookSecretEnv = "MODELSHIP_E2E_HOOK_SECRET"

// hooks receives the deploy stages' signed webhook events.
type hooks struct {
	url    string
	secret string
	mu     sync.Mutex
	got    []string // "STAGE.STATUS ENV" of each correctly signed event
	runs   []string // their run links
	bad    []string // why an event was refused
}

// hookServer starts a webhook receiver on host (an address the deploy
// stage's container reaches), sets the secret in hookSecretEnv for the
// dagger CLI to pass as a Dagger secret, and returns the
// notifications: section of a config that sends there.
func hookServer(t *testing.T, host string) (*hooks, string) {
	t.Helper()
	b := make([]byte, 16)
	rand.Read(b)
	h := &hooks{secret: hex.EncodeToString(b)}
	t.Setenv(hookSecretEnv, h.secret)
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var e notify.Event
		err := notify.VerifySignature([]byte(h.secret), r.Header.Get(notify.HeaderTimestamp), body, r.Header.Get(notify.HeaderSignature), 5*time.Minute)
		if err == nil {
			err = json.Unmarshal(body, &e)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if err != nil {
			h.bad = append(h.bad, err.Error())
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		h.got = append(h.got, fmt.Sprintf("%s.%s %s", e.Stage, e.Status, e.Environment))
		h.runs = append(h.runs, e.RunURL)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	h.url = "http://" + l.Addr().String() + "/hook"
	return h, fmt.Sprintf("notifications:\n  webhook:\n    url: %s\n    secret: env:%s\n", h.url, hookSecretEnv)
}

// expect checks that every event named ("STAGE.STATUS ENV") came, signed
// with the secret, and that the secret shows nowhere in output.
func (h *hooks) expect(t *testing.T, output string, events ...string) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, want := range events {
		found := false
		for _, g := range h.got {
			found = found || g == want
		}
		if !found {
			t.Errorf("webhook did not receive %q signed with the secret; received %q, refused %q", want, h.got, h.bad)
		}
	}
	if strings.Contains(output, h.secret) {
		t.Error("the webhook secret appears in the output of dagger call")
	}
}
