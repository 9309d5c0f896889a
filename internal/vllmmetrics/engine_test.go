package vllmmetrics

import (
	"strings"
	"testing"
)

// The queue is summed over the served models; the KV-cache usage is the
// fullest model's, by the current name where the engine exports it (the
// older name's 0.9 beside it is not read), else by the older one.
func TestParseEngine(t *testing.T) {
	for _, c := range []struct {
		name, text    string
		waiting, kvPc float64
	}{
		{"both names", `# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="a"} 2
vllm:num_requests_waiting{model_name="b"} 3
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{model_name="a"} 0.25
vllm:kv_cache_usage_perc{model_name="b"} 0.5
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="a"} 0.9
`, 5, 0.5},
		{"older name only", "# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc 0.75\n", 0, 0.75},
		{"neither gauge", "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 4\n", 0, 0},
	} {
		e, err := ParseEngine(strings.NewReader(c.text))
		if err != nil || e == nil || e.RequestsWaiting != c.waiting || e.KVCacheUsage != c.kvPc {
			t.Errorf("%s: %+v %v, want waiting %g, KV cache %g", c.name, e, err, c.waiting, c.kvPc)
		}
	}
}

// An answer that is not a Prometheus exposition (an HTML error page) is
// an error saying so, not zeros.
func TestParseEngineNotPrometheus(t *testing.T) {
	e, err := ParseEngine(strings.NewReader("<html><body>502 Bad Gateway</body></html>\n"))
	if err == nil || e != nil || !strings.HasPrefix(err.Error(), "engine metrics: ") {
		t.Fatalf("HTML page: %+v %v, want an engine metrics error", e, err)
	}
}
