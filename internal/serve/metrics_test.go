package serve

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/modelship/modelship/internal/releasemetrics"
	"github.com/modelship/modelship/internal/testenv"
	"github.com/modelship/modelship/serving"
)

// metricsEngine is an engine exporting the vLLM metrics in testdata: a
// chat stream that waits for release after its first chunk, a completion
// that fails 400, and a model list.
func metricsEngine(t *testing.T, release <-chan struct{}) *httptest.Server {
	vllm, err := os.ReadFile("testdata/vllm-metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	eng := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/metrics":
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			w.Write(vllm)
		case "/v1/chat/completions":
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
			io.WriteString(w, "data: [DONE]\n\n")
		case "/v1/completions":
			http.Error(w, `{"error":{"message":"max_tokens too large"}}`, http.StatusBadRequest)
		default:
			io.WriteString(w, `{"object":"list","data":[{"id":"llama"}]}`)
		}
	}))
	t.Cleanup(eng.Close)
	return eng
}

// scrapeMetrics GETs /metrics with no API key and parses the whole answer
// strictly (one HELP and TYPE per family, no series twice).
func scrapeMetrics(t *testing.T, base string) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d: %s", resp.StatusCode, body)
	}
	fams, err := releasemetrics.ParseExposition(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("GET /metrics is not a valid exposition: %v\n%s", err, body)
	}
	return fams, string(body)
}

// settledScrape scrapes until no request is in flight: a request is
// recorded just after its answer has reached the client.
func settledScrape(t *testing.T, base string) (fams map[string]*dto.MetricFamily, text string) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, "the requests out of flight", func() bool {
		fams, text = scrapeMetrics(t, base)
		return releasemetrics.TotalInFlight(fams) == 0
	})
	return fams, text
}

// GET /metrics is the engine's vllm:* series and the release's own: every
// /v1/ request by the status the client got (the proxy's own 401
// included), the TTFT of the successful generation only, the duration of
// every request, the one in flight, and the release's info with the model
// digest once it is known.
func TestMetricsOfTheRelease(t *testing.T) {
	release := make(chan struct{})
	eng := metricsEngine(t, release)
	p := NewProxy(mustURL(t, eng.URL), VersionInfo{ReleaseID: "20261207-170000-ab12", ServedModelName: "llama",
		DigestStatus: DigestComputing, Image: "registry.example/llm:1", ImageDigest: "sha256:1111"})
	p.APIKey = "k"
	srv := httptest.NewServer(p)
	defer srv.Close()
	do := func(method, path, key string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(`{"model":"llama"}`))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	rel := map[string]string{serving.MetricLabelRelease: "20261207-170000-ab12"}

	stream := do(http.MethodPost, "/v1/chat/completions", "k")
	if _, err := bufio.NewReader(stream.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	fams, text := scrapeMetrics(t, srv.URL)
	if g := releasemetrics.Find(fams, serving.MetricInFlight, rel); g.GetGauge().GetValue() != 1 {
		t.Errorf("in flight during a stream = %v, want 1:\n%s", g.GetGauge().GetValue(), text)
	}
	close(release)
	io.Copy(io.Discard, stream.Body)
	stream.Body.Close()
	for _, c := range []struct{ method, path, key string }{
		{http.MethodPost, "/v1/completions", "k"}, {http.MethodGet, "/v1/models", "k"}, {http.MethodGet, "/v1/models", "wrong"},
	} {
		resp := do(c.method, c.path, c.key)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	p.SetDigest("sha256:2222", nil)

	fams, text = settledScrape(t, srv.URL)
	for code, want := range map[string]float64{"200": 2, "400": 1, "401": 1} {
		m := releasemetrics.Find(fams, serving.MetricRequests, map[string]string{serving.MetricLabelRelease: "20261207-170000-ab12", serving.MetricLabelCode: code})
		if m.GetCounter().GetValue() != want {
			t.Errorf("%s{code=%q} = %v, want %v:\n%s", serving.MetricRequests, code, m.GetCounter().GetValue(), want, text)
		}
	}
	if n := len(fams[serving.MetricRequests].GetMetric()); n != 3 {
		t.Errorf("%d %s series, want 3 (GET /metrics counts nothing):\n%s", n, serving.MetricRequests, text)
	}
	if h := releasemetrics.Find(fams, serving.MetricRequestTTFT, rel).GetHistogram(); h.GetSampleCount() != 1 {
		t.Errorf("TTFT samples = %d, want 1 (the streamed chat; not the failed completion, not the model list)", h.GetSampleCount())
	}
	if h := releasemetrics.Find(fams, serving.MetricRequestDuration, rel).GetHistogram(); h.GetSampleCount() != 4 {
		t.Errorf("duration samples = %d, want 4", h.GetSampleCount())
	}
	if g := releasemetrics.Find(fams, serving.MetricInFlight, rel); g.GetGauge().GetValue() != 0 {
		t.Errorf("in flight after = %v, want 0", g.GetGauge().GetValue())
	}
	info := map[string]string{serving.MetricLabelRelease: "20261207-170000-ab12", serving.MetricLabelModel: "llama",
		serving.MetricLabelModelDigest: "sha256:2222", serving.MetricLabelImage: "registry.example/llm:1", serving.MetricLabelImageDigest: "sha256:1111"}
	if m := releasemetrics.Find(fams, serving.MetricReleaseInfo, info); m.GetGauge().GetValue() != 1 {
		t.Errorf("no %s = 1 with %v:\n%s", serving.MetricReleaseInfo, info, text)
	}
	if m := releasemetrics.Find(fams, "vllm:kv_cache_usage_perc", map[string]string{"model_name": "llama"}); m.GetGauge().GetValue() != 0.25 {
		t.Errorf("the engine's vllm:kv_cache_usage_perc is not passed on:\n%s", text)
	}
	if h := releasemetrics.Find(fams, serving.MetricTTFT, nil).GetHistogram(); h.GetSampleCount() != 3 {
		t.Errorf("the engine's %s is not passed on:\n%s", serving.MetricTTFT, text)
	}
}

// A scraper asking for OpenMetrics first, as Prometheus does, gets the
// text format (see serveMetrics), which parses.
func TestMetricsForAnOpenMetricsScraper(t *testing.T) {
	p := NewProxy(mustURL(t, metricsEngine(t, nil).URL), VersionInfo{ServedModelName: "llama"})
	srv := httptest.NewServer(p)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0;q=0.6,text/plain;version=0.0.4;q=0.3")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	ct := resp.Header.Get("Content-Type")
	fams, err := releasemetrics.ParseExposition(strings.NewReader(string(body)))
	if resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/plain; version=0.0.4") || err != nil ||
		releasemetrics.Find(fams, serving.MetricReleaseInfo, map[string]string{"release": "", "model": "llama"}) == nil {
		t.Errorf("scrape asking for OpenMetrics: %d %s (%v):\n%s", resp.StatusCode, ct, err, body)
	}
}

// While the engine's metrics cannot be read, the scrape fails as the
// engine's would, saying why, with no internal address.
func TestMetricsEngineUnreadable(t *testing.T) {
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	defer bad.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	for _, c := range []struct {
		engine string
		code   int
		says   string
	}{{bad.URL, http.StatusBadGateway, "engine GET /metrics answered 500: boom"}, {down.URL, http.StatusServiceUnavailable, "engine"}} {
		srv := httptest.NewServer(NewProxy(mustURL(t, c.engine), VersionInfo{}))
		resp, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		host := strings.TrimPrefix(c.engine, "http://")
		if resp.StatusCode != c.code || !strings.Contains(string(body), c.says) || strings.Contains(string(body), host) {
			t.Errorf("engine %s: GET /metrics = %d %s, want %d saying %q", c.engine, resp.StatusCode, body, c.code, c.says)
		}
	}
}

// For an engine with no metrics (Ollama) the proxy's own vllm:* series and
// the release's are one valid exposition.
func TestMetricsMeasuredForOllama(t *testing.T) {
	release := make(chan struct{})
	close(release)
	p := NewProxy(mustURL(t, metricsEngine(t, release).URL), VersionInfo{ReleaseID: "r1", ServedModelName: "llama"})
	p.MeasureCompletions("llama")
	srv := httptest.NewServer(p)
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	fams, text := settledScrape(t, srv.URL)
	if releasemetrics.Find(fams, serving.MetricE2E, nil).GetHistogram().GetSampleCount() != 1 ||
		releasemetrics.Find(fams, serving.MetricRequests, map[string]string{"release": "r1", "code": "200"}).GetCounter().GetValue() != 1 {
		t.Errorf("want the measured %s and the release's %s, one request each:\n%s", serving.MetricE2E, serving.MetricRequests, text)
	}
	if fams["vllm:kv_cache_usage_perc"] != nil {
		t.Errorf("the engine's /metrics was read although it has none")
	}
}
