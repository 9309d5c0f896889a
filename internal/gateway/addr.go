package gateway

import (
	"fmt"
	"net/url"
	"strings"
)

// DefaultAdminSocket is where the admin API listens unless told otherwise.
const DefaultAdminSocket = "/run/modelship/gateway.sock"

// ParseUpstream parses a release's base URL: http or https, a host, and no
// path, query or fragment (e.g. http://release-a:8000). A trailing "/" is
// dropped so that one release has one spelling.
func ParseUpstream(s string) (*url.URL, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("upstream is empty; want a base URL like http://release-a:8000")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("upstream %q is not a URL: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("upstream %q: scheme must be http or https, like http://release-a:8000", s)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("upstream %q has no host; want a base URL like http://release-a:8000", s)
	}
	if u.User != nil {
		return nil, fmt.Errorf("upstream %q: credentials in the URL are not supported", redact(u))
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || u.ForceQuery {
		return nil, fmt.Errorf("upstream %q must be a base URL without path or query, like http://release-a:8000", s)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

func redact(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

// ParseAdmin turns an admin address (unix:///run/modelship/gateway.sock or
// a plain absolute or relative path) into a socket path.
func ParseAdmin(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("admin socket is empty; want unix:///run/modelship/gateway.sock or a path")
	}
	if rest, ok := strings.CutPrefix(s, "unix://"); ok {
		if rest == "" {
			return "", fmt.Errorf("admin address %q has no path; want unix:///run/modelship/gateway.sock", s)
		}
		return rest, nil
	}
	if strings.Contains(s, "://") {
		return "", fmt.Errorf("admin address %q: only unix sockets are supported (unix:///PATH), so the admin API is never on a network port", s)
	}
	return s, nil
}
