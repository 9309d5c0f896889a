// Package proxyerr says what a client may be told when a proxy (serve in
// front of its engine, the gateway in front of a release) could not get an
// answer from the server behind it. The answer never carries the error's
// text: net/http's errors name internal addresses and ports ("dial tcp
// 172.18.0.5:8000: ..."), which stay in the proxy's own log.
package proxyerr

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
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
