package kubernetes_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/kubernetes"
)

// TestLeastPrivilege: with only what RBAC renders for a GPU-less
// environment (a Role in the namespace, no cluster-wide rights), a
// ServiceAccount's token deploys, deploys again, verifies through the API
// server, rolls back and reads history; it cannot list nodes.
func TestLeastPrivilege(t *testing.T) {
	images(t)
	e := newEnv(t, 1)
	ctx := context.Background()
	admin := e.target.Client()
	objs := kubernetes.RBAC(kubernetes.Options{Namespace: e.ns, Name: "llm"})
	for _, o := range objs {
		if err := create(ctx, admin, o); err != nil {
			t.Fatalf("applying the rendered RBAC: %v", err)
		}
	}
	if len(objs) != 3 {
		t.Errorf("RBAC without GPUs rendered %d objects, want ServiceAccount, Role, RoleBinding only", len(objs))
	}
	exp := int64(600)
	tok, err := admin.CoreV1().ServiceAccounts(e.ns).CreateToken(ctx, kubernetes.DeployerAccount,
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &rest.Config{Host: e.cfg.Host, BearerToken: tok.Status.Token, TLSClientConfig: rest.TLSClientConfig{CAData: e.cfg.CAData, CAFile: e.cfg.CAFile}}
	tg, err := kubernetes.New(kubernetes.Options{Config: cfg, Namespace: e.ns, Name: "llm", Replicas: 1, ServicePort: 80,
		ImagePullPolicy: corev1.PullNever, Out: e.log})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	if _, err := tg.Client().CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err == nil {
		t.Fatal("the deployer's token lists nodes: it has cluster-wide rights")
	}
	url, err := tg.ServiceURL()
	if err != nil {
		t.Fatal(err)
	}
	d := *e.d
	d.Target = tg
	req := e.request(good, deploy.BlueGreen)
	req.URL = url
	first, err := d.Deploy(ctx, req)
	if err != nil {
		t.Fatalf("first deploy with the least-privilege token: %v", err)
	}
	req = e.request(good2, deploy.Rolling)
	req.URL = url
	if _, err := d.Deploy(ctx, req); err != nil {
		t.Fatalf("second deploy with the least-privilege token: %v", err)
	}
	rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	rb := deploy.RollbackRequest{Request: deploy.Request{Env: e.name, URL: url, ServedName: "current", Engine: "sim", ReadyTimeout: 40 * time.Second}, To: first.Release.ID}
	if _, err := d.Rollback(rctx, rb); err != nil {
		t.Fatalf("rollback with the least-privilege token: %v", err)
	}
	hist, err := deploy.History(ctx, tg, e.name)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) == 0 || !hist[len(hist)-1].Serving {
		t.Errorf("history after the rollback: %s", dump(hist))
	}
	if strings.Contains(e.log.String(), "forbidden") && !strings.Contains(e.log.String(), "nodes cannot be listed") {
		t.Errorf("a request was forbidden:\n%s", e.log.String())
	}
}

// create applies one rendered object with the administrator's client.
func create(ctx context.Context, cs k8s.Interface, o runtime.Object) error {
	var err error
	switch o := o.(type) {
	case *corev1.ServiceAccount:
		_, err = cs.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.Role:
		_, err = cs.RbacV1().Roles(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.RoleBinding:
		_, err = cs.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.ClusterRole:
		_, err = cs.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.ClusterRoleBinding:
		_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
	default:
		err = fmt.Errorf("unexpected object %T", o)
	}
	return err
}
