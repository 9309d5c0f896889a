package serve

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkProxyTTFB measures the time to first byte of a streamed response
// straight from a local engine stub and through the proxy, both over real
// loopback TCP with keep-alive clients, alternating request by request so
// both see the same machine noise. It reports the p50 and p99 the proxy adds
// (target: p99-added-µs under 1000).
//
//	go test ./internal/serve -run '^$' -bench ProxyTTFB -benchtime 20000x
func BenchmarkProxyTTFB(b *testing.B) {
	eng := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n")
		w.(http.Flusher).Flush()
		io.WriteString(w, "data: [DONE]\n\n")
	}))
	defer eng.Close()
	proxy := httptest.NewServer(NewProxy(mustURLB(b, eng.URL), VersionInfo{}))
	defer proxy.Close()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}}
	body := `{"model":"m","messages":[{"role":"user","content":"Hi"}],"stream":true}`
	ttfb := func(url string) time.Duration {
		start := time.Now()
		resp, err := client.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		var one [1]byte
		if _, err := io.ReadFull(resp.Body, one[:]); err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		io.Copy(io.Discard, resp.Body) // finish so the connection is reused
		resp.Body.Close()
		return d
	}
	// Warm both paths' connections.
	for range 50 {
		ttfb(eng.URL)
		ttfb(proxy.URL)
	}
	direct := make([]time.Duration, 0, b.N)
	proxied := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		direct = append(direct, ttfb(eng.URL))
		proxied = append(proxied, ttfb(proxy.URL))
	}
	b.StopTimer()
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	d50, d99 := percentile(direct, 50), percentile(direct, 99)
	p50, p99 := percentile(proxied, 50), percentile(proxied, 99)
	b.ReportMetric(us(d50), "direct-p50-µs")
	b.ReportMetric(us(d99), "direct-p99-µs")
	b.ReportMetric(us(p50), "proxy-p50-µs")
	b.ReportMetric(us(p99), "proxy-p99-µs")
	b.ReportMetric(us(p50-d50), "p50-added-µs")
	b.ReportMetric(us(p99-d99), "p99-added-µs")
}

// percentile returns the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(i-1, 0)]
}

func mustURLB(b *testing.B, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		b.Fatal(err)
	}
	return u
}
