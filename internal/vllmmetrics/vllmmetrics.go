// Package vllmmetrics is vLLM's request metrics (the serving contract's
// names and buckets, serving.Metric*) in a Prometheus registry of their
// own, labelled model_name: what the simulator exports, and what the
// serving proxy exports for an engine without metrics.
package vllmmetrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelship/modelship/serving"
)

// Set is the metrics of one served model.
type Set struct {
	Reg                            *prometheus.Registry
	TTFT, ITL, TPOT, E2E           prometheus.Observer
	Running                        prometheus.Gauge
	Success                        *prometheus.CounterVec // label finished_reason
	PromptTokens, GenerationTokens prometheus.Counter
	label                          prometheus.Labels
}

// New registers the metrics of model; note is added to each help text
// (who measures them).
func New(model, note string) *Set {
	s := &Set{Reg: prometheus.NewRegistry(), label: prometheus.Labels{"model_name": model}}
	hist := func(name, help string, b []float64) prometheus.Observer {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help + note, Buckets: b, ConstLabels: s.label})
		s.Reg.MustRegister(h)
		return h
	}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help + note, ConstLabels: s.label})
		s.Reg.MustRegister(c)
		return c
	}
	s.TTFT = hist(serving.MetricTTFT, "Histogram of time to first token in seconds.", serving.TTFTBuckets)
	s.ITL = hist(serving.MetricITL, "Histogram of inter-token latency in seconds.", serving.ITLBuckets)
	s.TPOT = hist(serving.MetricTPOT, "Histogram of time per output token in seconds (deprecated name of vllm:inter_token_latency_seconds).", serving.ITLBuckets)
	s.E2E = hist(serving.MetricE2E, "Histogram of e2e request latency in seconds.", serving.E2EBuckets)
	s.Running = s.Gauge(serving.MetricRunning, "Number of requests in model execution batches."+note)
	s.Success = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: serving.MetricSuccess, Help: "Count of successfully processed requests." + note, ConstLabels: s.label,
	}, []string{"finished_reason"})
	s.Reg.MustRegister(s.Success)
	for _, r := range []string{"stop", "length", "abort"} {
		s.Success.WithLabelValues(r) // export zeros, as vLLM does
	}
	s.PromptTokens = counter(serving.MetricPromptTokens, "Number of prefill tokens processed.")
	s.GenerationTokens = counter(serving.MetricGenerationTokens, "Number of generation tokens processed.")
	return s
}

// Gauge registers a further gauge of the model.
func (s *Set) Gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: s.label})
	s.Reg.MustRegister(g)
	return g
}
