package logging

import (
	"io"
	"log/slog"
	"testing"
)

// BenchmarkLogLine measures one JSON line with five attributes, plain and
// through the redacting handler with five registered secrets.
func BenchmarkLogLine(b *testing.B) {
	secrets := NewRedactor("ghp_TOKENabcdef0123456789", "https://hooks.slack.com/services/T0/B0/XyZ", "hmac-key-0123", "glsa_token_0123456789", "registry-password")
	plain := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{ReplaceAttr: ecsAttr}))
	redacting := New(io.Discard, Options{Format: FormatJSON, Redactor: secrets})
	for _, c := range []struct {
		name string
		l    *slog.Logger
	}{{"plain", plain}, {"redacting", redacting}} {
		b.Run(c.name, func(b *testing.B) {
			l := c.l.With(KeyRelease, "r-42")
			for b.Loop() {
				l.Info("deploy passed", KeyStage, "deploy", KeyOutcome, "success", KeyModelDigest, "sha256:0123456789ab", KeyEnvironment, "production", KeyGitSHA, "abc1234")
			}
		})
	}
}
