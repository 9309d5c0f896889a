package vllmmetrics

import (
	"fmt"
	"io"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/modelship/modelship/internal/analysis"
)

// The engine gauges a canary's analysis bounds, by vLLM's names: the
// queue, and the KV-cache usage (0..1) under its current name and the one
// vLLM used before 0.10 (the simulator exports both).
const (
	MetricRequestsWaiting = "vllm:num_requests_waiting"
	MetricKVCacheUsage    = "vllm:kv_cache_usage_perc"
	MetricGPUCacheUsage   = "vllm:gpu_cache_usage_perc"

	// maxEngineText is the most of an exposition ParseEngine reads: vLLM's
	// for one model is tens of KiB, so 8 MiB is any real engine's, and a
	// wrong endpoint streaming without end is cut there.
	maxEngineText = 8 << 20
)

// ParseEngine reads one engine's /metrics (Prometheus text) into the
// figures a canary's analysis bounds: MetricRequestsWaiting summed over
// its label sets (one per served model), and the KV-cache usage
// (MetricKVCacheUsage, else MetricGPUCacheUsage) of the fullest label
// set. A gauge the text lacks is 0; text that is not Prometheus
// exposition is an error. At most 8 MiB of r is read.
func ParseEngine(r io.Reader) (*analysis.Engine, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(io.LimitReader(r, maxEngineText))
	if err != nil {
		return nil, fmt.Errorf("engine metrics: %v", err)
	}
	e := &analysis.Engine{}
	for _, m := range families[MetricRequestsWaiting].GetMetric() {
		e.RequestsWaiting += m.GetGauge().GetValue()
	}
	kv := families[MetricKVCacheUsage]
	if kv == nil {
		kv = families[MetricGPUCacheUsage]
	}
	for _, m := range kv.GetMetric() {
		e.KVCacheUsage = max(e.KVCacheUsage, m.GetGauge().GetValue())
	}
	return e, nil
}
