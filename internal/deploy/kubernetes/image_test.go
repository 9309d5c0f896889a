package kubernetes

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/modelship/modelship/internal/deploy"
)

// A rollback right after a deploy asks for the previous release's content
// digest before any kubelet has reported that image in its node status (or
// when the status lists only a node's 50 newest images): the release's own
// record pins it, so the lookup must not depend on the nodes.
func TestImageFromReleaseRecord(t *testing.T) {
	const id = "sha256:0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f"
	tg := &Target{cs: fake.NewClientset(), opt: Options{Namespace: "ns", Name: "llm"}}
	rel := &deploy.Release{ID: "20260101-000000-0001", Env: "production", Image: "registry.example.com/team/llm:1.2", ImageID: id,
		DeployedAt: time.Now(), Outcome: deploy.Superseded}
	if err := tg.Record(context.Background(), rel); err != nil {
		t.Fatal(err)
	}
	info, err := tg.Image(context.Background(), id)
	if err != nil {
		t.Fatalf("Image(%s) with no node listing it: %v", id, err)
	}
	if want := "registry.example.com/team/llm@" + id; info.RepoDigest != want || info.ID != id {
		t.Errorf("Image(%s) = %+v, want RepoDigest %s", id, info, want)
	}
	if got := tg.imageFor(context.Background(), rel); got != "registry.example.com/team/llm@"+id {
		t.Errorf("the rolled-back release's container runs %s, want the pinned reference", got)
	}
	// A digest that no node and no record knows is still refused, clearly.
	other := "sha256:" + strings.Repeat("1", 64)
	if _, err := tg.Image(context.Background(), other); err == nil || !strings.Contains(err.Error(), "no release record") {
		t.Errorf("Image(unknown digest) = %v, want an error naming what was searched", err)
	}
}
