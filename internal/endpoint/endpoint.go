// Package endpoint reads the URL of an HTTP server as a user writes it in a
// flag or a file: the one grammar behind suite's, smoke's and bench's
// endpoints of an OpenAI-compatible server and the gateway's upstreams. What
// each caller then allows (a path, a query, credentials) is its own rule.
package endpoint

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Parse parses s, without the white space around it, as an http or https URL
// with a host. what is the word its errors start with ("endpoint",
// "upstream"), and example a URL they show as what was expected. Errors
// repeat s with any password hidden.
func Parse(what, s, example string) (*url.URL, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return nil, fmt.Errorf("%s is empty; want a URL like %s", what, example)
	}
	u, err := url.Parse(t)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s %s is not a URL: %v (expected an http(s) URL like %s)", what, Hide(s), err, example)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%s %s: scheme must be http or https (expected an http(s) URL like %s)", what, Hide(s), example)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%s %s has no host (expected an http(s) URL like %s)", what, Hide(s), example)
	}
	return u, nil
}

// Hide is s quoted for a message, with the password of a URL hidden; a
// string that does not parse and holds an "@" is not shown at all.
func Hide(s string) string {
	u, err := url.Parse(s)
	if err == nil {
		if _, ok := u.User.Password(); ok {
			return fmt.Sprintf("%q", u.Redacted())
		}
	} else if strings.Contains(s, "@") {
		return "(an unparsable URL)"
	}
	return fmt.Sprintf("%q", s)
}

// BasePath is an endpoint's path as the base of the OpenAI API's paths:
// without trailing slashes and without a final "/v1", so http://h:8000,
// http://h:8000/ and http://h:8000/v1/ are one endpoint.
func BasePath(p string) string {
	p = strings.TrimSuffix(strings.TrimRight(p, "/"), "/v1")
	return strings.TrimRight(p, "/")
}
