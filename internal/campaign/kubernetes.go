package campaign

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/kubernetes"
)

// KubernetesSite is a campaign on a Kubernetes cluster: releases are
// Deployments (their pods) behind the environment's Service. Images are
// named in the node's containerd (no registry): CtrAddress is its socket.
type KubernetesSite struct {
	T          *kubernetes.Target
	CtrAddress string
}

func (s KubernetesSite) Target() deploy.Target { return s.T }

func (s KubernetesSite) ctr(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", s.CtrAddress, "-n", "k8s.io", "images"}, args...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ctr images %v: %v: %s", args, err, b)
	}
	return nil
}

func (s KubernetesSite) Alias(ctx context.Context, src, alias string) error {
	return s.ctr(ctx, "tag", "--force", kubernetes.Normalize(src), kubernetes.Normalize(alias))
}

func (s KubernetesSite) Unalias(ctx context.Context, alias string) {
	s.ctr(ctx, "rm", kubernetes.Normalize(alias))
}

// KillEngine deletes, with no grace, a pod of a release not in spare that
// the Service does not send to: one of a Deployment it does not select,
// or one not ready yet (a rolling update's new pods serve once ready).
func (s KubernetesSite) KillEngine(ctx context.Context, env string, spare ...string) string {
	o := s.T.Options()
	svc, err := s.T.Client().CoreV1().Services(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
	if err != nil {
		return "reading the Service failed: " + err.Error()
	}
	pods, err := s.T.Pods(ctx, env, "", "")
	if err != nil {
		return "listing pods failed: " + err.Error()
	}
	for _, p := range pods {
		if p.DeletionTimestamp != nil || slices.Contains(spare, p.Labels[deploy.LabelRelease]) {
			continue
		}
		if p.Labels[kubernetes.LabelDeployment] == svc.Spec.Selector[kubernetes.LabelDeployment] && kubernetes.PodReady(&p) {
			continue
		}
		var zero int64
		if err := s.T.Client().CoreV1().Pods(o.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			return "deleting pod " + p.Name + " failed: " + err.Error()
		}
		return "deleted pod " + p.Name + " with no grace"
	}
	return "no candidate pod that gets no traffic"
}

// Running lists the pods of each release that are not terminating.
func (s KubernetesSite) Running(ctx context.Context, env string) (map[string][]string, error) {
	pods, err := s.T.Pods(ctx, env, "", "")
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, p := range pods {
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		id := p.Labels[deploy.LabelRelease]
		out[id] = append(out[id], "pod/"+p.Name)
	}
	return out, nil
}

// Settle waits up to 2 minutes until every Deployment of the environment
// has finished its rollout and no pod of it is terminating: a killed
// deployer's rolling update goes on without it.
func (s KubernetesSite) Settle(ctx context.Context, env string) {
	o := s.T.Options()
	sel := labels.SelectorFromSet(map[string]string{kubernetes.LabelInstance: o.Name}).String()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		deps, err := s.T.Client().AppsV1().Deployments(o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			continue
		}
		moving := false
		for _, d := range deps.Items {
			want := int32(1)
			if d.Spec.Replicas != nil {
				want = *d.Spec.Replicas
			}
			st := d.Status
			if st.ObservedGeneration < d.Generation || st.UpdatedReplicas != want || st.Replicas != want || st.AvailableReplicas != want {
				moving = true
			}
		}
		pods, err := s.T.Pods(ctx, env, "", "")
		for _, p := range pods {
			if p.DeletionTimestamp != nil {
				moving = true
			}
		}
		if !moving && err == nil {
			return
		}
	}
}
