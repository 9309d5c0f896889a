package kubernetes

import (
	"context"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/serve"
	"github.com/modelship/modelship/serving"
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

// Stopping a mirror that never ran is nothing to do, and creates nothing.
func TestStopShadowThatNeverRan(t *testing.T) {
	ctx := context.Background()
	tg := fakeTarget()
	if err := tg.SetShadow(ctx, "staging", nil, 0, nil); err != nil {
		t.Fatalf("stopping no mirror: %v", err)
	}
	if _, err := tg.ShadowReport(ctx, "staging"); err == nil || !strings.Contains(err.Error(), "no shadow is running on staging") {
		t.Fatalf("report of no mirror: %v", err)
	}
	svcs, _ := tg.cs.CoreV1().Services("ns").List(ctx, metav1.ListOptions{})
	if len(svcs.Items) != 1 {
		t.Fatalf("services after stopping nothing: %d, want the environment's only", len(svcs.Items))
	}
}

// Each pod gets its version's route: the serving release's pods mirror
// and both versions' pods know which side they are for the sticky split;
// a pod of neither gets none.
func TestRouteForEachPod(t *testing.T) {
	r := &rolloutRoute{stable: "llm", canary: "llm-r2",
		sticky: &serve.StickyRoute{Header: "X-Conversation-Id", Percent: 25, Stable: "http://10.0.0.1:8000", Canary: "http://10.0.0.2:8000"},
		shadow: &serve.ShadowRoute{Upstream: "http://10.0.0.2:8000", Percent: 10}}
	pod := func(dep string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{LabelDeployment: dep}}}
	}
	st, ok := r.routeFor(pod("llm"))
	if !ok || st.Shadow == nil || st.Sticky == nil || st.Sticky.Self != serve.SelfStable {
		t.Fatalf("serving pod's route %+v %v, want the shadow and the sticky split as stable", st, ok)
	}
	cn, ok := r.routeFor(pod("llm-r2"))
	if !ok || cn.Shadow != nil || cn.Sticky == nil || cn.Sticky.Self != serve.SelfCanary {
		t.Fatalf("new release's pod's route %+v %v, want the sticky split as canary and no mirror", cn, ok)
	}
	if r.sticky.Self != "" {
		t.Fatalf("routeFor changed the shared split: %+v", r.sticky)
	}
	if _, ok := r.routeFor(pod("llm-old")); ok {
		t.Fatal("a pod of neither version got a route")
	}
}

// A direct Service's name is a DNS label (at most 63 characters), and
// distinct Deployments get distinct names.
func TestDirectServiceName(t *testing.T) {
	if got := DirectServiceName("llm-r2"); got != "llm-r2-direct" {
		t.Fatalf("short name %q", got)
	}
	long := strings.Repeat("a", 60) + "-20261207-201500"
	a, b := DirectServiceName(long+"-x1"), DirectServiceName(long+"-x2")
	if len(a) > 63 || len(b) > 63 || a == b || !strings.HasSuffix(a, "-direct") {
		t.Fatalf("long names %q (%d) and %q (%d): want distinct names of at most 63", a, len(a), b, len(b))
	}
}

// The admin token is made once and kept across deploys, whatever other
// serving secrets come and go, so the serving release's pods and a new
// release's accept the same one.
func TestServingSecretKeepsTheAdminToken(t *testing.T) {
	ctx := context.Background()
	tg := fakeTarget()
	w := &Workload{}
	if err := tg.servingSecret(ctx, w, nil); err != nil {
		t.Fatal(err)
	}
	first, err := tg.adminToken(ctx)
	if err != nil || len(first) != 64 {
		t.Fatalf("admin token %q, %v: want 64 hex digits", first, err)
	}
	if !slices.Equal(w.SecretEnv, []string{serving.EnvAdminToken}) {
		t.Fatalf("secret env %v, want the admin token only", w.SecretEnv)
	}
	if err := tg.servingSecret(ctx, w, map[string]string{serving.EnvAPIKey: "k"}); err != nil {
		t.Fatal(err)
	}
	if again, _ := tg.adminToken(ctx); again != first {
		t.Fatal("a second deploy changed the admin token")
	}
	if !slices.Equal(w.SecretEnv, []string{serving.EnvAdminToken, serving.EnvAPIKey}) {
		t.Fatalf("secret env %v, want the admin token and the API key", w.SecretEnv)
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

// A pod whose container restarted has lost its route: its key changes, so
// the rollout gives it the route again.
func TestRouteKeyFollowsRestarts(t *testing.T) {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "u1"}, Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{RestartCount: 0}}}}
	before := routeKey(p)
	p.Status.ContainerStatuses[0].RestartCount = 1
	if after := routeKey(p); after == before {
		t.Fatalf("route key %q unchanged after a container restart", after)
	}
}
