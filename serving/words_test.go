package serving

import (
	"reflect"
	"testing"
)

func TestSplitWords(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "", want: nil},
		{in: "   \t\n ", want: nil},
		{in: "--enforce-eager", want: []string{"--enforce-eager"}},
		{in: "  --a 1\t--b   2 ", want: []string{"--a", "1", "--b", "2"}},
		{in: `--chat-template '{{ x }} y'`, want: []string{"--chat-template", "{{ x }} y"}},
		{in: `--x "a \"b\" \\ \$HOME c\d"`, want: []string{"--x", `a "b" \ $HOME c\d`}},
		{in: `a\ b c`, want: []string{"a b", "c"}},
		{in: `'it'\''s'`, want: []string{"it's"}},
		{in: `''`, want: []string{""}},
		{in: `--a=""`, want: []string{"--a="}},
		{in: "a\\\nb", want: []string{"ab"}},
		{in: `--json '{"k": 1}'`, want: []string{"--json", `{"k": 1}`}},
		{in: `'abc`, wantErr: "unterminated single quote at byte 0"},
		{in: `x "abc`, wantErr: "unterminated double quote at byte 2"},
		{in: `abc\`, wantErr: "trailing backslash at byte 3"},
	}
	for _, tt := range tests {
		got, err := SplitWords(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("SplitWords(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("SplitWords(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SplitWords(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestJoinWordsRoundTrip(t *testing.T) {
	words := []string{"python3", "-m", "x", "", "a b", "it's", `"q"`, "$HOME", "a\nb", "--k=v"}
	line := JoinWords(words)
	got, err := SplitWords(line)
	if err != nil {
		t.Fatalf("SplitWords(%q): %v", line, err)
	}
	if !reflect.DeepEqual(got, words) {
		t.Fatalf("round trip of %q = %q, want %q", line, got, words)
	}
	if want := "python3 -m x '' 'a b' 'it'\\''s' '\"q\"' '$HOME' 'a\nb' --k=v"; line != want {
		t.Errorf("JoinWords = %q, want %q", line, want)
	}
}

// FuzzSplitWords checks that SplitWords never panics, and that quoting the
// words it returns and splitting again gives the same words.
func FuzzSplitWords(f *testing.F) {
	for _, s := range []string{"", "a b", `'a b' "c \" d" e\ f`, `'x`, `"y`, `z\`, "a\\\nb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := SplitWords(s)
		if err != nil {
			return
		}
		again, err := SplitWords(JoinWords(words))
		if err != nil {
			t.Fatalf("SplitWords(JoinWords(%q)): %v", words, err)
		}
		if len(words) == 0 && len(again) == 0 {
			return
		}
		if !reflect.DeepEqual(words, again) {
			t.Fatalf("round trip: %q -> %q", words, again)
		}
	})
}
