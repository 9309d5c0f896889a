package notify

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// redactor replaces a sink's secrets in error text.
type redactor struct {
	name    string   // sink name, prefixes every error
	display string   // what the URL is shown as
	secrets []string // values that must never appear
}

const redacted = "[REDACTED]"

// newRedactor registers rawURL's credentials (userinfo password, query) and
// the given secrets. display is what the URL is shown as in errors.
func newRedactor(name, rawURL, display string, secrets ...string) redactor {
	r := redactor{name: name, display: display}
	for _, s := range secrets {
		r.add(s)
	}
	if u, err := url.Parse(rawURL); err == nil {
		if p, ok := u.User.Password(); ok {
			r.add(p)
		}
		if u.User != nil {
			r.add(u.User.String())
			// What a server may echo back from the Authorization header.
			r.add(base64.StdEncoding.EncodeToString([]byte(u.User.String())))
			if p, ok := u.User.Password(); ok {
				r.add(base64.StdEncoding.EncodeToString([]byte(u.User.Username() + ":" + p)))
			}
		}
		r.add(u.RawQuery)
	}
	return r
}

// addPath registers rawURL whole, its path, and its token-like path
// segments (16 characters or more), for URLs that carry a credential in
// their path (incoming webhooks).
func (r *redactor) addPath(rawURL string) {
	r.add(rawURL)
	u, err := url.Parse(rawURL)
	if err != nil {
		return
	}
	if u.Path != "/" {
		r.add(u.Path)
		r.add(u.EscapedPath())
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if len(seg) >= 16 {
			r.add(seg)
		}
	}
}

func (r *redactor) add(s string) {
	if len(s) < 4 {
		return // too short to replace without mangling every message
	}
	for _, v := range []string{s, url.QueryEscape(s), url.PathEscape(s)} {
		r.secrets = append(r.secrets, v)
	}
}

// text removes every secret from s.
func (r redactor) text(s string) string {
	for _, v := range r.secrets {
		s = strings.ReplaceAll(s, v, redacted)
	}
	return s
}

// err rewrites err so that it names the sink and shows the URL as display:
// net/http's errors repeat the full request URL, which may be a credential.
// The result keeps only the text: no wrapped error can leak one later.
func (r redactor) err(err error) error {
	if err == nil {
		return nil
	}
	var p *Permanent
	permanent := errors.As(err, &p)
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		msg = fmt.Sprintf("%s %s: %v", ue.Op, r.display, ue.Err)
	}
	out := errors.New(r.text(r.name + ": " + strings.TrimPrefix(msg, r.name+": ")))
	if permanent {
		return &Permanent{Err: out}
	}
	return out
}

// hostURL shows scheme://host of raw and nothing else (no path, query or
// credentials), or "<invalid URL>".
func hostURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "<invalid URL>"
	}
	return u.Scheme + "://" + u.Host
}

// postJSON POSTs body to target and checks for a 2xx answer. 4xx answers
// (but 408 and 429) are Permanent. Errors are redacted.
func postJSON(ctx context.Context, c *http.Client, r redactor, target string, body []byte, header http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return r.err(fmt.Errorf("POST %s: %v", r.display, errors.Unwrap(err)))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := noRedirects(c).Do(req)
	if err != nil {
		return r.err(err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	if resp.StatusCode/100 == 3 {
		return r.err(&Permanent{Err: redirectError(r.display, resp)})
	}
	err = fmt.Errorf("POST %s: %s", r.display, resp.Status)
	if s := strings.TrimSpace(string(snippet)); s != "" {
		err = fmt.Errorf("%w: %s", err, s)
	}
	if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
		err = &Permanent{Err: err}
	}
	return r.err(err)
}

// noRedirects is c (http.DefaultClient when nil) that does not follow
// redirects: the signed body and its headers would go to whatever host
// an answer names.
func noRedirects(c *http.Client) *http.Client {
	if c == nil {
		c = http.DefaultClient
	}
	cc := *c
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cc
}

// redirectError says a sink answered with a redirect, and to which host.
func redirectError(display string, resp *http.Response) error {
	return fmt.Errorf("POST %s: %s: redirects are not followed (the body and its signature or token would go to %s); configure the final URL", display, resp.Status, hostURL(resp.Header.Get("Location")))
}
