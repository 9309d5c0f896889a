package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers of the generic webhook.
const (
	HeaderTimestamp = "X-Modelship-Timestamp"
	HeaderSignature = "X-Modelship-Signature"
	HeaderEvent     = "X-Modelship-Event" // "STAGE.STATUS", e.g. "deploy.passed"
)

// Schema names the webhook body's format; it changes only when a field is
// removed or changes meaning.
const Schema = "modelship.event/v1"

const userAgent = "modelship-notify/1"

// WebhookBody is what the generic webhook POSTs: the Event's fields and the
// schema name.
type WebhookBody struct {
	Schema string `json:"schema"`
	Event
}

// Webhook POSTs each event as JSON, signed with HMAC-SHA256 (see Sign).
type Webhook struct {
	url    string
	secret []byte
	client *http.Client
	red    redactor
	now    func() time.Time
}

// NewWebhook makes a generic webhook sink. secret is the shared HMAC key;
// neither it nor the URL's path, query or credentials appear in errors.
func NewWebhook(url, secret string, client *http.Client) *Webhook {
	r := newRedactor("webhook", url, hostURL(url)+"/…", secret)
	r.addPath(url)
	return &Webhook{url: url, secret: []byte(secret), client: client, red: r, now: time.Now}
}

// Name is "webhook".
func (w *Webhook) Name() string { return "webhook" }

// Send POSTs the event with its timestamp and signature headers.
func (w *Webhook) Send(ctx context.Context, e Event) error {
	body, err := json.Marshal(WebhookBody{Schema: Schema, Event: e})
	if err != nil {
		return w.red.err(err)
	}
	ts := strconv.FormatInt(w.now().Unix(), 10)
	h := http.Header{}
	h.Set(HeaderTimestamp, ts)
	h.Set(HeaderSignature, Sign(w.secret, ts, body))
	h.Set(HeaderEvent, string(e.Stage)+"."+string(e.Status))
	return postJSON(ctx, w.client, w.red, w.url, body, h)
}

// Sign is the X-Modelship-Signature value for a body sent at timestamp ts
// (unix seconds, as sent in X-Modelship-Timestamp):
//
//	"sha256=" + hex(HMAC-SHA256(secret, ts + "." + body))
func Sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Errors of VerifySignature.
var (
	ErrBadSignature = errors.New("signature does not match")
	ErrStale        = errors.New("timestamp outside the allowed skew")
)

// VerifySignature checks a received webhook: ts is the X-Modelship-Timestamp
// header, sig the X-Modelship-Signature header, body the raw request body
// (before any JSON decoding). It recomputes Sign in constant time and
// rejects timestamps more than maxSkew from now (replays); maxSkew 0 skips
// the time check. nil means the request is authentic.
func VerifySignature(secret []byte, ts string, body []byte, sig string, maxSkew time.Duration) error {
	return verifyAt(secret, ts, body, sig, maxSkew, time.Now())
}

func verifyAt(secret []byte, ts string, body []byte, sig string, maxSkew time.Duration, now time.Time) error {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || ts == "" || ts[0] == '+' || ts[0] == '-' {
		return fmt.Errorf("bad %s: expected unix seconds", HeaderTimestamp)
	}
	hexSig, ok := strings.CutPrefix(sig, "sha256=")
	if !ok {
		return fmt.Errorf("bad %s: expected sha256=HEX", HeaderSignature)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("bad %s: expected sha256= and 64 hex digits", HeaderSignature)
	}
	want, _ := hex.DecodeString(strings.TrimPrefix(Sign(secret, ts, body), "sha256="))
	if !hmac.Equal(got, want) {
		return ErrBadSignature
	}
	if maxSkew > 0 {
		d := now.Sub(time.Unix(sec, 0))
		if d > maxSkew || d < -maxSkew {
			return fmt.Errorf("%w: %s is %s from now, allowed %s", ErrStale, HeaderTimestamp, d.Round(time.Second), maxSkew)
		}
	}
	return nil
}
