package sim

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelship/modelship/internal/vllmmetrics"
)

// metrics are the vLLM metrics the simulator exports, all labelled
// model_name, in a registry of their own: vLLM's request metrics and the
// scheduler's gauges.
type metrics struct {
	*vllmmetrics.Set
	waiting, kvUsage, gpuCache prometheus.Gauge
}

func newMetrics(model string) *metrics {
	m := &metrics{Set: vllmmetrics.New(model, "")}
	m.waiting = m.Gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.")
	m.kvUsage = m.Gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage (simulated: running / max-num-seqs).")
	m.gpuCache = m.Gauge("vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage (deprecated name of vllm:kv_cache_usage_perc).")
	return m
}
