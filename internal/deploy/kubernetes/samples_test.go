package kubernetes

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	restclient "k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"github.com/modelship/modelship/internal/measure"
)

// A pod whose container restarted keeps its UID but measures into a new
// ring, from seq 1: podSamples reads that ring from 0 rather than wait
// for it to pass the old cursor.
func TestPodSamplesStartOverWhenTheContainerRestarts(t *testing.T) {
	ring := measure.NewRing()
	cs := fake.NewSimpleClientset()
	cs.PrependProxyReactor("pods", func(a k8stesting.Action) (bool, restclient.ResponseWrapper, error) {
		since, err := strconv.ParseUint(a.(k8stesting.ProxyGetAction).GetParams()["since"], 10, 64)
		if err != nil {
			return true, proxied{err: err}, nil
		}
		b, _ := json.Marshal(ring.Since(since, measure.MaxSamplesPerAnswer))
		return true, proxied{body: string(b)}, nil
	})
	var out bytes.Buffer
	tg := &Target{cs: cs, opt: Options{Name: "llm", Namespace: "ns", Out: &out}, cursors: map[types.UID]podCursor{}}
	p := enginePod("llm-r2-a", "llm-r2", "r2", true, false)
	p.UID = "uid-a"
	for range 20 {
		ring.Add(measure.Sample{Status: 200})
	}
	if page, err := tg.podSamples(context.Background(), p); err != nil || len(page.Samples) != 20 || page.Next != 20 {
		t.Fatalf("first read: %+v, %v", page, err)
	}
	ring = measure.NewRing() // the container restarted
	for range 4 {
		ring.Add(measure.Sample{Status: 200})
	}
	page, err := tg.podSamples(context.Background(), p)
	if err != nil || len(page.Samples) != 4 || page.Next != 4 {
		t.Fatalf("after the restart: %+v, %v; want the new ring's 4", page, err)
	}
	if !strings.Contains(out.String(), "pod llm-r2-a restarted") {
		t.Fatalf("the restart was not logged: %q", out.String())
	}
	if c := tg.cursors[p.UID]; c.next != 4 || c.boot != page.Boot {
		t.Fatalf("cursor %+v after the restart", c)
	}
}
