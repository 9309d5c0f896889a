package notify

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/golden"
)

func TestWebhookWireFormat(t *testing.T) {
	rec := newRecorder(t)
	secret := "hmac-key-for-tests-0123"
	w := NewWebhook(rec.URL+"/hooks/modelship", secret, nil)
	sent := time.Unix(1740830670, 0)
	w.now = func() time.Time { return sent }
	e := sampleEvent()
	r := deliver(t, w, rec, "/hooks/modelship", 1, e)[0]
	for h, want := range map[string]string{
		"Content-Type":  "application/json",
		HeaderTimestamp: "1740830670",
		HeaderEvent:     "deploy.passed",
	} {
		if got := r.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	sig := r.Header.Get(HeaderSignature)
	if err := verifyAt([]byte(secret), r.Header.Get(HeaderTimestamp), r.Body, sig, 5*time.Minute, sent.Add(time.Minute)); err != nil {
		t.Errorf("signature does not verify: %v", err)
	}
	if err := VerifySignature([]byte(secret), r.Header.Get(HeaderTimestamp), r.Body, sig, 0); err != nil {
		t.Errorf("VerifySignature without skew check: %v", err)
	}
	if err := VerifySignature([]byte("other key"), r.Header.Get(HeaderTimestamp), r.Body, sig, 0); !errors.Is(err, ErrBadSignature) {
		t.Errorf("wrong key: got %v, want ErrBadSignature", err)
	}
	if strings.Contains(string(r.Body), secret) {
		t.Error("the body contains the HMAC key")
	}
	golden.Check(t, "webhook_body.json", r.Body)

	var b WebhookBody
	if err := json.Unmarshal(r.Body, &b); err != nil {
		t.Fatal(err)
	}
	if b.Schema != Schema || b.Stage != StageDeploy || b.Status != StatusPassed || b.ModelDigest != e.ModelDigest ||
		b.Environment != "production" || b.Figures.Bench.TTFT.P99 != 0.12 || !b.Time.Equal(e.Time) || b.RunURL != e.RunURL {
		t.Errorf("decoded body does not round-trip: %+v", b)
	}
}

func TestVerifySignature(t *testing.T) {
	key := []byte("k3y-k3y")
	body := []byte(`{"stage":"deploy"}`)
	now := time.Unix(1_700_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	good := Sign(key, ts, body)
	// Known answer: printf '1700000000.{"stage":"deploy"}' | openssl dgst -sha256 -hmac 'k3y-k3y'
	if want := "sha256=410f689b64ca2c7e59af681a4312c07af159e8dc2de488fc7b3898f473a19aea"; good != want {
		t.Errorf("Sign = %s, want %s", good, want)
	}
	for _, tc := range []struct {
		name, ts, sig string
		body          []byte
		skew          time.Duration
		now           time.Time
		wantErr       string
	}{
		{"valid", ts, good, body, 5 * time.Minute, now, ""},
		{"valid at the edge of the skew", ts, good, body, 5 * time.Minute, now.Add(5 * time.Minute), ""},
		{"body changed", ts, good, []byte(`{"stage":"deplox"}`), 5 * time.Minute, now, "does not match"},
		{"timestamp changed", "1700000001", good, body, 5 * time.Minute, now, "does not match"},
		{"replayed later", ts, good, body, 5 * time.Minute, now.Add(6 * time.Minute), "outside the allowed skew"},
		{"from the future", ts, good, body, 5 * time.Minute, now.Add(-6 * time.Minute), "outside the allowed skew"},
		{"no prefix", ts, strings.TrimPrefix(good, "sha256="), body, 0, now, "expected sha256=HEX"},
		{"sha1 prefix", ts, "sha1=" + strings.TrimPrefix(good, "sha256="), body, 0, now, "expected sha256=HEX"},
		{"short hex", ts, good[:40], body, 0, now, "64 hex digits"},
		{"upper-case hex still matches", ts, "sha256=" + strings.ToUpper(strings.TrimPrefix(good, "sha256=")), body, 0, now, ""},
		{"empty timestamp", "", good, body, 0, now, "expected unix seconds"},
		{"signed timestamp", "+" + ts, good, body, 0, now, "expected unix seconds"},
		{"not a number", "yesterday", good, body, 0, now, "expected unix seconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := verifyAt(key, tc.ts, tc.body, tc.sig, tc.skew, tc.now)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func FuzzVerifySignature(f *testing.F) {
	f.Add("1700000000", []byte(`{"a":1}`), "sha256=00")
	f.Add("", []byte{}, "")
	f.Add("-1", []byte("x"), "sha256="+strings.Repeat("ab", 32))
	key := []byte("fuzz-key")
	f.Fuzz(func(t *testing.T, ts string, body []byte, sig string) {
		_ = VerifySignature(key, ts, body, sig, time.Minute) // must not panic
		if _, err := strconv.ParseUint(ts, 10, 63); err == nil {
			if err := VerifySignature(key, ts, body, Sign(key, ts, body), 0); err != nil {
				t.Fatalf("own signature rejected for ts %q: %v", ts, err)
			}
		}
	})
}

// A sink never follows a redirect: the signed body and its headers would
// go to whatever host the answer names. The redirect is a permanent
// failure (not retried) that says where it pointed.
func TestSinksDoNotFollowRedirects(t *testing.T) {
	elsewhere := newRecorder(t)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/collect", http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	for _, s := range []Sink{
		NewWebhook(redirect.URL+"/hooks/modelship", "hmac-key-for-tests-0123", nil),
		NewSlack(redirect.URL+"/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX", nil),
		NewGrafana(redirect.URL, "glsa_token_for_tests_0123", nil),
		NewPushgateway(redirect.URL, "modelship", nil),
	} {
		ws := notifyOne(t, s, sampleEvent(), fast())
		if len(ws) != 1 || !strings.Contains(ws[0].Message, "redirect") || ws[0].Attempts != 1 {
			t.Errorf("%s: warnings %v, want one naming the redirect", s.Name(), ws)
		}
	}
	if got := elsewhere.requests(); len(got) != 0 {
		t.Errorf("the redirect target received %d requests (first: %s %s %v)", len(got), got[0].Method, got[0].Path, got[0].Header)
	}
}

// A canary step goes out as any event: status progress, the step in the
// message, signed.
func TestWebhookProgress(t *testing.T) {
	rec := newRecorder(t)
	secret := "hmac-key-for-tests-0123"
	e := progressEvent()
	r := deliver(t, NewWebhook(rec.URL+"/hooks/modelship", secret, nil), rec, "/hooks/modelship", 1, e)[0]
	if got := r.Header.Get(HeaderEvent); got != "deploy.progress" {
		t.Errorf("%s = %q, want deploy.progress", HeaderEvent, got)
	}
	if err := VerifySignature([]byte(secret), r.Header.Get(HeaderTimestamp), r.Body, r.Header.Get(HeaderSignature), 0); err != nil {
		t.Errorf("signature: %v", err)
	}
	var b WebhookBody
	if err := json.Unmarshal(r.Body, &b); err != nil {
		t.Fatal(err)
	}
	if b.Status != StatusProgress || b.Message != e.Message || b.Release != "r-42" || b.Environment != "production" || !b.Time.Equal(e.Time) {
		t.Errorf("body %s", r.Body)
	}
}
