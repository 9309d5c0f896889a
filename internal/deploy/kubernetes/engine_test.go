package kubernetes

import (
	"context"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	restclient "k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"github.com/modelship/modelship/internal/analysis"
	"github.com/modelship/modelship/internal/deploy"
)

// proxied is what the fake pod proxy answers for one pod's GET /metrics.
type proxied struct {
	body string
	err  error
}

func (p proxied) DoRaw(context.Context) ([]byte, error) { return []byte(p.body), p.err }
func (p proxied) Stream(context.Context) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(p.body)), p.err
}

// enginePod is a pod of Deployment dep (release) of the target "llm".
func enginePod(name, dep, release string, ready, stopping bool) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns",
		Labels: map[string]string{LabelInstance: "llm", LabelDeployment: dep, deploy.LabelRelease: release, deploy.LabelEnv: "staging"}}}
	p.Status.Phase = corev1.PodRunning
	p.Status.PodIP = "10.1.0.7"
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}
	if stopping {
		p.DeletionTimestamp = &metav1.Time{}
		p.Finalizers = []string{"test/keep"}
	}
	return p
}

// engineTarget is a target whose pod proxy answers each pod's /metrics
// from answers (a pod not in it: 503, as the API server answers for a pod
// whose port refuses), recording the pods asked in *asked.
func engineTarget(answers map[string]proxied, asked *[]string, pods ...runtime.Object) *Target {
	cs := fake.NewSimpleClientset(pods...)
	cs.PrependProxyReactor("pods", func(a k8stesting.Action) (bool, restclient.ResponseWrapper, error) {
		g := a.(k8stesting.ProxyGetAction)
		*asked = append(*asked, g.GetName()+" "+g.GetScheme()+":"+g.GetPort()+g.GetPath())
		if ans, ok := answers[g.GetName()]; ok {
			return true, ans, nil
		}
		return true, proxied{err: apierrors.NewServiceUnavailable("error trying to reach service: dial tcp 10.1.0.7:8000: connect: connection refused")}, nil
	})
	return &Target{cs: cs, host: "https://k8s.test:6443", opt: Options{Name: "llm", Namespace: "ns", Replicas: 4}}
}

const (
	// podA exports both KV-cache names: the current one (0.30) is read.
	podA = "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name=\"m\"} 2\n" +
		"# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{model_name=\"m\"} 0.30\n" +
		"# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc{model_name=\"m\"} 0.9\n"
	// podB runs an older vLLM: only the older name.
	podB = "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name=\"m\"} 1\n" +
		"# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc{model_name=\"m\"} 0.85\n"
	// busy is the serving release's pod: never part of the canary's figure.
	busy = "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting 50\n" +
		"# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc 0.99\n"
)

// A release's figure is its ready pods': the queue summed (2+1), the
// KV-cache usage the fullest pod's (0.85, by the older name, over 0.30 by
// the current one). A pod loading or stopping, and the other release's
// pods, are not asked; each pod is asked on the serve port at /metrics.
func TestEngineMetricsOfReadyPods(t *testing.T) {
	var asked []string
	tg := engineTarget(map[string]proxied{"llm-r2-a": {body: podA}, "llm-r2-b": {body: podB}, "llm-r1-a": {body: busy}}, &asked,
		enginePod("llm-r2-a", "llm-r2", "r2", true, false),
		enginePod("llm-r2-b", "llm-r2", "r2", true, false),
		enginePod("llm-r2-loading", "llm-r2", "r2", false, false),
		enginePod("llm-r2-stopping", "llm-r2", "r2", true, true),
		enginePod("llm-r1-a", "llm-r1", "r1", true, false))
	e, err := tg.EngineMetrics(context.Background(), &deploy.Instance{ID: "llm-r2", Release: "r2", Env: "staging"})
	if err != nil || e == nil || e.RequestsWaiting != 3 || e.KVCacheUsage != 0.85 {
		t.Fatalf("release r2: %+v %v, want 3 waiting, KV cache 0.85", e, err)
	}
	port := strconv.Itoa(ServePort)
	want := "llm-r2-a http:" + port + "/metrics,llm-r2-b http:" + port + "/metrics"
	if got := strings.Join(asked, ","); got != want {
		t.Fatalf("pods asked: %s, want %s", got, want)
	}
}

// A ready pod that cannot be read fails the read, naming the pod and
// what failed: the proxy's refusal, or an answer that is not metrics.
func TestEngineMetricsPodFails(t *testing.T) {
	in := &deploy.Instance{ID: "llm-r2", Release: "r2", Env: "staging"}
	for _, c := range []struct {
		name    string
		answers map[string]proxied
		want    []string
	}{
		{"refused", map[string]proxied{"llm-r2-a": {body: podA}},
			[]string{"release r2 of environment staging: ", "pod llm-r2-b: GET /metrics through the pod proxy", "connection refused"}},
		{"not metrics", map[string]proxied{"llm-r2-a": {body: podA}, "llm-r2-b": {body: "<html>upstream connect error</html>\n"}},
			[]string{"release r2 of environment staging: pod llm-r2-b: GET /metrics: engine metrics: "}},
	} {
		var asked []string
		tg := engineTarget(c.answers, &asked,
			enginePod("llm-r2-a", "llm-r2", "r2", true, false), enginePod("llm-r2-b", "llm-r2", "r2", true, false))
		e, err := tg.EngineMetrics(context.Background(), in)
		if e != nil || err == nil {
			t.Fatalf("%s: %+v %v, want an error", c.name, e, err)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", c.name, err, w)
			}
		}
	}
}

// With no ready pod (all loading, or none yet) there is nothing to read:
// nil, nil, so the checks are skipped rather than failed.
func TestEngineMetricsNoReadyPod(t *testing.T) {
	var asked []string
	tg := engineTarget(nil, &asked, enginePod("llm-r2-loading", "llm-r2", "r2", false, false))
	for _, release := range []string{"r2", "r3"} {
		in := &deploy.Instance{ID: "llm-" + release, Release: release, Env: "staging"}
		if e, err := tg.EngineMetrics(context.Background(), in); e != nil || err != nil {
			t.Errorf("release %s: %+v %v, want nil, nil", release, e, err)
		}
	}
	if len(asked) != 0 {
		t.Errorf("asked %v, want no pod", asked)
	}
}

// The fullest pod's cache is the release's, where a mean would hide it:
// one pod at 0.99 beside three at 0.20 is 0.99, not 0.40.
func TestCombineEnginesFullestCache(t *testing.T) {
	e := combineEngines([]*analysis.Engine{{KVCacheUsage: 0.2, RequestsWaiting: 1}, {KVCacheUsage: 0.99, RequestsWaiting: 7},
		{KVCacheUsage: 0.2}, {KVCacheUsage: 0.2, RequestsWaiting: 1}})
	if e == nil || e.KVCacheUsage != 0.99 || e.RequestsWaiting != 9 {
		t.Fatalf("%+v, want KV cache 0.99 and 9 waiting", e)
	}
	if e := combineEngines(nil); e != nil {
		t.Fatalf("no pods: %+v, want nil", e)
	}
}

// The deployer's least privilege lets it GET through the pods' proxy (a
// canary's measurements and engine metrics) and POST (a rollout's route:
// a sticky split, a shadow), and do nothing else there.
func TestRBACReadsThroughThePodProxy(t *testing.T) {
	for _, o := range RBAC(Options{Namespace: "inference", Name: "llm"}) {
		role, ok := o.(*rbacv1.Role)
		if !ok {
			continue
		}
		for _, r := range role.Rules {
			if slices.Contains(r.Resources, "pods/proxy") {
				if !slices.Equal(r.Verbs, []string{"get", "create"}) {
					t.Fatalf("pods/proxy verbs %v, want get and create only", r.Verbs)
				}
				return
			}
		}
		t.Fatalf("the Role grants nothing on pods/proxy: %+v", role.Rules)
	}
	t.Fatal("RBAC rendered no Role")
}
