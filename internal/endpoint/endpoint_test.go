package endpoint

import (
	"strings"
	"testing"
)

// Each input gives the URL (an error's text holds want instead), and no
// error shows a password.
func TestParse(t *testing.T) {
	for _, c := range [][2]string{
		{"http://h:8000/v1", "http://h:8000/v1"},
		{"  https://h/p?x=1  ", "https://h/p?x=1"},
		{"http://u:secret@h:8000/v1", "http://u:secret@h:8000/v1"},
		{"", "endpoint is empty; want a URL like http://h:8000"},
		{"ftp://h", `endpoint "ftp://h": scheme must be http or https (expected an http(s) URL like http://h:8000)`},
		{"h:8000", "scheme must be http or https"},
		{"http://", `endpoint "http://" has no host`},
		{"http://u:secret@[::1", "endpoint (an unparsable URL) is not a URL: missing ']' in host"},
		{"ftp://u:secret@h", `endpoint "ftp://u:xxxxx@h": scheme must be http or https`},
	} {
		in, want := c[0], c[1]
		u, err := Parse("endpoint", in, "http://h:8000")
		if err == nil && u.String() != want {
			t.Errorf("Parse(%q) = %v, want %s", in, u, want)
		}
		if err != nil && (!strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "secret")) {
			t.Errorf("Parse(%q) error %v, want one with %q and no password", in, err, want)
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
