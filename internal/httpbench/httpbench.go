// Package httpbench measures what an HTTP hop in front of a server adds to
// the time to first byte, for benchmarks of the serve proxy and the
// gateway: the same streamed request goes straight to the server and
// through the hop, alternating request by request over real loopback TCP
// with keep-alive clients so that both see the same machine noise.
package httpbench

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// StreamBody is a streamed chat request.
const StreamBody = `{"model":"m","messages":[{"role":"user","content":"Hi"}],"stream":true}`

// StubEngine starts a server answering every request with a two-event SSE
// stream (the first event flushed at once), closed at the end of the
// benchmark: a zero-latency engine, so that what is measured is the hop.
func StubEngine(tb testing.TB) *httptest.Server {
	eng := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n")
		w.(http.Flusher).Flush()
		io.WriteString(w, "data: [DONE]\n\n")
	}))
	tb.Cleanup(eng.Close)
	return eng
}

// Options tune AddedTTFB.
type Options struct {
	// Path and Body of the POST; default /v1/chat/completions and
	// StreamBody.
	Path, Body string
	// Warmup requests on each path before timing; default 50.
	Warmup int
	// Label names the hop in the metrics ("proxy" gives proxy-p50-µs);
	// default "via".
	Label string
	// Header is sent with every request (a sticky header's value).
	Header http.Header
}

// AddedTTFB sends b.N requests to direct and b.N to via (base URLs),
// alternating, and reports direct-p50-µs, direct-p99-µs, LABEL-p50-µs,
// LABEL-p99-µs, p50-added-µs and p99-added-µs. It returns the two samples.
func AddedTTFB(b *testing.B, direct, via string, opt Options) (directTTFB, viaTTFB []time.Duration) {
	b.Helper()
	if opt.Path == "" {
		opt.Path = "/v1/chat/completions"
	}
	if opt.Body == "" {
		opt.Body = StreamBody
	}
	if opt.Warmup == 0 {
		opt.Warmup = 50
	}
	if opt.Label == "" {
		opt.Label = "via"
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4, DisableCompression: true}}
	defer client.CloseIdleConnections()
	ttfb := func(base string) time.Duration {
		start := time.Now()
		req, err := http.NewRequest(http.MethodPost, base+opt.Path, strings.NewReader(opt.Body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header = opt.Header.Clone()
		if req.Header == nil {
			req.Header = http.Header{}
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("POST %s%s answered %d", base, opt.Path, resp.StatusCode)
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
	for range opt.Warmup {
		ttfb(direct)
		ttfb(via)
	}
	directTTFB = make([]time.Duration, 0, b.N)
	viaTTFB = make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		directTTFB = append(directTTFB, ttfb(direct))
		viaTTFB = append(viaTTFB, ttfb(via))
	}
	b.StopTimer()
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	d50, d99 := Percentile(directTTFB, 50), Percentile(directTTFB, 99)
	v50, v99 := Percentile(viaTTFB, 50), Percentile(viaTTFB, 99)
	b.ReportMetric(us(d50), "direct-p50-µs")
	b.ReportMetric(us(d99), "direct-p99-µs")
	b.ReportMetric(us(v50), opt.Label+"-p50-µs")
	b.ReportMetric(us(v99), opt.Label+"-p99-µs")
	b.ReportMetric(us(v50-d50), "p50-added-µs")
	b.ReportMetric(us(v99-d99), "p99-added-µs")
	return directTTFB, viaTTFB
}

// Percentile returns the p-th percentile (nearest rank) of ds, 0 for none.
func Percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}
