package proxyhttp_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/gateway"
	"github.com/modelship/modelship/internal/serve"
)

// A client of serve or of the gateway is never told the internal address
// behind it when that server fails: an engine that closes connections
// before answering, and one that is gone, answer with a status and a
// plain reason only.
func TestProxiesHideUpstreamAddresses(t *testing.T) {
	closing, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer closing.Close()
	go func() {
		for {
			c, err := closing.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	gone, _ := net.Listen("tcp", "127.0.0.1:0")
	goneAddr := gone.Addr().String()
	gone.Close()

	for _, up := range []struct {
		name, addr string
		code       int
	}{
		{"closes connections", closing.Addr().String(), 502},
		{"gone", goneAddr, 503},
	} {
		u := &url.URL{Scheme: "http", Host: up.addr}
		g, err := gateway.New(gateway.Options{Upstream: u.String()})
		if err != nil {
			t.Fatal(err)
		}
		for name, h := range map[string]http.Handler{"serve": serve.NewProxy(u, serve.VersionInfo{}), "gateway": g} {
			srv := httptest.NewServer(h)
			resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			srv.Close()
			_, port, _ := net.SplitHostPort(up.addr)
			if resp.StatusCode != up.code || strings.Contains(string(body), port) || strings.Contains(string(body), "127.0.0.1") {
				t.Errorf("%s, upstream that %s: %d %s; want %d without the upstream's address", name, up.name, resp.StatusCode, body, up.code)
			}
		}
	}
}

// An upstream that accepts a request and never answers does not hold the
// client for ever: past the header timeout serve and the gateway answer
// 504, saying it did not answer in time.
func TestProxiesBoundTheWaitForHeaders(t *testing.T) {
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	conns := make(chan net.Conn, 16)
	defer func() {
		hang.Close()
		for len(conns) > 0 {
			(<-conns).Close()
		}
	}()
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			conns <- c // read nothing, answer nothing
		}
	}()
	u := &url.URL{Scheme: "http", Host: hang.Addr().String()}
	p := serve.NewProxy(u, serve.VersionInfo{})
	p.SetHeaderTimeout(300 * time.Millisecond)
	g, err := gateway.New(gateway.Options{Upstream: u.String(), HeaderTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]http.Handler{"serve": p, "gateway": g} {
		srv := httptest.NewServer(h)
		client := &http.Client{Timeout: 30 * time.Second} // bounds the test, not the proxy
		resp, err := client.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{}`))
		srv.Close()
		if err != nil {
			t.Fatalf("%s: %v (the proxy held the request)", name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(body), "did not answer in time") {
			t.Errorf("%s: %d %s, want 504 saying the upstream did not answer in time", name, resp.StatusCode, body)
		}
	}
}
