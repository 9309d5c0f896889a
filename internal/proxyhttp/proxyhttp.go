// Package proxyhttp is what serve (in front of its engine) and the gateway
// (in front of a release) share as proxies: how they reach the server
// behind them (Transport), and what a client may be told when that server
// fails (Public). The answer never carries the error's text: net/http's
// errors name internal addresses and ports ("dial tcp 172.18.0.5:8000:
// ..."), which stay in the proxy's own log.
package proxyhttp

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"
)

// Public is the status and message for a client after err, naming the
// server as what ("engine", "release"): 503 when it refused connections or
// its name did not resolve (starting, stopped, gone), 504 when it timed
// out, else 502.
func Public(what string, err error) (code int, msg string) {
	var dns *net.DNSError
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &dns):
		return http.StatusServiceUnavailable, what + " is not accepting connections (starting or stopped)"
	case errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return http.StatusGatewayTimeout, what + " did not answer in time"
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return http.StatusBadGateway, what + " closed the connection before answering"
	}
	return http.StatusBadGateway, what + " failed to answer"
}

// DefaultHeaderTimeout bounds the wait for an upstream's response headers:
// a streamed generation sends them at once, a non-streamed one when it is
// done, so it is long; it only ends requests to an engine that hangs.
const DefaultHeaderTimeout = 10 * time.Minute

// Transport is the proxies' transport to their upstream: never through
// HTTP_PROXY (the upstream is local or on the releases' network), many idle
// connections kept, bodies passed as sent (no compression), and no
// upstream's headers awaited longer than headerTimeout (0:
// DefaultHeaderTimeout).
func Transport(headerTimeout time.Duration) *http.Transport {
	if headerTimeout <= 0 {
		headerTimeout = DefaultHeaderTimeout
	}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ResponseHeaderTimeout: headerTimeout,
	}
}
