package gateway

import (
	"log/slog"
	"syscall"
	"testing"
)

var errConnRefused = syscall.ECONNREFUSED

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// testLogger logs through t so that output shows only for failing tests.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
