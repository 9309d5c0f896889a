package kubernetes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/serve"
	"github.com/modelship/modelship/internal/shadow"
	"github.com/modelship/modelship/serving"
)

// A sticky header and a shadow need no service mesh here: every pod's
// `modelship serve` applies a route (serve.Route) that the deployer sets
// through the API server's pod proxy, with the admin token of the serving
// Secret. With a sticky header, a pod forwards a request whose header
// value hashes to the other version to that version's direct Service;
// with a shadow, each serving pod mirrors a sample of what it answers to
// the new release's direct Service. The Service clients use is unchanged.

// LabelDirect marks a direct Service (value: its Deployment): one
// Deployment's pods only, the address one version's pods reach the
// other's at during a rollout.
const LabelDirect = "modelship.direct"

// rolloutRoute is what the pods of a running rollout are told: the
// sticky split and the shadow, the Deployments of each version, and which
// pods already have it.
type rolloutRoute struct {
	stable, canary string
	sticky         *serve.StickyRoute // Self is set per pod
	shadow         *serve.ShadowRoute // for the serving release's pods
	applied        map[string]bool    // by routeKey
}

// routeKey names one run of pod p's containers: a container that
// restarted lost its route (serve keeps it in memory) and gets it again.
func routeKey(p *corev1.Pod) string {
	n := int32(0)
	for _, c := range p.Status.ContainerStatuses {
		n += c.RestartCount
	}
	return string(p.UID) + "/" + strconv.Itoa(int(n))
}

// routeFor is pod p's route: the shadow on the serving release's pods,
// the sticky split on both versions' with Self its own.
func (r *rolloutRoute) routeFor(p *corev1.Pod) (serve.Route, bool) {
	dep := p.Labels[LabelDeployment]
	if dep != r.stable && dep != r.canary {
		return serve.Route{}, false
	}
	var out serve.Route
	if r.shadow != nil && dep == r.stable {
		out.Shadow = r.shadow
	}
	if r.sticky != nil {
		s := *r.sticky
		s.Self = serve.SelfStable
		if dep == r.canary {
			s.Self = serve.SelfCanary
		}
		out.Sticky = &s
	}
	return out, true
}

// DirectServiceName is Deployment dep's direct Service (LabelDirect).
func DirectServiceName(dep string) string {
	name := dep + "-direct"
	if len(name) > 63 { // a Service name is a DNS label
		h := sha256.Sum256([]byte(dep))
		name = dep[:63-len("-direct")-9] + "-" + hex.EncodeToString(h[:4]) + "-direct"
	}
	return name
}

// directService creates (or finds) Deployment dep's direct Service and
// returns its base URL, http://CLUSTER-IP:PORT: what one version's pods
// forward or mirror to, with no DNS needed.
func (t *Target) directService(ctx context.Context, env, dep string) (string, error) {
	name := DirectServiceName(dep)
	svcs := t.cs.CoreV1().Services(t.opt.Namespace)
	svc, err := svcs.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		want := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: t.opt.Namespace, Labels: map[string]string{
				LabelName: "modelship", LabelInstance: t.opt.Name, LabelManagedBy: "modelship", LabelDirect: dep, deploy.LabelEnv: env}},
			Spec: corev1.ServiceSpec{
				Type:     corev1.ServiceTypeClusterIP,
				Selector: selector(t.opt.Name, dep),
				Ports:    []corev1.ServicePort{{Name: "http", Port: ServePort, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}},
			},
		}
		svc, err = svcs.Create(ctx, want, metav1.CreateOptions{})
	}
	if err != nil {
		return "", t.wrap(err, "creating the direct service "+name+" of deployment "+dep)
	}
	if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return "", fmt.Errorf("kubernetes: direct service %s has no cluster IP", name)
	}
	return "http://" + net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(ServePort)), nil
}

// deleteDirectServices deletes the instance's direct Services.
func (t *Target) deleteDirectServices(ctx context.Context) error {
	svcs := t.cs.CoreV1().Services(t.opt.Namespace)
	list, err := svcs.List(ctx, metav1.ListOptions{LabelSelector: LabelInstance + "=" + t.opt.Name + "," + LabelDirect})
	if err != nil {
		return t.wrap(err, "listing the direct services")
	}
	for _, s := range list.Items {
		if err := svcs.Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return t.wrap(err, "deleting the direct service "+s.Name)
		}
	}
	return nil
}

// adminToken is the pods' admin token, from the serving Secret.
func (t *Target) adminToken(ctx context.Context) (string, error) {
	name := ServingSecretName(t.opt.Name)
	sec, err := t.cs.CoreV1().Secrets(t.opt.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", t.wrap(err, "reading the serving secret "+name+" for the pods' admin token")
	}
	tok := string(sec.Data[serving.EnvAdminToken])
	if tok == "" {
		return "", fmt.Errorf("kubernetes: the serving secret %s has no %s: redeploy the serving release with this modelship first", name, serving.EnvAdminToken)
	}
	return tok, nil
}

// routeProbeWait bounds how long a pod may refuse a route because an
// address in it does not lead to a release from there yet (a new direct
// Service that kube-proxy has not programmed on the pod's node).
const routeProbeWait = 30 * time.Second

// podRoute sets pod p's route (route nil: reads it) through the pod proxy,
// trying again while the pod answers 503 (serve's probe of the route's
// addresses, see serve.RoutePath) for up to wait: routeProbeWait for a
// ready pod; a pod that is not ready may not listen yet, and is tried
// again later anyway.
func (t *Target) podRoute(ctx context.Context, token string, p *corev1.Pod, route *serve.Route) (*serve.RouteState, error) {
	wait := time.Duration(0)
	if route != nil && PodReady(p) {
		wait = routeProbeWait
	}
	var body []byte
	if route != nil {
		var err error
		if body, err = json.Marshal(route); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(wait)
	for {
		req := t.cs.CoreV1().RESTClient().Get()
		if route != nil {
			req = t.cs.CoreV1().RESTClient().Post().Body(body).SetHeader("Content-Type", "application/json")
		}
		b, err := req.Namespace(t.opt.Namespace).Resource("pods").Name(p.Name+":"+strconv.Itoa(ServePort)).
			SubResource("proxy").Suffix(serve.RoutePath).SetHeader(serving.HeaderAdminToken, token).DoRaw(ctx)
		if apierrors.IsServiceUnavailable(err) && time.Now().Before(deadline) {
			if err := deploy.Sleep(ctx, 500*time.Millisecond); err != nil {
				return nil, err
			}
			continue
		}
		return t.routeAnswer(p, b, err)
	}
}

// routeAnswer reads pod p's answer to a route request.
func (t *Target) routeAnswer(p *corev1.Pod, b []byte, err error) (*serve.RouteState, error) {
	if err != nil {
		if apierrors.IsServiceUnavailable(err) {
			return nil, fmt.Errorf("pod %s refused the route (an address in it does not lead to a release from there): %w", p.Name, err)
		}
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("pod %s has no rollout endpoint (%s): its modelship serve is older than this one, or started without %s: %w",
				p.Name, serve.RoutePath, serving.EnvAdminToken, err)
		}
		return nil, t.wrap(err, "setting pod "+p.Name+"'s route")
	}
	var st serve.RouteState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("pod %s: answer of %s: %v", p.Name, serve.RoutePath, err)
	}
	return &st, nil
}

// applyRoutes gives every running pod of env's rollout that lacks it its
// route. A pod that is not ready yet may not listen yet: it is tried
// again on the next call; a ready one that refuses is an error.
func (t *Target) applyRoutes(ctx context.Context, env string) error {
	t.mu.Lock()
	r := t.route
	t.mu.Unlock()
	if r == nil {
		return nil
	}
	pods, err := t.Pods(ctx, env, "", "")
	if err != nil {
		return err
	}
	var token string
	for i := range pods {
		p := &pods[i]
		t.mu.Lock()
		done := r.applied[routeKey(p)]
		t.mu.Unlock()
		route, ok := r.routeFor(p)
		if done || !ok || p.Status.PodIP == "" || p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			continue
		}
		if token == "" {
			if token, err = t.adminToken(ctx); err != nil {
				return err
			}
		}
		if _, err := t.podRoute(ctx, token, p, &route); err != nil {
			if PodReady(p) {
				return err
			}
			continue
		}
		t.mu.Lock()
		r.applied[routeKey(p)] = true
		t.mu.Unlock()
	}
	return nil
}

// setRoute makes r the rollout's route and gives it to env's pods.
func (t *Target) setRoute(ctx context.Context, env string, r *rolloutRoute) error {
	r.applied = map[string]bool{}
	t.mu.Lock()
	t.route = r
	t.mu.Unlock()
	return t.applyRoutes(ctx, env)
}

// dropRoutes gives every running pod of env the empty route (each answers
// what it gets itself, and stops mirroring) and deletes the direct
// Services. A pod that does not answer is left: a pod restarts with no
// route. It returns the pods' final shadow reports, merged.
func (t *Target) dropRoutes(ctx context.Context, env string) (*shadow.Report, error) {
	t.mu.Lock()
	had := t.route != nil
	t.route = nil
	t.mu.Unlock()
	svcs, err := t.cs.CoreV1().Services(t.opt.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelInstance + "=" + t.opt.Name + "," + LabelDirect})
	if err != nil {
		return nil, t.wrap(err, "listing the direct services")
	}
	if !had && len(svcs.Items) == 0 {
		return nil, nil // no rollout set a route: nothing to undo
	}
	var reports []shadow.Report
	if token, err := t.adminToken(ctx); err == nil {
		pods, err := t.Pods(ctx, env, "", "")
		if err != nil {
			return nil, err
		}
		for i := range pods {
			p := &pods[i]
			if p.Status.PodIP == "" || p.Status.Phase != corev1.PodRunning {
				continue
			}
			st, err := t.podRoute(ctx, token, p, &serve.Route{})
			if err != nil {
				if PodReady(p) && p.DeletionTimestamp == nil {
					t.logf("pod %s kept its rollout route: %v", p.Name, err)
				}
				continue
			}
			if st.Shadow != nil {
				reports = append(reports, *st.Shadow)
			}
		}
	}
	if err := t.deleteDirectServices(ctx); err != nil {
		return nil, err
	}
	if len(reports) == 0 {
		return nil, nil
	}
	rep := shadow.Merge(reports...)
	return &rep, nil
}

// shadowReport merges the mirror reports of the serving release's pods.
func (t *Target) shadowReport(ctx context.Context, env string) (*shadow.Report, error) {
	t.mu.Lock()
	r := t.route
	t.mu.Unlock()
	if r == nil || r.shadow == nil {
		return nil, fmt.Errorf("kubernetes: no shadow is running on %s", env)
	}
	if err := t.applyRoutes(ctx, env); err != nil {
		return nil, err
	}
	token, err := t.adminToken(ctx)
	if err != nil {
		return nil, err
	}
	pods, err := t.Pods(ctx, env, r.stable, "")
	if err != nil {
		return nil, err
	}
	var reports []shadow.Report
	for i := range pods {
		p := &pods[i]
		if !PodReady(p) || p.DeletionTimestamp != nil {
			continue
		}
		st, err := t.podRoute(ctx, token, p, nil)
		if err != nil {
			return nil, err
		}
		if st.Shadow != nil {
			reports = append(reports, *st.Shadow)
		}
	}
	if len(reports) == 0 {
		return &shadow.Report{Upstream: r.shadow.Upstream, Percent: r.shadow.Percent}, nil
	}
	rep := shadow.Merge(reports...)
	return &rep, nil
}

// routesForSwitch prepares the pods' routes for a switch to Deployment
// dep: when dep is the running canary with a sticky split, every value
// goes to it (percent 100) while the serving release's pods are still
// there, so no conversation the new release answered goes back; a switch
// to any other Deployment (a rollback) drops the routes at once.
func (t *Target) routesForSwitch(ctx context.Context, env, dep string) error {
	t.mu.Lock()
	r := t.route
	t.mu.Unlock()
	if r == nil || r.sticky == nil || r.canary != dep {
		_, err := t.dropRoutes(ctx, env)
		return err
	}
	all := *r.sticky
	all.Percent = 100
	if err := t.setRoute(ctx, env, &rolloutRoute{stable: r.stable, canary: r.canary, sticky: &all}); err != nil {
		return fmt.Errorf("sending every %s to the promoted release: %w", all.Header, err)
	}
	return nil
}
