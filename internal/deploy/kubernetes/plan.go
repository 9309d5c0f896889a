package kubernetes

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/modelship/modelship/internal/deploy"
)

// FreeGPUs counts the nvidia.com/gpu the pods of matching nodes (ready,
// schedulable, matching the node selector) do not request.
func (t *Target) FreeGPUs(ctx context.Context) (free, total int64, err error) {
	nodes, err := t.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(t.opt.NodeSelector).String()})
	if err != nil {
		return 0, 0, t.wrap(err, "listing nodes")
	}
	for _, n := range nodes.Items {
		if n.Spec.Unschedulable || !nodeReady(&n) {
			continue
		}
		q, ok := n.Status.Allocatable[GPUResource]
		if !ok || q.Value() == 0 {
			continue
		}
		total += q.Value()
		pods, err := t.cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + n.Name})
		if err != nil {
			return 0, 0, t.wrap(err, "listing pods on "+n.Name)
		}
		used := int64(0)
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
				continue
			}
			for _, c := range p.Spec.Containers {
				if r, ok := c.Resources.Requests[GPUResource]; ok {
					used += r.Value()
				} else if l, ok := c.Resources.Limits[GPUResource]; ok {
					used += l.Value()
				}
			}
		}
		free += max(0, q.Value()-used)
	}
	return free, total, nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Plan chooses the strategy on the cluster (deploy.Planner): auto is a
// rolling update (a canary when the environment has canary steps); maxSurge/maxUnavailable come from the free GPUs; blue-green
// needs room for a second full set of replicas. The cluster's scheduler
// places pods, so nothing is fitted on this host's GPUs.
func (t *Target) Plan(ctx context.Context, p deploy.Placement) (*deploy.Plan, error) {
	strategy := p.Strategy
	if strategy == "" || strategy == deploy.Auto {
		strategy = deploy.Rolling
		if p.Canary {
			strategy = deploy.Canary
		}
	}
	if !slices.Contains([]string{deploy.Rolling, deploy.BlueGreen, deploy.Recreate, deploy.Canary}, strategy) {
		return nil, fmt.Errorf("strategy %q: expected auto, rolling, blue-green, canary or recreate", strategy)
	}
	per, n := int64(t.opt.GPUs), int64(t.opt.Replicas)
	var free, total int64
	if per > 0 {
		var err error
		if free, total, err = t.FreeGPUs(ctx); err != nil {
			return nil, err
		}
	}
	plan := &deploy.Plan{Strategy: strategy}
	switch strategy {
	case deploy.BlueGreen:
		if per > 0 && free < per*n {
			return nil, fmt.Errorf("%w: blue-green runs a second set of %d replicas × %d GPU (%s) beside the serving one, and the matching nodes have %d of %d free; use strategy rolling",
				deploy.ErrNoFit, n, per, GPUResource, free, total)
		}
		plan.Why = fmt.Sprintf("blue-green: a second Deployment of %d replicas, the Service switched once all are ready", n)
		if per > 0 {
			plan.Why += fmt.Sprintf(" (%d of %d GPUs free, %d needed)", free, total, per*n)
		}
	case deploy.Recreate:
		plan.Why = "recreate: every replica stops before the new ones start (downtime until they are ready)"
	case deploy.Canary:
		plan.Why = fmt.Sprintf("canary by replica ratio: a second Deployment takes the %d replicas over batch by batch, one stopped before its replacement starts (no surge: no spare GPU needed), each step analysed", n)
	default:
		surge, unav := 1, 0
		switch {
		case per == 0:
			plan.Why = "rolling update: pods use no GPU, so maxSurge 1, maxUnavailable 0: every old pod serves until a new one is ready"
		case free >= per:
			surge = int(min(free/per, n))
			plan.Why = fmt.Sprintf("rolling update: %d of %d GPUs free and a pod needs %d, so maxSurge %d, maxUnavailable 0: every old pod serves until a new one is ready",
				free, total, per, surge)
		default:
			surge, unav = 0, 1
			plan.Why = fmt.Sprintf("rolling update: NO SPARE GPU (%d of %d free, a pod needs %d), so maxSurge 0, maxUnavailable 1: one replica at a time stops before its replacement starts",
				free, total, per)
			if n == 1 {
				plan.Why += "; with 1 replica the service is DOWN from the moment the old pod stops until the new one is ready"
			} else {
				plan.Why += fmt.Sprintf("; capacity drops to %d of %d replicas during the update", n-1, n)
			}
		}
		t.mu.Lock()
		t.surge, t.unavailable, t.planned = surge, unav, true
		t.mu.Unlock()
	}
	return plan, nil
}

// Surge returns the maxSurge and maxUnavailable the last Plan chose.
func (t *Target) Surge() (surge, unavailable int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.surge, t.unavailable
}

func (t *Target) rollout(ctx context.Context) (int, int) {
	t.mu.Lock()
	planned, s, u := t.planned, t.surge, t.unavailable
	t.mu.Unlock()
	if planned {
		return s, u
	}
	p, err := t.Plan(ctx, deploy.Placement{Strategy: deploy.Rolling})
	if err != nil {
		return 0, 1 // the safe choice when capacity is unknown
	}
	_ = p
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.surge, t.unavailable
}
