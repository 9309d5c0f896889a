package gateway

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/modelship/modelship/internal/endpoint"
)

// DefaultAdminSocket is where the admin API listens unless told otherwise.
const DefaultAdminSocket = "/run/modelship/gateway.sock"

// ParseUpstream parses a release's base URL: http or https, a host, and no
// path, query or fragment (e.g. http://release-a:8000). A trailing "/" is
// dropped so that one release has one spelling.
func ParseUpstream(s string) (*url.URL, error) {
	u, err := endpoint.Parse("upstream", s, "http://release-a:8000")
	if err != nil {
		return nil, err
	}
	if u.User != nil {
		return nil, fmt.Errorf("upstream %s: credentials in the URL are not supported", endpoint.Hide(s))
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || u.ForceQuery {
		return nil, fmt.Errorf("upstream %q must be a base URL without path or query, like http://release-a:8000", s)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
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
