package kubernetes_test

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/kubernetes"
	"github.com/modelship/modelship/internal/testenv"
)

// TestKeepReleases: with keep-releases 2, the third deploy prunes the
// first release: its record ConfigMap goes, and so does a Deployment of
// it left behind; the serving release and the previous one stay.
func TestKeepReleases(t *testing.T) {
	images(t)
	e := newEnv(t, 1)
	ctx := context.Background()
	deployKeep2 := func(img string) *deploy.Result {
		t.Helper()
		b := good
		b.Tag = img
		req := e.request(b, deploy.BlueGreen)
		req.KeepReleases = 2
		res, err := e.d.Deploy(ctx, req)
		if err != nil {
			t.Fatalf("deploy %s: %v", img, err)
		}
		return res
	}
	first := deployKeep2(good.Tag)
	second := deployKeep2(good2.Tag)
	// A Deployment of the first release left behind (a deploy that could
	// not clean up): pruning the release deletes it too.
	deps := e.target.Client().AppsV1().Deployments(e.ns)
	leftover := "llm-" + first.Release.ID
	if _, err := deps.Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: leftover, Labels: map[string]string{kubernetes.LabelInstance: "llm", deploy.LabelRelease: first.Release.ID}},
		Spec: appsv1.DeploymentSpec{Replicas: new(int32), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"leftover": "x"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"leftover": "x"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: good.Tag}}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	third := deployKeep2(good.Tag)

	h, err := deploy.History(ctx, e.target, e.name)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h[0].ID != second.Release.ID || h[0].Outcome != deploy.Superseded || h[1].ID != third.Release.ID || !h[1].Serving {
		t.Errorf("history after 3 deploys with keep-releases 2: %s", dump(h))
	}
	if _, err := e.target.Client().CoreV1().ConfigMaps(e.ns).Get(ctx, "llm-release-"+first.Release.ID, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("record of pruned release %s: %v, want it deleted", first.Release.ID, err)
	}
	if d, err := deps.Get(ctx, leftover, metav1.GetOptions{}); err == nil && d.DeletionTimestamp == nil {
		t.Errorf("deployment %s of pruned release %s is still there", leftover, first.Release.ID)
	}
	if !strings.Contains(e.log.String(), "pruned 1 old release: "+first.Release.ID) {
		t.Errorf("the log does not say release %s was pruned", first.Release.ID)
	}
	if v := testenv.GetVersion(t, e.clusterIP(t)); v.Image != good.Tag {
		t.Errorf("/version %+v, want image %s", v, good.Tag)
	}
}
