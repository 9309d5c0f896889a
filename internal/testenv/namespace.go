package testenv

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

var namespaceSeq atomic.Int32

// Namespace creates a namespace of its own for the test in the cluster of
// cfg (see Kubernetes), named prefix-PID-N, and deletes it, with all that
// the test left in it, when the test ends.
func Namespace(t testing.TB, cfg *rest.Config, prefix string) string {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("%s-%d-%d", prefix, os.Getpid()%100000, namespaceSeq.Add(1))
	if _, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}); err != nil {
			t.Errorf("cleanup: deleting namespace %s: %v", ns, err)
		}
	})
	return ns
}
