package sim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

// BenchmarkThroughput measures the simulator's own overhead: requests per
// second with no simulated latency (ttft=0, itl=0), over real HTTP with
// concurrent clients.
//
//	go test -run '^$' -bench Throughput -benchtime 2s ./internal/sim
func BenchmarkThroughput(b *testing.B) {
	for _, mode := range []struct {
		name   string
		stream bool
	}{{"nonstream", false}, {"stream", true}} {
		b.Run(mode.name, func(b *testing.B) {
			_, url := start(b, testTable(), Options{MaxNumSeqs: 256})
			body, _ := json.Marshal(chatReq("What is the capital of France?", map[string]any{"stream": mode.stream}))
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			b.SetParallelism(4)
			b.ResetTimer()
			t0 := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Post(url+"/v1/chat/completions", "application/json", bytes.NewReader(body))
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
			el := time.Since(t0).Seconds()
			b.ReportMetric(float64(b.N)/el, "req/s")
			b.ReportMetric(float64(b.N*7)/el, "tokens/s")
		})
	}
}
