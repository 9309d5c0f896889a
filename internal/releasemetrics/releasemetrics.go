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

// Recorder holds one release's requests: those in flight, and the
// finished ones' counts by status and TTFT and duration histograms. It is
// safe for concurrent use; recording takes one short lock.
type Recorder struct {
	inFlight atomic.Int64

	mu    sync.Mutex
	codes map[int]uint64
	count uint64
	ttft  histogram
	dur   histogram
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{codes: map[int]uint64{}, ttft: newHistogram(serving.TTFTBuckets), dur: newHistogram(DurationBuckets)}
}

// Begin counts a request in flight; End ends it, Done ends and records
// it.
func (r *Recorder) Begin() { r.inFlight.Add(1) }

// End counts a request Begin counted out of flight.
func (r *Recorder) End() { r.inFlight.Add(-1) }

// Done is Record and End: once a request is out of flight, it is
// recorded.
func (r *Recorder) Done(s measure.Sample) {
	r.Record(s)
	r.End()
}

// Record adds a finished request, as it was measured: counted by the
// status the client got, its total time observed, and its time to first
// byte too when it is a generation (not a probe) answered 2xx.
func (r *Recorder) Record(s measure.Sample) {
	r.mu.Lock()
	r.codes[s.Status]++
	r.count++
	r.dur.observe(s.TotalMs / 1000)
	if !s.Probe && s.Status >= 200 && s.Status <= 299 {
		r.ttft.observe(s.TTFBMs / 1000)
	}
	r.mu.Unlock()
}

// Used reports whether a request was ever begun.
func (r *Recorder) Used() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count > 0 || r.inFlight.Load() > 0
}

// Collect sends the request counts, both histograms and the in-flight
// gauge labelled release. The histograms are sent with no observation too
// (all zero), so that a release's series exist from its first scrape.
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
	ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(r.inFlight.Load()), release)
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
	*Recorder
	info func() Info
}

// NewSingle returns the metrics of the release info describes; info is
// called at every scrape (a model digest computed in the background shows
// once known).
func NewSingle(info func() Info) *Single { return &Single{Recorder: NewRecorder(), info: info} }

// Describe implements prometheus.Collector.
func (s *Single) Describe(ch chan<- *prometheus.Desc) { Describe(ch) }

// Collect implements prometheus.Collector.
func (s *Single) Collect(ch chan<- prometheus.Metric) {
	info := s.info()
	s.Recorder.Collect(ch, info.Release)
	ch <- InfoMetric(info)
}
