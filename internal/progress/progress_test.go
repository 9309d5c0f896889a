package progress

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestSilentWhenNotTerminal(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, "hashing", 100, Bytes) // a buffer is not a terminal
	b.Add(50)
	b.Done()
	if buf.Len() != 0 {
		t.Errorf("wrote %q to a non-terminal", buf.String())
	}
}

func TestQuietFirstSecondThenDraws(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	var buf syncBuf
	b := newBar(&buf, "hashing", 4<<30, Bytes, true, c.now)
	b.Add(1 << 30)
	b.tick()
	if buf.String() != "" {
		t.Fatalf("drew before 1s: %q", buf.String())
	}
	c.advance(2 * time.Second)
	b.tick()
	out := buf.String()
	for _, want := range []string{"\rhashing [", " 25% 1.00 GiB/4.00 GiB", "512 MiB/s", "ETA 6s", "\x1b[K"} {
		if !strings.Contains(out, want) {
			t.Errorf("line %q lacks %q", out, want)
		}
	}
	b.Set(4 << 30)
	b.Done()
	if out := buf.String(); !strings.HasSuffix(out, "100% 4.00 GiB/4.00 GiB  2.00 GiB/s\x1b[K\n") {
		t.Errorf("final line %q", out)
	}
	b.Done() // idempotent
}

func TestDoneBeforeDelayPrintsNothing(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	var buf syncBuf
	b := newBar(&buf, "x", 10, Count, true, c.now)
	b.Add(10)
	b.Done()
	if buf.String() != "" {
		t.Errorf("fast work printed %q", buf.String())
	}
}

func TestCountUnknownTotal(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	var buf syncBuf
	b := newBar(&buf, "requests", 0, Count, true, c.now)
	b.Add(30)
	c.advance(3 * time.Second)
	b.tick()
	b.Done()
	if out := buf.String(); !strings.Contains(out, "requests 30  10.0/s") || strings.Contains(out, "ETA") {
		t.Errorf("got %q", out)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.50 KiB", 15 << 30: "15.0 GiB", 150 << 20: "150 MiB", 8030261248 * 2: "15.0 GiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{45 * time.Second: "45s", 185 * time.Second: "3m05s", 7800 * time.Second: "2h10m"} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
