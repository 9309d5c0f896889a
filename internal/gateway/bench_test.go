package gateway

import (
	"net/http/httptest"
	"testing"

	"github.com/modelship/modelship/internal/httpbench"
)

// BenchmarkGatewayTTFB measures the time to first byte of a streamed
// response straight from a zero-latency engine stub and through the
// gateway, alternating request by request over loopback TCP, and reports
// the p50 and p99 the gateway adds (same method as the serve proxy's
// BenchmarkProxyTTFB; in production the two hops add up).
//
//	go test ./internal/gateway -run '^$' -bench GatewayTTFB -benchtime 20000x
func BenchmarkGatewayTTFB(b *testing.B) {
	eng := httpbench.StubEngine(b)
	g, err := New(Options{Upstream: eng.URL})
	if err != nil {
		b.Fatal(err)
	}
	gw := httptest.NewServer(g)
	defer gw.Close()
	httpbench.AddedTTFB(b, eng.URL, gw.URL, httpbench.Options{Label: "gateway"})
}
