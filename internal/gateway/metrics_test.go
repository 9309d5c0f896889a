package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/modelship/modelship/internal/releasemetrics"
	"github.com/modelship/modelship/internal/serve"
	"github.com/modelship/modelship/internal/testenv"
	"github.com/modelship/modelship/serving"
)

// servedRelease is a release as the gateway sees one: modelship serve's
// proxy (its real GET /version) in front of an engine whose chat streams
// wait for hold after their first chunk, whose completions fail 500, and
// which counts the requests that reach it by path.
type servedRelease struct {
	url   string
	proxy *serve.Proxy
	paths map[string]*atomic.Int64
}

func startRelease(t *testing.T, info serve.VersionInfo, hold <-chan struct{}) *servedRelease {
	t.Helper()
	rel := &servedRelease{paths: map[string]*atomic.Int64{}}
	for _, p := range []string{"/v1/chat/completions", "/v1/completions", "/v1/models", MetricsPath} {
		rel.paths[p] = &atomic.Int64{}
	}
	eng := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := rel.paths[r.URL.Path]; n != nil {
			n.Add(1)
		}
		switch r.URL.Path {
		case "/v1/chat/completions":
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-hold:
			case <-r.Context().Done():
			}
			io.WriteString(w, "data: [DONE]\n\n")
		case "/v1/completions":
			http.Error(w, `{"error":{"message":"engine failed"}}`, http.StatusInternalServerError)
		default:
			io.WriteString(w, `{"object":"list","data":[{"id":"llama"}]}`)
		}
	}))
	t.Cleanup(eng.Close)
	u, _ := url.Parse(eng.URL)
	rel.proxy = serve.NewProxy(u, info)
	ts := httptest.NewServer(rel.proxy)
	t.Cleanup(ts.Close)
	rel.url = ts.URL
	return rel
}

// gatewayScrape GETs MetricsPath with no API key and parses the whole
// answer strictly.
func gatewayScrape(t *testing.T, base string) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	code, body := get(t, base+MetricsPath)
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d: %s", MetricsPath, code, body)
	}
	fams, err := releasemetrics.ParseExposition(strings.NewReader(body))
	if err != nil {
		t.Fatalf("GET %s is not a valid exposition: %v\n%s", MetricsPath, err, body)
	}
	return fams, body
}

// settledScrape scrapes until no request is in flight: a request is
// recorded just after its answer has reached the client.
func settledScrape(t *testing.T, base string) (fams map[string]*dto.MetricFamily, text string) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, "the requests out of flight", func() bool {
		fams, text = gatewayScrape(t, base)
		return releasemetrics.TotalInFlight(fams) == 0
	})
	return fams, text
}

// sendV1 sends a request with a small JSON body and returns the status.
func sendV1(t *testing.T, base, method, path string) int {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader(`{"model":"llama"}`))
	code, _ := send(t, http.DefaultClient, req)
	return code
}

// The gateway's own metrics label each /v1/ request with the release that
// answered it — the stable one, or the canary for its share — by the
// status the client got; the TTFT counts the successful generations only;
// in-flight shows a stream being answered; each release routed to has its
// info as its GET /version says, the model digest once it is computed.
// The metrics path is answered by the gateway, never forwarded, and
// neither counts nor samples itself.
func TestGatewayMetricsPerRelease(t *testing.T) {
	hold := make(chan struct{})
	stable := startRelease(t, serve.VersionInfo{ReleaseID: "20261207-170000-aaaa", ServedModelName: "llama",
		Digest: "sha256:1111", DigestStatus: serve.DigestProvided, Image: "registry.example/llm:1", ImageDigest: "sha256:i1"}, hold)
	canary := startRelease(t, serve.VersionInfo{ReleaseID: "20261207-171000-bbbb", ServedModelName: "llama",
		DigestStatus: serve.DigestComputing, Image: "registry.example/llm:2"}, hold)
	retry := versionRetry
	defer func() { versionRetry = retry }()
	versionRetry = 0 // ask again at every scrape while the digest is computed
	g, err := New(Options{Upstream: stable.url, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(g)
	defer gw.Close()

	stream, err := http.Post(gw.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(stream.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	stableLabel := map[string]string{serving.MetricLabelRelease: "20261207-170000-aaaa"}
	fams, text := gatewayScrape(t, gw.URL)
	if v := releasemetrics.Find(fams, serving.MetricInFlight, stableLabel).GetGauge().GetValue(); v != 1 {
		t.Errorf("in flight during a stream = %v, want 1:\n%s", v, text)
	}
	close(hold)
	io.Copy(io.Discard, stream.Body)
	stream.Body.Close()
	sendV1(t, gw.URL, http.MethodPost, "/v1/completions")
	sendV1(t, gw.URL, http.MethodGet, "/v1/models")
	sendV1(t, gw.URL, http.MethodGet, "/ready") // proxied, not an API request
	notReady := false                           // its engine's completions fail
	if _, err := g.SetCanary(context.Background(), CanaryRequest{Upstream: canary.url, Percent: 100, RequireReady: &notReady}); err != nil {
		t.Fatal(err)
	}
	sendV1(t, gw.URL, http.MethodPost, "/v1/chat/completions")
	gatewayScrape(t, gw.URL) // the canary's digest: still computing
	canary.proxy.SetDigest("sha256:2222", nil)

	fams, text = settledScrape(t, gw.URL)
	for _, c := range []struct {
		release, code string
		want          float64
	}{{"20261207-170000-aaaa", "200", 2}, {"20261207-170000-aaaa", "500", 1}, {"20261207-171000-bbbb", "200", 1}} {
		m := releasemetrics.Find(fams, serving.MetricRequests, map[string]string{serving.MetricLabelRelease: c.release, serving.MetricLabelCode: c.code})
		if m.GetCounter().GetValue() != c.want {
			t.Errorf("%s{release=%q,code=%q} = %v, want %v:\n%s", serving.MetricRequests, c.release, c.code, m.GetCounter().GetValue(), c.want, text)
		}
	}
	if n := len(fams[serving.MetricRequests].GetMetric()); n != 3 {
		t.Errorf("%d %s series, want 3:\n%s", n, serving.MetricRequests, text)
	}
	canaryLabel := map[string]string{serving.MetricLabelRelease: "20261207-171000-bbbb"}
	for _, c := range []struct {
		label     map[string]string
		ttft, dur uint64
	}{{stableLabel, 1, 3}, {canaryLabel, 1, 1}} {
		ttft := releasemetrics.Find(fams, serving.MetricRequestTTFT, c.label).GetHistogram().GetSampleCount()
		dur := releasemetrics.Find(fams, serving.MetricRequestDuration, c.label).GetHistogram().GetSampleCount()
		if ttft != c.ttft || dur != c.dur {
			t.Errorf("release %v: %d TTFT and %d duration samples, want %d and %d", c.label, ttft, dur, c.ttft, c.dur)
		}
	}
	for _, info := range []map[string]string{
		{"release": "20261207-170000-aaaa", "model": "llama", "model_digest": "sha256:1111", "image": "registry.example/llm:1", "image_digest": "sha256:i1"},
		{"release": "20261207-171000-bbbb", "model": "llama", "model_digest": "sha256:2222", "image": "registry.example/llm:2", "image_digest": ""},
	} {
		if m := releasemetrics.Find(fams, serving.MetricReleaseInfo, info); m.GetGauge().GetValue() != 1 {
			t.Errorf("no %s = 1 with %v:\n%s", serving.MetricReleaseInfo, info, text)
		}
	}
	for _, rel := range []*servedRelease{stable, canary} {
		if n := rel.paths[MetricsPath].Load(); n != 0 {
			t.Errorf("%s was forwarded to a release %d times", MetricsPath, n)
		}
	}
	if s := g.Samples(0); len(s.Samples) != 5 {
		t.Errorf("%d samples, want the 5 proxied requests (the scrapes are not samples)", len(s.Samples))
	}
}

// A /v1/ request answered 503 because no release is active counts with
// release ""; a release whose GET /version names no release is labelled
// with its URL and its info says nothing it does not know.
func TestGatewayMetricsWithoutReleaseIDs(t *testing.T) {
	g, err := New(Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(g)
	defer gw.Close()
	if code := sendV1(t, gw.URL, http.MethodGet, "/v1/models"); code != http.StatusServiceUnavailable {
		t.Fatalf("no release active: %d, want 503", code)
	}
	fams, text := settledScrape(t, gw.URL)
	if m := releasemetrics.Find(fams, serving.MetricRequests, map[string]string{"release": "", "code": "503"}); m.GetCounter().GetValue() != 1 {
		t.Errorf("want one 503 with no release:\n%s", text)
	}

	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/version" {
			http.NotFound(w, r) // not a modelship serve
			return
		}
		io.WriteString(w, "{}")
	}))
	defer old.Close()
	if _, err := g.Switch(context.Background(), old.URL, false, 0); err != nil {
		t.Fatal(err)
	}
	sendV1(t, gw.URL, http.MethodGet, "/v1/models")
	fams, text = settledScrape(t, gw.URL)
	if m := releasemetrics.Find(fams, serving.MetricRequests, map[string]string{"release": old.URL, "code": "200"}); m.GetCounter().GetValue() != 1 {
		t.Errorf("want one 200 labelled with the release's URL:\n%s", text)
	}
	info := map[string]string{"release": old.URL, "model": "", "model_digest": "", "image": "", "image_digest": ""}
	if m := releasemetrics.Find(fams, serving.MetricReleaseInfo, info); m.GetGauge().GetValue() != 1 {
		t.Errorf("want the info of the release known by URL only:\n%s", text)
	}
	if resp, err := http.Post(gw.URL+MetricsPath, "", nil); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST %s: %v %v, want 405", MetricsPath, resp, err)
	}
}

// A request retried on the previous release, the active one refusing
// connections, is counted for the release that answered it, and leaves
// neither in flight.
func TestGatewayMetricsOfARetriedRequest(t *testing.T) {
	oldRel := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") }))
	defer oldRel.Close()
	newRel := httptest.NewServer(http.NotFoundHandler())
	gw := startGateway(t, Options{Upstream: oldRel.URL})
	if _, err := gw.g.Switch(context.Background(), newRel.URL, false, 0); err != nil {
		t.Fatal(err)
	}
	newRel.Close() // its engine dies
	if code := sendV1(t, gw.url, http.MethodGet, "/v1/models"); code != http.StatusOK {
		t.Fatalf("retried request: %d, want the previous release's 200", code)
	}
	fams, text := settledScrape(t, gw.url)
	if m := releasemetrics.Find(fams, serving.MetricRequests, map[string]string{"release": oldRel.URL, "code": "200"}); m.GetCounter().GetValue() != 1 {
		t.Errorf("want one 200 for the previous release:\n%s", text)
	}
	if n := len(fams[serving.MetricRequests].GetMetric()); n != 1 {
		t.Errorf("%d %s series, want 1:\n%s", n, serving.MetricRequests, text)
	}
	for _, rel := range []string{oldRel.URL, newRel.URL} {
		if m := releasemetrics.Find(fams, serving.MetricInFlight, map[string]string{"release": rel}); m == nil || m.GetGauge().GetValue() != 0 {
			t.Errorf("release %s: want 0 in flight:\n%s", rel, text)
		}
	}
}

// The lines about a request carry what the gateway learnt of the release
// that answered it, as ECS fields; nothing it has not learnt.
func TestReleaseAttrsAreWhatWasLearnt(t *testing.T) {
	u := &upstream{}
	if a := u.releaseAttrs(); len(a) != 0 {
		t.Errorf("before /version was read: %v, want none", a)
	}
	u.about.info = releasemetrics.Info{Release: "r-42", Image: "registry.example/llm:1", ModelDigest: "sha256:11"}
	got := fmt.Sprint(u.releaseAttrs())
	if want := "[modelship.release.id=r-42 modelship.model.digest=sha256:11 modelship.image.ref=registry.example/llm:1]"; got != want {
		t.Errorf("releaseAttrs = %s, want %s", got, want)
	}
}
