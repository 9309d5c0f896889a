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

// modelship's own metrics, in Prometheus's naming conventions: the serving
// proxy exports them for its one release and the gateway for every release
// it routes to, next to the engine's vllm:* series. Dashboards and alert
// rules (observability/) are written against these names.
const (
	// MetricRequests counts finished requests, labels release and code (the
	// HTTP status the client got; a failed upstream is the 502 it got).
	MetricRequests = "modelship_requests_total"
	// MetricRequestTTFT is the time to the first byte of a generation's
	// answer (the first token of a stream), label release.
	MetricRequestTTFT = "modelship_time_to_first_token_seconds"
	// MetricRequestDuration is the end-to-end time of every request, label
	// release.
	MetricRequestDuration = "modelship_request_duration_seconds"
	// MetricInFlight is the requests being served now, label release.
	MetricInFlight = "modelship_requests_in_flight"
	// MetricReleaseInfo is 1 per release served, labels release, model,
	// model_digest, image and image_digest (an info metric).
	MetricReleaseInfo = "modelship_release_info"
)

// Labels of modelship's own metrics (MetricLabel*: serving's Label* are
// image labels).
const (
	MetricLabelRelease     = "release"
	MetricLabelCode        = "code"
	MetricLabelModel       = "model"
	MetricLabelModelDigest = "model_digest"
	MetricLabelImage       = "image"
	MetricLabelImageDigest = "image_digest"
)
