package serving

// Metric names and histogram buckets as vLLM exports them
// (vllm/v1/metrics/loggers.py): the simulator exports them, and so does
// the serving proxy for an engine with no metrics of its own (Ollama),
// from its own measurements, so dashboards, the benchmark and canary
// analysis read the same series whatever the engine.
const (
	MetricTTFT             = "vllm:time_to_first_token_seconds"
	MetricITL              = "vllm:inter_token_latency_seconds"
	MetricTPOT             = "vllm:time_per_output_token_seconds"
	MetricE2E              = "vllm:e2e_request_latency_seconds"
	MetricRunning          = "vllm:num_requests_running"
	MetricSuccess          = "vllm:request_success_total" // label finished_reason
	MetricPromptTokens     = "vllm:prompt_tokens_total"
	MetricGenerationTokens = "vllm:generation_tokens_total"
)

var (
	TTFTBuckets = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5,
		0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0}
	ITLBuckets = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
		1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0}
	E2EBuckets = []float64{0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
		40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0}
)
