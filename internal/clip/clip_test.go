package clip

import "testing"

func TestBytes(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		{"short", 5, "short"},
		{"shorter", 5, "short…"},
		{"", 0, ""},
		{"abc", 0, "…"},
		{"héllo", 2, "h…"},  // é is 2 bytes: not split
		{"héllo", 3, "hé…"}, // exactly after é
		{"日本語", 4, "日…"},
	} {
		if got := Bytes(c.s, c.n); got != c.want {
			t.Errorf("Bytes(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
}

func TestRunes(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		{"日本語", 3, "日本語"},
		{"日本語です", 3, "日本語…"},
		{"abc", 0, "…"},
	} {
		if got := Runes(c.s, c.n); got != c.want {
			t.Errorf("Runes(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
}

func TestLine(t *testing.T) {
	if got := Line("  two\n\tlines  here \n", 20); got != "two lines here" {
		t.Errorf("Line = %q", got)
	}
	if got := Line("one two three", 7); got != "one two…" {
		t.Errorf("Line clipped = %q", got)
	}
}
