package trigger

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzParseHF: any body gives a valid event (Event.Validate), an ignore
// reason, or an error; never a panic.
func FuzzParseHF(f *testing.F) {
	f.Add(hfPayloadFor("575db8b7a51b6f85eb06eee540738584589f131c"))
	f.Add(`{"event":{"action":"update","scope":"repo.content"},"repo":{"name":"a/b","headSha":"abcdef0"}}`)
	f.Add(`{"event":{"scope":"repo.content"},"repo":{"name":"a"},"updatedRefs":[{"ref":"refs/heads/main","newSha":null}]}`)
	f.Fuzz(func(t *testing.T, body string) {
		ev, err := ParseHF([]byte(body), "refs/heads/main")
		if err == nil && ev.Validate() != nil {
			t.Fatalf("accepted %+v", ev)
		}
	})
}

// FuzzParseMLflow: accepted events are valid: a name, a version number,
// no digest or a well-formed one.
func FuzzParseMLflow(f *testing.F) {
	f.Add(mlflowBody("3"))
	f.Add(`{"entity":"model_version_alias","action":"created","data":{"name":"m","alias":"champion","version":"2"}}`)
	f.Fuzz(func(t *testing.T, body string) {
		ev, err := ParseMLflow([]byte(body), "champion")
		if err == nil && ev.Validate() != nil {
			t.Fatalf("accepted %+v", ev)
		}
	})
}

// FuzzVerifyMLflow: only the signature made with the secret verifies.
func FuzzVerifyMLflow(f *testing.F) {
	f.Add("d-1", "1790000000", "v1,AAAA", []byte(`{}`))
	f.Add("x", "-5", "v1,", []byte(nil))
	now := time.Unix(1_790_000_000, 0)
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set(MLflowDeliveryIDHeader, id)
		h.Set(MLflowTimestampHeader, ts)
		h.Set(MLflowSignatureHeader, sig)
		if _, err := VerifyMLflow(h, body, "k", time.Minute, now); err == nil && !strings.Contains(sig, SignMLflow("k", h.Get(MLflowDeliveryIDHeader), h.Get(MLflowTimestampHeader), body)[3:]) {
			t.Fatalf("forged signature %q verified", sig)
		}
		good := SignMLflow("k", h.Get(MLflowDeliveryIDHeader), "1790000000", body)
		h.Set(MLflowTimestampHeader, "1790000000")
		h.Set(MLflowSignatureHeader, good)
		if _, err := VerifyMLflow(h, body, "k", time.Minute, now); err != nil && h.Get(MLflowDeliveryIDHeader) != "" {
			t.Fatalf("genuine signature refused: %v", err)
		}
	})
}

// BenchmarkVerifyMLflow measures verifying one signed MLflow delivery of a
// typical size (the cost every webhook pays before anything else).
func BenchmarkVerifyMLflow(b *testing.B) {
	body := []byte(mlflowBody("3"))
	now := time.Unix(1_790_000_000, 0)
	h := http.Header{}
	h.Set(MLflowDeliveryIDHeader, "d-1")
	h.Set(MLflowTimestampHeader, "1790000000")
	h.Set(MLflowSignatureHeader, SignMLflow("k", "d-1", "1790000000", body))
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := VerifyMLflow(h, body, "k", time.Minute, now); err != nil {
			b.Fatal(err)
		}
	}
}
