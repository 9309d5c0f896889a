package releasemetrics

import (
	"bytes"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/modelship/modelship/internal/measure"
	"github.com/modelship/modelship/serving"
)

// scrape encodes what reg gathers as Prometheus text and parses it back.
func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range fams {
		if err := enc.Encode(f); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// A release's requests are counted by status, every one timed, and only
// its successful generations counted in the TTFT, in the buckets their
// times fall in.
func TestSingleRecordsAndExports(t *testing.T) {
	info := Info{Release: "r1", Model: "llama", Image: "img:1"}
	s := NewSingle(func() Info { return info })
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s)

	s.Begin()
	s.Begin()
	s.Done(measure.Sample{Status: 200, TTFBMs: 30, TotalMs: 700}) // generation
	s.Begin()
	s.Done(measure.Sample{Status: 200, TTFBMs: 2, TotalMs: 2, Probe: true}) // GET /v1/models
	s.Begin()
	s.Done(measure.Sample{Status: 503, TTFBMs: 1, TotalMs: 1}) // a failed generation
	info.ModelDigest = "sha256:ab"                             // known later

	text := scrape(t, reg)
	fams, err := ParseExposition(strings.NewReader(text))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, text)
	}
	rel := map[string]string{serving.MetricLabelRelease: "r1"}
	count := func(code string) float64 {
		m := Find(fams, serving.MetricRequests, map[string]string{serving.MetricLabelRelease: "r1", serving.MetricLabelCode: code})
		if m == nil {
			t.Fatalf("no %s{code=%q}:\n%s", serving.MetricRequests, code, text)
		}
		return m.GetCounter().GetValue()
	}
	if count("200") != 2 || count("503") != 1 {
		t.Errorf("requests: 200 %v, 503 %v; want 2 and 1", count("200"), count("503"))
	}
	ttft := Find(fams, serving.MetricRequestTTFT, rel).GetHistogram()
	if ttft.GetSampleCount() != 1 || ttft.GetSampleSum() != 0.03 {
		t.Errorf("TTFT: %d samples, sum %v; want the one 2xx generation, 0.03s", ttft.GetSampleCount(), ttft.GetSampleSum())
	}
	for _, b := range ttft.GetBucket() {
		want := uint64(0)
		if b.GetUpperBound() >= 0.04 { // 0.03 is in le=0.04
			want = 1
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("TTFT bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
	if d := Find(fams, serving.MetricRequestDuration, rel).GetHistogram(); d.GetSampleCount() != 3 {
		t.Errorf("duration: %d samples, want all 3 requests", d.GetSampleCount())
	}
	if g := Find(fams, serving.MetricInFlight, rel).GetGauge().GetValue(); g != 1 {
		t.Errorf("in flight: %v, want the 1 begun and not done", g)
	}
	want := map[string]string{serving.MetricLabelRelease: "r1", serving.MetricLabelModel: "llama",
		serving.MetricLabelModelDigest: "sha256:ab", serving.MetricLabelImage: "img:1", serving.MetricLabelImageDigest: ""}
	if m := Find(fams, serving.MetricReleaseInfo, want); m == nil || m.GetGauge().GetValue() != 1 {
		t.Errorf("no %s = 1 with %v:\n%s", serving.MetricReleaseInfo, want, text)
	}
}

// A series given twice, or a family described twice, is refused as a
// scrape would refuse it.
func TestParseExpositionRefusesDuplicates(t *testing.T) {
	for name, text := range map[string]string{
		"series": "# TYPE a counter\na{x=\"1\"} 1\na{x=\"1\"} 2\n",
		"family": "# TYPE a counter\na 1\n# TYPE a counter\nb 2\n",
	} {
		if _, err := ParseExposition(strings.NewReader(text)); err == nil {
			t.Errorf("%s given twice: parsed", name)
		}
	}
	if _, err := ParseExposition(strings.NewReader("# TYPE a counter\na{x=\"1\"} 1\na{x=\"2\"} 2\n")); err != nil {
		t.Errorf("two series: %v", err)
	}
}

// BenchmarkRecorder is the metrics' own cost on a request's hot path:
// Begin and Done of one release's requests from parallel goroutines (the
// sample itself is taken for the samples ring anyway).
func BenchmarkRecorder(b *testing.B) {
	r := NewRecorder()
	s := measure.Sample{Status: 200, TTFBMs: 35, TotalMs: 900}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Begin()
			r.Done(s)
		}
	})
}
