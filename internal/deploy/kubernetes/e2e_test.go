package kubernetes_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/kubernetes"
	"github.com/modelship/modelship/internal/testenv"
	"github.com/modelship/modelship/suite"
)

// env is one environment in its own namespace of the real cluster.
type env struct {
	name, ns string
	cfg      *rest.Config
	target   *kubernetes.Target
	d        *deploy.Deployer
	log      *testenv.SyncBuffer
	verify   string // the Service through the API server's proxy
}

func newEnv(t *testing.T, replicas int, opts ...func(*kubernetes.Options)) *env {
	t.Helper()
	cfg := testenv.Kubernetes(t)
	ns := testenv.Namespace(t, cfg, "modelship-test")
	log := &testenv.SyncBuffer{}
	o := kubernetes.Options{Config: cfg, Namespace: ns, Name: "llm", Replicas: replicas, ServicePort: 80,
		ImagePullPolicy: corev1.PullNever, Out: log}
	for _, f := range opts {
		f(&o)
	}
	tg, err := kubernetes.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	s, err := suite.Load(filepath.Join(testenv.RepoRoot(), "testdata/suites/validation_cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	url, err := tg.ServiceURL()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{name: "test", ns: ns, cfg: cfg, target: tg, log: log, verify: url}
	e.d = &deploy.Deployer{Target: tg, Verifier: &deploy.Checks{Suite: s, Timeout: 30 * time.Second},
		Out: log, ProgressEvery: 3 * time.Second, DrainTimeout: 90 * time.Second}
	t.Cleanup(func() {
		if t.Failed() || testing.Verbose() {
			t.Logf("deploy log:\n%s", e.log.String())
		}
	})
	return e
}

func (e *env) request(img testenv.Built, strategy string) deploy.Request {
	return deploy.Request{Env: e.name, Image: img.Tag, Engine: "sim", ServedName: "current", URL: e.verify,
		ReadyTimeout: 40 * time.Second, GitSHA: "0123abc", Strategy: strategy, ModelDigest: img.ModelDigest}
}

func (e *env) deploy(t *testing.T, img testenv.Built, strategy string) *deploy.Result {
	t.Helper()
	res, err := e.d.Deploy(context.Background(), e.request(img, strategy))
	if err != nil {
		t.Fatalf("deploy %s: %v", img.Tag, err)
	}
	return res
}

// clusterIP is the Service's address through kube-proxy, from this host:
// how clients inside the cluster reach it.
func (e *env) clusterIP(t *testing.T) string {
	t.Helper()
	svc, err := e.target.Client().CoreV1().Services(e.ns).Get(context.Background(), "llm", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + svc.Spec.ClusterIP + ":80"
	// kube-proxy programs a Service's address asynchronously: right after a
	// deploy (which verified through the API server, from the Endpoints) the
	// ClusterIP may still refuse connections for a moment.
	var last error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get(url + "/health")
		if err == nil {
			resp.Body.Close()
			return url
		}
		last = err
	}
	t.Fatalf("Service llm at %s never answered within 30s: %v", url, last)
	return ""
}

func dump(v any) string { b, _ := json.MarshalIndent(v, "", " "); return string(b) }

var (
	imgOnce                  sync.Once
	good, good2, regr, never testenv.Built
)

// images imports the test images into the cluster's containerd once: the
// good model (also as good:2, a new reference to deploy), the regressed
// model and one that never becomes ready.
func images(t *testing.T) {
	t.Helper()
	testenv.Kubernetes(t)
	imgOnce.Do(func() {
		good = testenv.ImportImage(t, testenv.ImageGood, "modelship-test/good:2")
		good2 = good
		good2.Tag = "modelship-test/good:2"
		b := testenv.ImportImages(t, testenv.ImageRegressed, testenv.ImageNeverReady)
		regr, never = b[0], b[1]
	})
	if good.Tag == "" {
		t.Fatal("test images were not imported")
	}
}

func TestRollingUpdateUnderLoad(t *testing.T) {
	images(t)
	e := newEnv(t, 2)
	first := e.deploy(t, good, "")
	if first.Plan.Strategy != deploy.Rolling || !strings.Contains(first.Plan.Why, "maxSurge 1, maxUnavailable 0") {
		t.Errorf("plan %s: %s, want rolling with maxSurge 1 (pods use no GPU)", first.Plan.Strategy, first.Plan.Why)
	}
	url := e.clusterIP(t)
	if v := testenv.GetVersion(t, url); v.Image != good.Tag || v.Digest != good.ModelDigest {
		t.Fatalf("after the first deploy /version = %+v, want image %s digest %s", v, good.Tag, good.ModelDigest)
	}
	var res *deploy.Result
	load := testenv.UnderLoad(t, url, 4, 50, "rolling update of 2 replicas (through the ClusterIP)", func() string {
		res = e.deploy(t, good2, deploy.Rolling)
		return "rollout " + timings(res, "old pods terminated")
	})
	if load.During < 100 {
		t.Errorf("only %d requests during the deploy, want at least 100", load.During)
	}
	// The old pods were drained by the exec pre-stop hook (`modelship
	// drain` over serve's admin socket), not past it.
	evs, err := e.target.Client().CoreV1().Events(e.ns).List(context.Background(), metav1.ListOptions{FieldSelector: "reason=FailedPreStopHook"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs.Items {
		t.Errorf("pre-stop hook failed on %s: %s", ev.InvolvedObject.Name, ev.Message)
	}
	if v := testenv.GetVersion(t, url); v.Image != good2.Tag || v.Digest != good.ModelDigest {
		t.Errorf("/version %+v, want image %s", v, good2.Tag)
	}
	// One Deployment, its template the new release, annotated with its facts.
	d, err := e.target.Client().AppsV1().Deployments(e.ns).Get(context.Background(), "llm", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := d.Spec.Template.Annotations
	if a[deploy.LabelRelease] != res.Release.ID || a[deploy.LabelModelDigest] != good.ModelDigest || a[deploy.LabelImage] != good2.Tag ||
		a[deploy.LabelGitSHA] != "0123abc" || a[deploy.LabelDeployedAt] == "" {
		t.Errorf("pod template annotations %v", a)
	}
	hist, err := deploy.History(context.Background(), e.target, e.name)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].Outcome != deploy.Superseded || hist[1].Outcome != deploy.Live || !hist[1].Serving || hist[1].ModelDigest != good.ModelDigest {
		t.Errorf("history: %s", dump(hist))
	}
}

// timings is the figures of a deploy under load: ready, switched and
// drained (drained says what that was) after, and verify.
func timings(res *deploy.Result, drained string) string {
	return fmt.Sprintf("ready after %s, switched %s after, %s %s after, verify %s", res.ReadyAfter.Round(time.Millisecond),
		res.SwitchAfterReady.Round(time.Millisecond), drained, res.DrainedAfter.Round(time.Millisecond), res.Verify.Round(time.Millisecond))
}

func TestRegressedModelRollsBack(t *testing.T) {
	images(t)
	e := newEnv(t, 1)
	first := e.deploy(t, good, deploy.Rolling)
	url := e.clusterIP(t)
	var err error
	testenv.UnderLoad(t, url, 2, 20, "regressed rolling deploy", func() string {
		_, err = e.d.Deploy(context.Background(), e.request(regr, deploy.Rolling))
		return ""
	})
	testenv.RolledBack(t, err, first.Release.ID)
	if v := testenv.GetVersion(t, url); v.Digest != good.ModelDigest || v.Image != good.Tag {
		t.Errorf("/version through the Service after the rollback = %+v, want the previous digest %s", v, good.ModelDigest)
	}
	hist, _ := deploy.History(context.Background(), e.target, e.name)
	if len(hist) != 2 || !hist[0].Serving || hist[1].Outcome != deploy.Failed || !strings.Contains(hist[1].Reason, "verify failed") {
		t.Errorf("history: %s", dump(hist))
	}
}

// A failed rolling deploy after a blue-green one (the strategy changed
// between deploys) leaves only the blue-green release running: the
// rolling Deployment's previous revision is not what serves, so it is not
// brought back beside it.
func TestRollingAfterBlueGreenRollsBack(t *testing.T) {
	images(t)
	e := newEnv(t, 1)
	e.deploy(t, good, deploy.Rolling)
	e.deploy(t, good2, deploy.Rolling) // deployment/llm has two revisions
	serving := e.deploy(t, good, deploy.BlueGreen)
	_, err := e.d.Deploy(context.Background(), e.request(regr, deploy.Rolling))
	if err == nil {
		t.Fatal("the regressed release went live")
	}
	url := e.clusterIP(t)
	if v := testenv.GetVersion(t, url); v.Image != good.Tag {
		t.Errorf("/version %+v after the rollback, want %s", v, good.Tag)
	}
	var beside []string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		pods, err := e.target.Client().CoreV1().Pods(e.ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		beside = nil
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && p.Labels[deploy.LabelRelease] != serving.Release.ID {
				beside = append(beside, p.Name+" (release "+p.Labels[deploy.LabelRelease]+")")
			}
		}
		if len(beside) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("60s after the rollback, pods run beside the serving release %s: %v", serving.Release.ID, beside)
		}
	}
}

func TestStalledRolloutReported(t *testing.T) {
	images(t)
	e := newEnv(t, 1)
	first := e.deploy(t, good, deploy.Rolling)
	url := e.clusterIP(t)
	req := e.request(never, deploy.Rolling)
	req.ReadyTimeout = 20 * time.Second // progress deadline 18 s
	var err error
	// No request may fail while the rollout stalls.
	testenv.UnderLoad(t, url, 2, 20, "never-ready rolling deploy", func() string {
		_, err = e.d.Deploy(context.Background(), req)
		return ""
	})
	if err == nil {
		t.Fatal("deploy of a release that never becomes ready succeeded")
	}
	msg := err.Error()
	for _, want := range []string{"ProgressDeadlineExceeded", "probe failed", "statuscode: 503", "previous release " + first.Release.ID + " kept serving"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not say %q:\n%s", want, msg)
		}
	}
	if v := testenv.GetVersion(t, url); v.Digest != good.ModelDigest || v.Image != good.Tag {
		t.Errorf("/version after the stall = %+v, want the previous release", v)
	}
	d, err := e.target.Client().AppsV1().Deployments(e.ns).Get(context.Background(), "llm", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Spec.Template.Labels[deploy.LabelRelease]; got != first.Release.ID {
		t.Errorf("deployment template is release %s after the stall, want it back on %s", got, first.Release.ID)
	}
}

func TestBlueGreenSwitchUnderLoad(t *testing.T) {
	images(t)
	e := newEnv(t, 1)
	first := e.deploy(t, good, deploy.BlueGreen)
	url := e.clusterIP(t)
	var res *deploy.Result
	testenv.UnderLoad(t, url, 4, 50, "blue-green switch (through the ClusterIP)", func() string {
		res = e.deploy(t, good2, deploy.BlueGreen)
		return timings(res, "old pods out of the endpoints")
	})
	svc, err := e.target.Client().CoreV1().Services(e.ns).Get(context.Background(), "llm", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantDep := "llm-" + res.Release.ID
	if svc.Spec.Selector[kubernetes.LabelDeployment] != wantDep || svc.Annotations[kubernetes.AnnotationServing] != res.Release.ID {
		t.Errorf("service selector %v annotations %v, want deployment %s", svc.Spec.Selector, svc.Annotations, wantDep)
	}
	if _, err := e.target.Client().AppsV1().Deployments(e.ns).Get(context.Background(), "llm-"+first.Release.ID, metav1.GetOptions{}); err == nil {
		t.Errorf("the previous release's Deployment is still there after verify passed")
	}
	if v := testenv.GetVersion(t, url); v.Image != good2.Tag {
		t.Errorf("/version %+v, want image %s", v, good2.Tag)
	}
}

// TestRenderAcceptedByServer sends render's YAML, read back, to the API
// server as a server-side dry run: the manifests a GitOps user commits
// pass the cluster's validation.
func TestRenderAcceptedByServer(t *testing.T) {
	e := newEnv(t, 2)
	for _, strategy := range []string{deploy.Rolling, deploy.BlueGreen} {
		o := e.target.Options()
		o.GPUs = 1
		o.NodeSelector = map[string]string{"nvidia.com/gpu.present": "true"}
		o.Tolerations = []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
		w := kubernetes.Render(o, kubernetes.Manifest{Env: e.name, Image: "registry.example.com/llm:1", GitSHA: "0123abc", ServedName: "current",
			ModelDigest: "sha256:" + strings.Repeat("ab", 32), Strategy: strategy, WeightBytes: 8 << 30, DeployedBy: "ci@test"}, 0x3fa9)
		y, err := kubernetes.YAML(w.Objects())
		if err != nil {
			t.Fatal(err)
		}
		docs := strings.Split(string(y), "\n---\n")
		if len(docs) != 2 {
			t.Fatalf("%d documents, want 2:\n%s", len(docs), y)
		}
		var d appsv1.Deployment
		var s corev1.Service
		if err := yaml.UnmarshalStrict([]byte(docs[0]), &d); err != nil {
			t.Fatalf("deployment YAML: %v", err)
		}
		if err := yaml.UnmarshalStrict([]byte(docs[1]), &s); err != nil {
			t.Fatalf("service YAML: %v", err)
		}
		// 60 s + 30 s per GiB of 8 GiB = 300 s of startup probe.
		sp := d.Spec.Template.Spec.Containers[0].StartupProbe
		if got := sp.PeriodSeconds * sp.FailureThreshold; got != 300 {
			t.Errorf("startup probe allows %d s, want 300 (the load budget of 8 GiB)", got)
		}
		dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"}
		if _, err := e.target.Client().AppsV1().Deployments(e.ns).Create(context.Background(), &d, dry); err != nil {
			t.Errorf("%s: server-side dry run rejected the Deployment: %v", strategy, err)
		}
		if _, err := e.target.Client().CoreV1().Services(e.ns).Create(context.Background(), &s, dry); err != nil {
			t.Errorf("%s: server-side dry run rejected the Service: %v", strategy, err)
		}
	}
}

// TestLockIsExclusive: a second deploy to the environment is refused while
// the Lease is held and renewed, naming the holder; once the holder stops
// renewing, the lock is taken over within its lease (whoever the holder
// was), the old holder learns it lost it, and its release leaves the new
// holder's lock alone. unlock refuses a lock whose holder renews.
func TestLockIsExclusive(t *testing.T) {
	e := newEnv(t, 1)
	ctx := context.Background()
	h := deploy.Holder{Who: "alice@ci", Host: "3f2a9c1d7e6b", PID: 1, Since: time.Now().UTC(), What: "deploy x:1", TTL: 3 * time.Second}
	lease, err := e.target.Lock(ctx, e.name, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	bob := deploy.Holder{Who: "bob@ci", Host: "elsewhere", PID: 7, Since: time.Now().UTC(), TTL: 3 * time.Second}
	for i := 0; i < 4; i++ {
		time.Sleep(time.Second)
		if err := lease.Renew(ctx); err != nil {
			t.Fatalf("renew %d: %v", i, err)
		}
	}
	_, err = e.target.Lock(ctx, e.name, bob, nil)
	var le *deploy.LockedError
	if !errors.As(err, &le) || le.Holder.Who != "alice@ci" || le.Holder.What != "deploy x:1" || !strings.Contains(err.Error(), "renewed") {
		t.Fatalf("second lock while the first is renewed: %v, want LockedError naming alice@ci", err)
	}
	if _, err := e.target.BreakLock(ctx, e.name); !errors.As(err, &le) {
		t.Fatalf("unlock while the holder renews: %v, want refused", err)
	}
	var bobs deploy.Lease
	testenv.Eventually(t, 15*time.Second, "the unrenewed lease to be taken over", func() bool {
		bobs, err = e.target.Lock(ctx, e.name, bob, nil)
		return err == nil
	})
	if err := lease.Renew(ctx); !errors.Is(err, deploy.ErrLockLost) {
		t.Errorf("alice renewing after the takeover: %v, want ErrLockLost", err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Errorf("alice releasing after the takeover: %v", err)
	}
	if _, err := e.target.Lock(ctx, e.name, h, nil); !errors.As(err, &le) || le.Holder.Who != "bob@ci" {
		t.Errorf("alice's release removed bob's lock: %v", err)
	}
	if err := bobs.Release(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := e.target.Lock(ctx, e.name, h, nil)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	again.Release(ctx)
}
