package gateway

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/modelship/modelship/internal/httpbench"
	"github.com/modelship/modelship/internal/measure"
	"github.com/modelship/modelship/internal/shadow"
)

// BenchmarkGatewayTTFB measures the time to first byte of a streamed
// response straight from a zero-latency engine stub and through the
// gateway, alternating request by request over loopback TCP, and reports
// the p50 and p99 the gateway adds (same method as the serve proxy's
// BenchmarkProxyTTFB; in production the two hops add up). Every request
// is measured into the samples ring; the sub-benchmarks add a 50% canary
// split, sticky on a header every request carries (a second stub is the
// canary), and mirroring of every request to a Shadower that takes the
// exchange and drops it.
//
//	go test ./internal/gateway -run '^$' -bench GatewayTTFB -benchtime 20000x
func BenchmarkGatewayTTFB(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchGateway(b, nil) })
	b.Run("canary50-sticky", func(b *testing.B) {
		benchGateway(b, func(g *Gateway) {
			if _, err := g.SetCanary(b.Context(), CanaryRequest{Upstream: httpbench.StubEngine(b).URL, Percent: 50, StickyHeader: "X-Conversation-Id"}); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("mirror100", func(b *testing.B) {
		benchGateway(b, func(g *Gateway) {
			g.newShadow = func(shadow.Options) (Shadower, error) { return dropShadow{}, nil }
			if _, err := g.SetShadow(ShadowRequest{Upstream: "http://candidate:8000", Percent: 100}); err != nil {
				b.Fatal(err)
			}
		})
	})
}

func benchGateway(b *testing.B, setup func(*Gateway)) {
	eng := httpbench.StubEngine(b)
	g, err := New(Options{Upstream: eng.URL, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	if setup != nil {
		setup(g)
	}
	// Every request names its conversation, as a sticky client would.
	var n atomic.Uint64
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("X-Conversation-Id", strconv.FormatUint(n.Add(1), 10))
		g.ServeHTTP(w, r)
	}))
	defer gw.Close()
	httpbench.AddedTTFB(b, eng.URL, gw.URL, httpbench.Options{Label: "gateway"})
}

// dropShadow samples everything and drops what it is offered.
type dropShadow struct{}

func (dropShadow) Sample() bool               { return true }
func (dropShadow) Offer(shadow.Exchange) bool { return false }
func (dropShadow) Skip()                      {}
func (dropShadow) Report() shadow.Report      { return shadow.Report{} }
func (dropShadow) Close()                     {}

// BenchmarkSampleRecord is the measuring's own cost on the hot path: one
// request's sample taken and added to the ring, from parallel goroutines.
func BenchmarkSampleRecord(b *testing.B) {
	r := measure.NewRing()
	req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
	b.RunParallel(func(pb *testing.PB) {
		rw := nopWriter{http.Header{"Content-Type": {"text/event-stream"}}}
		for pb.Next() {
			w := measure.NewWriter(rw)
			w.Write([]byte("data: x\n\n"))
			w.Write([]byte("data: [DONE]\n\n"))
			r.Add(w.Sample(req, "http://release-a:8000"))
		}
	})
}

type nopWriter struct{ h http.Header }

func (w nopWriter) Header() http.Header         { return w.h }
func (w nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w nopWriter) WriteHeader(int)             {}
