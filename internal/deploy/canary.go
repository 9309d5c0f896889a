package deploy

import (
	"context"
	"errors"
	"time"

	"github.com/modelship/modelship/internal/analysis"
	"github.com/modelship/modelship/internal/shadow"
	"github.com/modelship/modelship/suite"
)

// Canary shifts traffic to the new release in steps, analysing each step
// on live measurements, and aborts (all traffic back to the serving
// release) on the first step that fails.
const Canary = "canary"

// CanaryStep is one step of a canary rollout.
type CanaryStep struct {
	// Percent of requests (0, 100] the new release takes in this step.
	Percent float64
	// Bake is how long the step runs before it can pass.
	Bake time.Duration
	// Pause: after its analysis passed, the step waits for an approval
	// (modelship resume or promote) before the next one.
	Pause bool
}

// CanarySpec configures a canary rollout (Request.Canary).
type CanarySpec struct {
	// Steps, in ascending Percent; the last is 100.
	Steps []CanaryStep
	// Interval is how often a step is analysed (default 10s): a failing
	// canary is aborted within one interval.
	Interval time.Duration
	// StickyHeader, when set, keeps every request carrying the same value
	// of this header on one version for the whole rollout.
	StickyHeader string
	// Analysis are the limits each step is held to.
	Analysis analysis.Thresholds
	// Traffic is what a step with too few requests does: "wait" (default)
	// for more until Deadline, or "synthetic": send analysis traffic
	// (Deployer.Synthetic) through the environment's endpoint.
	Traffic string
	// Deadline is how long a step may stay inconclusive before it fails
	// (default 10m).
	Deadline time.Duration
}

// ShadowSpec configures a shadow step (Request.Shadow): before any client
// sees the new release, a sample of live requests is mirrored to it and
// its answers are compared with the serving release's.
type ShadowSpec struct {
	Percent  float64       // of requests mirrored, (0, 100]
	Duration time.Duration // how long to mirror
	// MinAgreement (0..1) is the lowest agreement rate that passes;
	// MinSamples the fewest compared answers it needs (else inconclusive).
	MinAgreement float64
	MinSamples   int
	// Checks are the validation suite's text assertions: the mirror applies
	// them to both releases' answers to a request with a case's prompt, and
	// the step fails when the new release fails more of them than the
	// serving one.
	Checks []suite.TextCheck
}

// MeasuredSample is one request the router measured, with the upstream
// (Instance.Upstream) that answered it.
type MeasuredSample struct {
	Upstream string
	analysis.Sample
}

// Splitter is a target whose router can send a share of the traffic to a
// second release, measure every request, and mirror requests: what the
// canary and shadow strategies need (the Docker gateway).
type Splitter interface {
	// SetCanary sends percent of the environment's requests to in (the
	// rest to the serving release), keeping requests with the same value
	// of sticky (a header name, "" for none) on one version. in nil or
	// percent 0: everything to the serving release, at once.
	SetCanary(ctx context.Context, env string, in *Instance, percent float64, sticky string) error
	// Samples returns the requests measured since cursor (0: all kept)
	// and the cursor to ask from next.
	Samples(ctx context.Context, env string, since uint64) (s []MeasuredSample, next uint64, err error)
	// Control returns the action an operator asked for during the
	// rollout: "promote", "abort", "resume", or "".
	Control(ctx context.Context, env string) (string, error)
	// SetControl asks the running rollout for an action (modelship
	// promote, abort, resume).
	SetControl(ctx context.Context, env, action string) error
	// SetShadow mirrors percent of requests to in (in nil or 0: stop),
	// applying checks (the validation suite's text assertions) to both
	// releases' answers.
	SetShadow(ctx context.Context, env string, in *Instance, percent float64, checks []suite.TextCheck) error
	// ShadowReport is what the mirror compared so far.
	ShadowReport(ctx context.Context, env string) (*shadow.Report, error)
}

// ErrSplitUnsupported is wrapped by a Splitter's errors when its router
// cannot split (a router older than canaries): nothing was split.
var ErrSplitUnsupported = errors.New("the router cannot split traffic")

// EngineReader reads a release's engine metrics (optional: without it, the
// KV-cache and queue checks are skipped and the report says so).
type EngineReader interface {
	EngineMetrics(ctx context.Context, in *Instance) (*analysis.Engine, error)
}
