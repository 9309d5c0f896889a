package golden

import (
	"fmt"
	"strings"
	"testing"
)

// recorder is a testing.TB that keeps what Check reports.
type recorder struct {
	testing.TB
	msgs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) { r.Errorf(format, args...) }

func TestCheck(t *testing.T) {
	r := &recorder{TB: t}
	Check(r, "hello.golden", []byte("hello\n"))
	if len(r.msgs) != 0 {
		t.Errorf("same content failed: %q", r.msgs)
	}
	Check(r, "hello.golden", []byte("bye\n"))
	if len(r.msgs) != 1 || !strings.Contains(r.msgs[0], "testdata/hello.golden differs") || !strings.Contains(r.msgs[0], "bye") {
		t.Errorf("different content: %q", r.msgs)
	}
	r.msgs = nil
	Check(r, "missing.golden", nil)
	if len(r.msgs) != 1 || !strings.Contains(r.msgs[0], "go test -update to create it") {
		t.Errorf("missing file: %q", r.msgs)
	}
}
