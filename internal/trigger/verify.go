package trigger

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of the two registries.
const (
	// HFSecretHeader carries the Hugging Face webhook secret verbatim
	// (https://huggingface.co/docs/hub/webhooks#webhook-secret).
	HFSecretHeader = "X-Webhook-Secret"

	// MLflow's webhook headers (mlflow/webhooks/constants.py).
	MLflowSignatureHeader  = "X-MLflow-Signature"
	MLflowDeliveryIDHeader = "X-MLflow-Delivery-Id"
	MLflowTimestampHeader  = "X-MLflow-Timestamp"
)

// DefaultMaxAge is how far an MLflow delivery's timestamp may be from now,
// either way: the replay window of the Standard Webhooks convention MLflow
// follows (5 minutes).
const DefaultMaxAge = 5 * time.Minute

// errUnauthorized is every failed verification; the message says why, for
// the log (never the secret or the body).
type errUnauthorized struct{ why string }

func (e errUnauthorized) Error() string { return e.why }

func unauthorized(why string) error { return errUnauthorized{why} }

// IsUnauthorized reports whether err is a failed verification.
func IsUnauthorized(err error) bool {
	var u errUnauthorized
	return errors.As(err, &u)
}

// VerifyHF checks a Hugging Face delivery: the X-Webhook-Secret header
// must equal secret. A secret in the URL's query is refused, whatever it
// is: URLs end up in proxies' access logs and in the Hub's webhook
// settings page. The comparison is constant-time and does not reveal the
// length.
func VerifyHF(r *http.Request, secret string) error {
	if r.URL.Query().Has("secret") {
		return unauthorized("a secret in the URL (?secret=) is refused: it ends up in access logs; send it in the " + HFSecretHeader + " header")
	}
	got := r.Header.Get(HFSecretHeader)
	if got == "" {
		return unauthorized("no " + HFSecretHeader + " header")
	}
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
		return unauthorized("wrong " + HFSecretHeader)
	}
	return nil
}

// SignMLflow returns the X-MLflow-Signature value MLflow sends: "v1," and
// the base64 HMAC-SHA256, keyed with the webhook secret, of
// "<delivery id>.<timestamp>.<payload>" (mlflow/webhooks/delivery.py,
// _generate_hmac_signature).
func SignMLflow(secret, deliveryID, timestamp string, payload []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(mlflowMAC(secret, deliveryID, timestamp, payload))
}

func mlflowMAC(secret, deliveryID, timestamp string, payload []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(deliveryID + "." + timestamp + "."))
	m.Write(payload)
	return m.Sum(nil)
}

// VerifyMLflow checks an MLflow delivery as MLflow's documentation says to:
// the three headers are present, the timestamp (Unix seconds) is within
// maxAge of now either way, and X-MLflow-Signature holds a "v1,<base64>"
// HMAC-SHA256 of "<delivery id>.<timestamp>.<raw body>" under secret
// (several space-separated signatures are accepted, as in Standard
// Webhooks, if any matches). It returns the delivery id.
func VerifyMLflow(h http.Header, body []byte, secret string, maxAge time.Duration, now time.Time) (string, error) {
	sig, id, ts := h.Get(MLflowSignatureHeader), h.Get(MLflowDeliveryIDHeader), h.Get(MLflowTimestampHeader)
	switch {
	case sig == "":
		return "", unauthorized("unsigned: no " + MLflowSignatureHeader + " header")
	case id == "":
		return "", unauthorized("no " + MLflowDeliveryIDHeader + " header")
	case ts == "":
		return "", unauthorized("no " + MLflowTimestampHeader + " header")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return id, unauthorized(MLflowTimestampHeader + " is not Unix seconds")
	}
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	age := now.Sub(time.Unix(sec, 0))
	if age > maxAge {
		return id, unauthorized("timestamp too old (" + age.Round(time.Second).String() + ", limit " + maxAge.String() + ")")
	}
	if age < -maxAge {
		return id, unauthorized("timestamp in the future (" + (-age).Round(time.Second).String() + ")")
	}
	want := mlflowMAC(secret, id, ts, body)
	for _, s := range strings.Fields(sig) {
		v, b64, ok := strings.Cut(s, ",")
		if !ok || v != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			return id, nil
		}
	}
	return id, unauthorized("bad signature")
}
