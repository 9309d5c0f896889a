package kubernetes

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/modelship/modelship/internal/analysis"
	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/vllmmetrics"
)

// engineTimeout bounds one EngineMetrics call, all pods together: a
// healthy /metrics answers in milliseconds, and the analysis reads each
// release's engine once per interval (default 10s), so a hung pod delays
// one release's read by at most half an interval.
const engineTimeout = 5 * time.Second

// enginePath is where each pod's `modelship serve` answers its engine's
// Prometheus metrics (vLLM's own, or serve's for an engine without them).
const enginePath = "/metrics"

// EngineMetrics reads the engine metrics of in's ready pods through the
// API server's pod proxy (GET enginePath of each, as Samples reads their
// measurements) and combines them into the release's (combineEngines).
// No ready pod is nil, nil: the KV-cache and queue checks are skipped,
// and the deployer says so. A ready pod that cannot be read is an error
// naming it and what failed: a release's figure without one of its pods
// would understate its queue.
func (t *Target) EngineMetrics(ctx context.Context, in *deploy.Instance) (*analysis.Engine, error) {
	pods, err := t.Pods(ctx, "", in.ID, in.Release)
	if err != nil {
		return nil, fmt.Errorf("release %s of environment %s: %w", in.Release, in.Env, err)
	}
	ctx, cancel := context.WithTimeout(ctx, engineTimeout)
	defer cancel()
	var per []*analysis.Engine
	for i := range pods {
		p := &pods[i]
		if !PodReady(p) || p.DeletionTimestamp != nil {
			continue // loading or stopping: the Service sends it nothing
		}
		e, err := t.podEngine(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("release %s of environment %s: %w", in.Release, in.Env, err)
		}
		per = append(per, e)
	}
	return combineEngines(per), nil
}

// podEngine reads pod p's engine metrics through the pod proxy.
func (t *Target) podEngine(ctx context.Context, p *corev1.Pod) (*analysis.Engine, error) {
	b, err := t.cs.CoreV1().Pods(t.opt.Namespace).ProxyGet("http", p.Name, strconv.Itoa(ServePort), enginePath, nil).DoRaw(ctx)
	if err != nil {
		return nil, t.wrap(err, fmt.Sprintf("pod %s: GET %s through the pod proxy", p.Name, enginePath))
	}
	e, err := vllmmetrics.ParseEngine(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("pod %s: GET %s: %w", p.Name, enginePath, err)
	}
	return e, nil
}

// combineEngines makes one release's engine figures of its pods' (nil
// when there are none). Requests waiting are summed: the Service spreads
// the release's requests over its pods, and the sum is how many the
// release holds back. The KV-cache usage is the fullest pod's: each pod's
// engine has its own cache, the first full one preempts requests, and a
// mean would hide it (one pod at 0.99 beside three at 0.20 averages 0.40).
func combineEngines(per []*analysis.Engine) *analysis.Engine {
	if len(per) == 0 {
		return nil
	}
	out := &analysis.Engine{}
	for _, e := range per {
		out.RequestsWaiting += e.RequestsWaiting
		out.KVCacheUsage = max(out.KVCacheUsage, e.KVCacheUsage)
	}
	return out
}
