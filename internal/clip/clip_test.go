package clip

import "testing"

func TestClip(t *testing.T) {
	for _, c := range []struct {
		name string
		f    func(string, int) string
		s    string
		n    int
		want string
	}{
		{"Bytes", Bytes, "short", 5, "short"},
		{"Bytes", Bytes, "shorter", 5, "short…"},
		{"Bytes", Bytes, "", 0, ""},
		{"Bytes", Bytes, "abc", 0, "…"},
		{"Bytes", Bytes, "héllo", 2, "h…"}, // é is 2 bytes: not split
		{"Bytes", Bytes, "héllo", 3, "hé…"},
		{"Bytes", Bytes, "日本語", 4, "日…"},
		{"Runes", Runes, "日本語", 3, "日本語"},
		{"Runes", Runes, "日本語です", 3, "日本語…"},
		{"Runes", Runes, "abc", 0, "…"},
		{"Line", Line, "  two\n\tlines  here \n", 20, "two lines here"},
		{"Line", Line, "one two three", 7, "one two…"},
	} {
		if got := c.f(c.s, c.n); got != c.want {
			t.Errorf("%s(%q, %d) = %q, want %q", c.name, c.s, c.n, got, c.want)
		}
	}
}
