package serve

import (
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/modelship/modelship/internal/httpbench"
)

// BenchmarkProxyTTFB measures the time to first byte of a streamed response
// straight from a local engine stub and through the proxy, both over real
// loopback TCP with keep-alive clients, alternating request by request so
// both see the same machine noise. It reports the p50 and p99 the proxy adds
// (target: p99-added-µs under 1000).
//
//	go test ./internal/serve -run '^$' -bench ProxyTTFB -benchtime 20000x
func BenchmarkProxyTTFB(b *testing.B) {
	eng := httpbench.StubEngine(b)
	proxy := httptest.NewServer(NewProxy(mustURLB(b, eng.URL), VersionInfo{}))
	defer proxy.Close()
	httpbench.AddedTTFB(b, eng.URL, proxy.URL, httpbench.Options{Label: "proxy"})
}

func mustURLB(b *testing.B, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		b.Fatal(err)
	}
	return u
}
