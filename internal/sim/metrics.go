package sim

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelship/modelship/serving"
)

// metrics are the vLLM metrics the simulator exports, all labelled
// model_name, in a registry of their own.
type metrics struct {
	reg *prometheus.Registry

	ttft, itl, tpot, e2e prometheus.Observer
	running, waiting     prometheus.Gauge
	kvUsage, gpuCache    prometheus.Gauge
	success              *prometheus.CounterVec // label finished_reason
	promptTokens         prometheus.Counter
	generationTokens     prometheus.Counter
}

func newMetrics(model string) *metrics {
	reg := prometheus.NewRegistry()
	label := prometheus.Labels{"model_name": model}
	hist := func(name, help string, buckets []float64) prometheus.Observer {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets, ConstLabels: label})
		reg.MustRegister(h)
		return h
	}
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: label})
		reg.MustRegister(g)
		return g
	}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: label})
		reg.MustRegister(c)
		return c
	}
	m := &metrics{reg: reg}
	m.ttft = hist(serving.MetricTTFT, "Histogram of time to first token in seconds.", serving.TTFTBuckets)
	m.itl = hist(serving.MetricITL, "Histogram of inter-token latency in seconds.", serving.ITLBuckets)
	m.tpot = hist(serving.MetricTPOT, "Histogram of time per output token in seconds (deprecated name of vllm:inter_token_latency_seconds).", serving.ITLBuckets)
	m.e2e = hist(serving.MetricE2E, "Histogram of e2e request latency in seconds.", serving.E2EBuckets)
	m.running = gauge(serving.MetricRunning, "Number of requests in model execution batches.")
	m.waiting = gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.")
	m.kvUsage = gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage (simulated: running / max-num-seqs).")
	m.gpuCache = gauge("vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage (deprecated name of vllm:kv_cache_usage_perc).")
	m.success = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: serving.MetricSuccess, Help: "Count of successfully processed requests.", ConstLabels: label,
	}, []string{"finished_reason"})
	reg.MustRegister(m.success)
	for _, r := range []string{"stop", "length", "abort"} {
		m.success.WithLabelValues(r) // export zeros, as vLLM does
	}
	m.promptTokens = counter(serving.MetricPromptTokens, "Number of prefill tokens processed.")
	m.generationTokens = counter(serving.MetricGenerationTokens, "Number of generation tokens processed.")
	return m
}
