package serve

import (
	"net/http"
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

// BenchmarkStickyForwardTTFB measures what a sticky header's forward
// between versions adds on Kubernetes: a request answered by the new
// release's replica itself (direct) against one the serving release's
// replica got and forwarded there (a second proxy hop), alternated.
//
//	go test ./internal/serve -run '^$' -bench StickyForwardTTFB -benchtime 20000x
func BenchmarkStickyForwardTTFB(b *testing.B) {
	eng := httpbench.StubEngine(b)
	canary := httptest.NewServer(NewProxy(mustURLB(b, eng.URL), VersionInfo{}))
	defer canary.Close()
	sp := NewProxy(mustURLB(b, eng.URL), VersionInfo{})
	stable := httptest.NewServer(sp)
	defer stable.Close()
	if _, err := sp.SetRoute(Route{Sticky: &StickyRoute{Header: "X-Conversation-Id", Percent: 100, Self: SelfStable, Stable: stable.URL, Canary: canary.URL}}); err != nil {
		b.Fatal(err)
	}
	h := http.Header{"X-Conversation-Id": {"c1"}}
	httpbench.AddedTTFB(b, canary.URL, stable.URL, httpbench.Options{Label: "forward", Header: h})
}

// BenchmarkShadowTTFB measures what mirroring every request adds to the
// client's time to first byte: the same replica's proxy without a route
// (direct) and another with a shadow of 100% to a second engine stub.
//
//	go test ./internal/serve -run '^$' -bench ShadowTTFB -benchtime 20000x
func BenchmarkShadowTTFB(b *testing.B) {
	eng, cand := httpbench.StubEngine(b), httpbench.StubEngine(b)
	plain := httptest.NewServer(NewProxy(mustURLB(b, eng.URL), VersionInfo{}))
	defer plain.Close()
	mp := NewProxy(mustURLB(b, eng.URL), VersionInfo{})
	mirrored := httptest.NewServer(mp)
	defer mirrored.Close()
	if _, err := mp.SetRoute(Route{Shadow: &ShadowRoute{Upstream: cand.URL, Percent: 100}}); err != nil {
		b.Fatal(err)
	}
	defer mp.closeRoute()
	httpbench.AddedTTFB(b, plain.URL, mirrored.URL, httpbench.Options{Label: "mirrored"})
}
