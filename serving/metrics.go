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
// proxy exports them for its one release at GET /metrics, next to the
// engine's vllm:* series, and the Docker gateway for every release it
// routes to at GET /-/modelship/metrics (gateway.MetricsPath). Both count
// the API's requests, those under /v1/ (not /metrics, /health, /ready,
// /version). Dashboards and alert rules (observability/) are written
// against these names.
const (
	// MetricRequests counts finished requests, labels release and code (the
	// HTTP status the client got: a failed upstream is the 502 or 503 it
	// got, a missing API key the 401; "0" when the client went away before
	// any status). At the gateway a request answered 503 because no
	// release is active has release "".
	MetricRequests = "modelship_requests_total"
	// MetricRequestTTFT is the time to the first byte of a generation's
	// successful (2xx) answer (the first token of a stream), label
	// release: POSTs to /v1/completions and /v1/chat/completions; buckets
	// TTFTBuckets.
	MetricRequestTTFT = "modelship_time_to_first_token_seconds"
	// MetricRequestDuration is the end-to-end time of every request, label
	// release; buckets from 5ms (a model list) to 960s.
	MetricRequestDuration = "modelship_request_duration_seconds"
	// MetricInFlight is the requests being served now, label release.
	// A histogram or gauge of a release exists from its first scrape.
	MetricInFlight = "modelship_requests_in_flight"
	// MetricReleaseInfo is 1 per release served, labels release, model,
	// model_digest, image and image_digest (an info metric); a label not
	// known is "" (model_digest while the digest is computed). The serving
	// proxy's release label is MODELSHIP_RELEASE_ID ("" outside a deploy);
	// the gateway reads each release's from its GET /version, and labels a
	// release that names none with its URL. The gateway's info is the
	// active release's and the canary's.
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
