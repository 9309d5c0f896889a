package gateway

import (
	"encoding/json"
	"testing"
)

func FuzzParseUpstream(f *testing.F) {
	for _, s := range []string{"http://release-a:8000", "https://[::1]:443/", "release-a:8000", "http://a/b", "http://u@a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseUpstream(s)
		if err != nil {
			return
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
			t.Fatalf("ParseUpstream(%q) = %q", s, u)
		}
		// One release, one spelling: parsing the result gives it back.
		again, err := ParseUpstream(u.String())
		if err != nil || again.String() != u.String() {
			t.Fatalf("ParseUpstream(%q) = %q, then %v, %v", s, u, again, err)
		}
	})
}

func FuzzParseStateFile(f *testing.F) {
	for _, s := range []string{
		`{"active":"http://a:8000","previous":"http://b:8000","switched_at":"2025-01-02T03:04:05Z"}`,
		`{"active":""}`, `{}`, `{"active":"x"}`, `{"activ":"http://a"}`, `{} {}`, `{"switched_at":"yesterday"}`,
		`{"active":"http://a:8000","canary":{"upstream":"http://b:8000","percent":10,"sticky_header":"X-Conversation-Id","since":"2025-01-02T03:04:05Z","control":"promote"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseStateFile(data)
		if err != nil {
			return
		}
		// What was accepted round-trips through what persist writes.
		b, _ := json.Marshal(st)
		st2, err := ParseStateFile(b)
		if err != nil || st2.Active != st.Active || st2.Previous != st.Previous || !st2.SwitchedAt.Equal(st.SwitchedAt) || (st2.Canary == nil) != (st.Canary == nil) {
			t.Fatalf("accepted %q but not its own output %s: %v", data, b, err)
		}
	})
}
