package kubernetes

import (
	"context"
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/modelship/modelship/internal/deploy"
)

// A step's percent becomes ceil(N×percent/100) replicas, at least one and
// at most all; a share the replicas cannot give is said, with the real one.
func TestCanaryReplicas(t *testing.T) {
	for _, tc := range []struct {
		n       int
		percent float64
		want    int
		note    string
	}{
		{4, 25, 1, ""},
		{4, 50, 2, ""},
		{4, 100, 4, ""},
		{4, 60, 3, "4 replica(s) cannot take exactly 60%: 3 of 4 (75%)"},
		{3, 5, 1, "3 replica(s) cannot take exactly 5%: 1 of 3 (33%)"},
		{10, 10, 1, ""},
		{1, 10, 1, "1 replica(s) cannot take exactly 10%: 1 of 1 (100%)"},
	} {
		k, note := CanaryReplicas(tc.n, tc.percent)
		if k != tc.want || note != tc.note {
			t.Errorf("%d replicas at %g%%: %d %q, want %d %q", tc.n, tc.percent, k, note, tc.want, tc.note)
		}
	}
}

// Replicas move one at a time, and no batch runs more pods than the
// environment's replicas (no surge), up for a step and down for an abort.
func TestBatchesNoSurge(t *testing.T) {
	up := Batches(4, 0, 2)
	if len(up) != 2 || up[0] != (Batch{Stable: 3, Canary: 1}) || up[1] != (Batch{Stable: 2, Canary: 2}) {
		t.Fatalf("0 → 2 of 4: %+v", up)
	}
	down := Batches(4, 3, 1)
	if len(down) != 2 || down[0] != (Batch{Stable: 2, Canary: 2}) || down[1] != (Batch{Stable: 3, Canary: 1}) {
		t.Fatalf("3 → 1 of 4: %+v", down)
	}
	if b := Batches(4, 2, 2); len(b) != 0 {
		t.Fatalf("no move: %+v", b)
	}
	for _, b := range Batches(4, 0, 4) {
		if b.Stable+b.Canary != 4 {
			t.Fatalf("batch %+v runs other than 4 replicas", b)
		}
	}
}

func fakeTarget() *Target {
	svc := ServiceFor(Options{Name: "llm", Namespace: "ns", ServicePort: 80}, "staging", "llm-r1", "r1")
	return &Target{cs: fake.NewSimpleClientset(svc), opt: Options{Name: "llm", Namespace: "ns", Replicas: 4}}
}

// promote, abort and resume travel as the Service's annotation while a
// canary splits; anything else, or no canary, is refused.
func TestControlOnTheService(t *testing.T) {
	ctx := context.Background()
	tg := fakeTarget()
	if a, err := tg.Control(ctx, "staging"); a != "" || err != nil {
		t.Fatalf("before any action: %q %v", a, err)
	}
	if err := tg.SetControl(ctx, "staging", "promote"); err == nil || !strings.Contains(err.Error(), "no canary is running on staging") {
		t.Fatalf("promote with no canary: %v", err)
	}
	if err := tg.patchService(ctx, map[string]any{"metadata": map[string]any{"annotations": map[string]any{AnnotationCanary: "llm-r2"}}}); err != nil {
		t.Fatal(err)
	}
	if err := tg.SetControl(ctx, "staging", "promote"); err != nil {
		t.Fatal(err)
	}
	if a, err := tg.Control(ctx, "staging"); a != "promote" || err != nil {
		t.Fatalf("after promote: %q %v", a, err)
	}
	if err := tg.SetControl(ctx, "staging", "skip"); err == nil || !strings.Contains(err.Error(), `"skip": expected promote, abort or resume`) {
		t.Fatalf("skip: %v", err)
	}
	empty := &Target{cs: fake.NewSimpleClientset(), opt: Options{Name: "llm", Namespace: "ns"}}
	if a, err := empty.Control(ctx, "staging"); a != "" || err != nil {
		t.Fatalf("no service yet: %q %v", a, err)
	}
}

// Without a mesh: no mirror and no sticky header, each said; stopping a
// mirror that never ran is nothing to do.
func TestNoMeshRefusals(t *testing.T) {
	ctx := context.Background()
	tg := fakeTarget()
	in := &deploy.Instance{ID: "llm-r2", Release: "r2"}
	if err := tg.SetShadow(ctx, "staging", nil, 0, nil); err != nil {
		t.Fatalf("stopping no mirror: %v", err)
	}
	if err := tg.SetShadow(ctx, "staging", in, 10, nil); !errors.Is(err, deploy.ErrSplitUnsupported) || !strings.Contains(err.Error(), "service mesh") {
		t.Fatalf("mirror: %v", err)
	}
	if err := tg.SetCanary(ctx, "staging", in, 25, "X-Conversation-Id"); err == nil || !strings.Contains(err.Error(), "sticky header (X-Conversation-Id) needs a service mesh") {
		t.Fatalf("sticky: %v", err)
	}
}

// Clearing a canary that never split leaves the Service on the serving
// release's Deployment, selected by Deployment.
func TestClearWithoutCanary(t *testing.T) {
	ctx := context.Background()
	tg := fakeTarget()
	if err := tg.SetCanary(ctx, "staging", nil, 0, ""); err != nil {
		t.Fatal(err)
	}
	svc, _ := tg.cs.CoreV1().Services("ns").Get(ctx, "llm", metav1.GetOptions{})
	if svc.Spec.Selector[LabelDeployment] != "llm-r1" || svc.Spec.Selector[deploy.LabelEnv] != "" {
		t.Fatalf("selector %v", svc.Spec.Selector)
	}
}
