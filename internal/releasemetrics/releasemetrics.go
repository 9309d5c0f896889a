// Package releasemetrics keeps modelship's own request metrics of a
// release (serving.MetricRequests, MetricRequestTTFT, MetricRequestDuration,
// MetricInFlight, MetricReleaseInfo) from the same measure.Sample the canary
// analysis reads, so a request is timed once. The values are kept without
// a release label and labelled when scraped: the serving proxy exports its
// one release, the Docker gateway every release it routes to, whose id it
// may learn only after the first requests.
package releasemetrics

import (
	"sort"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelship/modelship/internal/measure"
	"github.com/modelship/modelship/serving"
)

// DurationBuckets are MetricRequestDuration's: from a GET /v1/models of a
// few milliseconds to a long generation. MetricRequestTTFT has vLLM's
// serving.TTFTBuckets, so the two TTFTs read alike.
var DurationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30,
	60, 120, 240, 480, 960}

// Info is what the info metric says of a release; a field not known is "".
type Info struct {
	Release, Model, ModelDigest, Image, ImageDigest string
}

var (
	requestsDesc = prometheus.NewDesc(serving.MetricRequests,
		"Requests answered, by the HTTP status the client got (0: it went away before any).",
		[]string{serving.MetricLabelRelease, serving.MetricLabelCode}, nil)
	ttftDesc = prometheus.NewDesc(serving.MetricRequestTTFT,
		"Time from a generation's arrival to the first byte of its successful (2xx) answer, in seconds.",
		[]string{serving.MetricLabelRelease}, nil)
	durationDesc = prometheus.NewDesc(serving.MetricRequestDuration,
		"Time from a request's arrival to the end of its answer, in seconds.",
		[]string{serving.MetricLabelRelease}, nil)
	inFlightDesc = prometheus.NewDesc(serving.MetricInFlight,
		"Requests being answered now.",
		[]string{serving.MetricLabelRelease}, nil)
	infoDesc = prometheus.NewDesc(serving.MetricReleaseInfo,
		"1 for each release served, labelled with its model and image (\"\" where not known).",
		[]string{serving.MetricLabelRelease, serving.MetricLabelModel, serving.MetricLabelModelDigest,
			serving.MetricLabelImage, serving.MetricLabelImageDigest}, nil)
)

// Describe sends the descriptions of every metric this package makes.
func Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{requestsDesc, ttftDesc, durationDesc, inFlightDesc, infoDesc} {
		ch <- d
	}
}

// Recorder holds one release's finished requests: counts by status, the
// TTFT and duration histograms. It is safe for concurrent use; recording
// takes one short lock.
type Recorder struct {
	mu    sync.Mutex
	codes map[int]uint64
	ttft  histogram
	dur   histogram
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{codes: map[int]uint64{}, ttft: newHistogram(serving.TTFTBuckets), dur: newHistogram(DurationBuckets)}
}

// Record adds one finished request: counted by the status the client got,
// its total time observed, and its time to first byte too when it is a
// generation (not a probe) answered 2xx.
func (r *Recorder) Record(s measure.Sample) {
	r.mu.Lock()
	r.codes[s.Status]++
	r.dur.observe(s.TotalMs / 1000)
	if !s.Probe && s.Status >= 200 && s.Status <= 299 {
		r.ttft.observe(s.TTFBMs / 1000)
	}
	r.mu.Unlock()
}

// Collect sends the request counts and both histograms labelled release.
// A histogram with no observation is sent too (all zero), so that a
// release's series exist from its first scrape.
func (r *Recorder) Collect(ch chan<- prometheus.Metric, release string) {
	r.mu.Lock()
	codes := make([]int, 0, len(r.codes))
	counts := make(map[int]uint64, len(r.codes))
	for c, n := range r.codes {
		codes = append(codes, c)
		counts[c] = n
	}
	ttft, dur := r.ttft.constMetric(ttftDesc, release), r.dur.constMetric(durationDesc, release)
	r.mu.Unlock()
	sort.Ints(codes)
	for _, c := range codes {
		ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, float64(counts[c]), release, strconv.Itoa(c))
	}
	ch <- ttft
	ch <- dur
}

// InFlight is the in-flight gauge of release.
func InFlight(release string, n int64) prometheus.Metric {
	return prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(n), release)
}

// InfoMetric is the info metric of a release: 1, labelled with what is
// known of it.
func InfoMetric(i Info) prometheus.Metric {
	return prometheus.MustNewConstMetric(infoDesc, prometheus.GaugeValue, 1, i.Release, i.Model, i.ModelDigest, i.Image, i.ImageDigest)
}

// histogram is a Prometheus histogram whose label is chosen when it is
// collected; guarded by its Recorder's lock.
type histogram struct {
	bounds []float64
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	count  uint64
}

func newHistogram(bounds []float64) histogram {
	return histogram{bounds: bounds, counts: make([]uint64, len(bounds)+1)}
}

func (h *histogram) observe(v float64) {
	h.counts[sort.SearchFloat64s(h.bounds, v)]++ // the first bound >= v: "le"
	h.sum += v
	h.count++
}

func (h *histogram) constMetric(d *prometheus.Desc, release string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.bounds))
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i]
		buckets[b] = cum
	}
	return prometheus.MustNewConstHistogram(d, h.count, h.sum, buckets, release)
}

// Single is the metrics of one release whose info is known where it
// serves (the serving proxy): a prometheus.Collector.
type Single struct {
	rec      *Recorder
	info     func() Info
	inFlight atomic.Int64
}

// NewSingle returns the metrics of the release info describes; info is
// called at every scrape (a model digest computed in the background shows
// once known).
func NewSingle(info func() Info) *Single { return &Single{rec: NewRecorder(), info: info} }

// Begin counts a request in flight; Done ends it.
func (s *Single) Begin() { s.inFlight.Add(1) }

// Done records a request Begin counted, as it was measured.
func (s *Single) Done(smp measure.Sample) {
	s.inFlight.Add(-1)
	s.rec.Record(smp)
}

// Describe implements prometheus.Collector.
func (s *Single) Describe(ch chan<- *prometheus.Desc) { Describe(ch) }

// Collect implements prometheus.Collector.
func (s *Single) Collect(ch chan<- prometheus.Metric) {
	info := s.info()
	s.rec.Collect(ch, info.Release)
	ch <- InFlight(info.Release, s.inFlight.Load())
	ch <- InfoMetric(info)
}
