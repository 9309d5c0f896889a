package endpoint

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"http://h:8000/v1", "http://h:8000/v1", ""},
		{"  https://h/p?x=1  ", "https://h/p?x=1", ""},
		{"", "", `endpoint is empty; want a URL like http://h:8000`},
		{"ftp://h", "", `endpoint "ftp://h": scheme must be http or https (expected an http(s) URL like http://h:8000)`},
		{"h:8000", "", `scheme must be http or https`},
		{"http://", "", `endpoint "http://" has no host`},
		{"http://u:secret@h:8000/v1", "http://u:secret@h:8000/v1", ""},
		{"http://u:secret@[::1", "", "endpoint (an unparsable URL) is not a URL: missing ']' in host"},
		{"ftp://u:secret@h", "", `endpoint "ftp://u:xxxxx@h": scheme must be http or https`},
	} {
		u, err := Parse("endpoint", tc.in, "http://h:8000")
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Parse(%q) error %v, want %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || u.String() != tc.want):
			t.Errorf("Parse(%q) = %v, %v; want %s", tc.in, u, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("Parse(%q): error shows the password: %v", tc.in, err)
		}
	}
}

func TestBasePath(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "/": "", "/v1": "", "/v1/": "", "/proxy/v1/": "/proxy", "/proxy": "/proxy", "/v1/v1": "/v1", "/a//v1": "/a",
	} {
		if got := BasePath(in); got != want {
			t.Errorf("BasePath(%q) = %q, want %q", in, got, want)
		}
	}
}
