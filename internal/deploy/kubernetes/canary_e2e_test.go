package kubernetes_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/modelship/modelship/internal/analysis"
	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/kubernetes"
	"github.com/modelship/modelship/internal/testenv"
)

// gpuSlots makes GPUs scarce: every node advertises n of the extended
// resource nvidia.com/gpu (a node-status patch, as a device plugin would),
// so pods asking one GPU each fit n at a time. It waits until the
// scheduler's view (allocatable) has them.
func gpuSlots(t *testing.T, e *env, n int64) {
	t.Helper()
	ctx := context.Background()
	nodes, err := e.target.Client().CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	patch := fmt.Appendf(nil, `{"status":{"capacity":{%q:"%d"}}}`, kubernetes.GPUResource, n)
	for _, node := range nodes.Items {
		if _, err := e.target.Client().CoreV1().Nodes().PatchStatus(ctx, node.Name, patch); err != nil {
			t.Fatalf("advertising %d GPUs on node %s: %v", n, node.Name, err)
		}
	}
	testenv.Eventually(t, time.Minute, "the nodes' allocatable GPUs", func() bool {
		nodes, err := e.target.Client().CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		for _, node := range nodes.Items {
			if q := node.Status.Allocatable[kubernetes.GPUResource]; q.Cmp(*resource.NewQuantity(n, resource.DecimalSI)) != 0 {
				return false
			}
		}
		return true
	})
}

// canaryEnv is an environment of 4 replicas of 1 GPU each on 4 GPU slots:
// blue-green cannot place a second copy, so the canary replaces replicas
// batch by batch. The serving release is the good model, rolled out.
func canaryEnv(t *testing.T) *env {
	t.Helper()
	images(t)
	e := newEnv(t, 4, func(o *kubernetes.Options) { o.GPUs = 1 })
	gpuSlots(t, e, 4)
	e.deploy(t, good, deploy.Rolling)
	return e
}

func (e *env) canary(img testenv.Built, bake time.Duration) deploy.Request {
	req := e.request(img, deploy.Canary)
	req.Canary = &deploy.CanarySpec{
		Steps:    []deploy.CanaryStep{{Percent: 25, Bake: bake}, {Percent: 50, Bake: bake}, {Percent: 100}},
		Interval: time.Second, Deadline: 2 * time.Minute, Analysis: analysis.Thresholds{MinSamples: 20},
	}
	return req
}

// pods counts env's ready pods per Deployment.
func (e *env) pods(t *testing.T) map[string]int {
	t.Helper()
	pods, err := e.target.Pods(context.Background(), e.name, "", "")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for i := range pods {
		if kubernetes.PodReady(&pods[i]) && pods[i].DeletionTimestamp == nil {
			out[pods[i].Labels[kubernetes.LabelDeployment]]++
		}
	}
	return out
}

func TestCanaryBatchedPromotedUnderLoad(t *testing.T) {
	e := canaryEnv(t)
	url := e.clusterIP(t)
	var res *deploy.Result
	load := testenv.UnderLoad(t, url, 4, 50, "canary 25% → 50% → 100% on 4 GPU slots", func() string {
		var err error
		res, err = e.d.Deploy(context.Background(), e.canary(good2, 5*time.Second))
		if err != nil {
			t.Fatalf("canary of %s: %v", good2.Tag, err)
		}
		return fmt.Sprintf("%d requests on the canary, %d on the serving release", res.Rollout.CanaryRequests, res.Rollout.StableRequests)
	})
	t.Logf("canary of %s: %s\n%s", good2.Tag, res.Rollout.Decision, analysis.Table(res.Rollout.Steps))
	if load.Failures != 0 {
		t.Errorf("%d of %d requests failed during the batched canary, want 0", load.Failures, load.Requests)
	}
	if res.Plan.Strategy != deploy.Canary || len(res.Rollout.Steps) != 2 || res.RolledBack || res.Rollout.CanaryRequests == 0 {
		t.Errorf("strategy %s, %d steps, rolled back %v, %d canary requests; want canary, 2 steps passed, requests on the canary",
			res.Plan.Strategy, len(res.Rollout.Steps), res.RolledBack, res.Rollout.CanaryRequests)
	}
	log := e.log.String()
	for _, want := range []string{"batch 1 of 4: 1 of 4 replicas down while the new one loads", "1 of 4 ready pods run the new release: actual share 25%",
		"batch 2 of 4: 1 of 4 replicas down", "2 of 4 ready pods run the new release: actual share 50%", "batch 3 of 4", "batch 4 of 4 done"} {
		if !strings.Contains(log, want) {
			t.Errorf("the deploy log does not say %q", want)
		}
	}
	dep := kubernetes.DeploymentName("llm", deploy.Canary, res.Release.ID)
	if got := e.pods(t); got[dep] != 4 || len(got) != 1 {
		t.Errorf("ready pods per Deployment after the promotion: %v, want 4 of %s only", got, dep)
	}
	if v := testenv.GetVersion(t, url); v.Image != good2.Tag {
		t.Errorf("/version %+v after the promotion, want image %s", v, good2.Tag)
	}
}

func TestCanaryErrorsRolledBackAtFirstBatch(t *testing.T) {
	e := canaryEnv(t)
	bad := testenv.ImportImage(t, testenv.ImageErrors)
	url := e.clusterIP(t)
	// The canary's own 500s reach clients (its share is the exposure), so
	// the load is counted here rather than held to zero failures.
	l := testenv.LoadLoop(url, 4)
	res, err := e.d.Deploy(context.Background(), e.canary(bad, 20*time.Second))
	reqs, fails, errs := l.Stop()
	for _, msg := range errs {
		if !strings.Contains(msg, "simulated engine failure") {
			t.Errorf("a request failed other than by the canary's simulated 500: %s", msg)
		}
	}
	var ae *deploy.AbortError
	if !errors.As(err, &ae) || ae.Step != "25%" || ae.Decision.Decider == "" {
		t.Fatalf("deploy error %v, want a canary aborted at step 25%%", err)
	}
	t.Logf("aborted after %s: %s; under load %d of %d requests failed, %d requests on the canary, %d on the serving release\n%s",
		res.Rollout.AbortAfter.Round(time.Millisecond), ae.Why, fails, reqs, res.Rollout.CanaryRequests, res.Rollout.StableRequests, analysis.Table(res.Rollout.Steps))
	if !res.RolledBack || len(res.Rollout.Steps) != 1 {
		t.Errorf("rolled back %v after %d steps, want rolled back at the first", res.RolledBack, len(res.Rollout.Steps))
	}
	if got := e.pods(t); got["llm"] != 4 || len(got) != 1 {
		t.Errorf("ready pods per Deployment after the abort: %v, want all 4 on the serving release (llm)", got)
	}
	for i := range 20 {
		if v := testenv.GetVersion(t, url); v.Image != good.Tag {
			t.Fatalf("request %d after the abort answered by %+v, want the serving release %s", i, v, good.Tag)
		}
	}
}
