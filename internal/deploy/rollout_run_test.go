package deploy

import (
	"context"
	"strings"
	"testing"
	"time"
)

// limitedSplitTarget splits but cannot mirror or keep a sticky header, as
// Kubernetes without a mesh.
type limitedSplitTarget struct {
	noSplitTarget
	*fakeSplit
}

func (limitedSplitTarget) SplitLimits() (string, string) { return "no mirror here", "no sticky here" }

// A shadow step or a sticky header the splitter cannot run is refused
// before anything is touched, with the target's reason.
func TestCanaryRefusedBeyondTheSplittersLimits(t *testing.T) {
	d := &Deployer{Target: limitedSplitTarget{fakeSplit: &fakeSplit{}}}
	spec := &CanarySpec{Steps: []CanaryStep{{Percent: 10}, {Percent: 100}}}
	sticky := *spec
	sticky.StickyHeader = "X-Conversation-Id"
	for _, c := range []struct {
		req  Request
		want string
	}{
		{Request{Env: "prod", Image: "m:2", Strategy: Canary, Canary: spec, Shadow: &ShadowSpec{Percent: 5, Duration: time.Minute}},
			"a shadow step on target kubernetes context kind-test: no mirror here: deploy without shadow (nothing was changed)"},
		{Request{Env: "prod", Image: "m:2", Strategy: Canary, Canary: &sticky},
			"canary sticky header X-Conversation-Id on target kubernetes context kind-test: no sticky here"},
	} {
		if _, err := d.Deploy(context.Background(), c.req); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
}
