package campaign_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/modelship/modelship/internal/campaign"
	"github.com/modelship/modelship/internal/deploy"
)

// fakeDeployer is a stand-in for the modelship binary: a deploy of a
// release named "regressed" is rolled back (unless $FAKE_BROKEN lets it
// go live), a config named refused.yaml is refused before any plan, and
// any other release goes live: the image it serves is written to
// $FAKE_STATE.
const fakeDeployer = `#!/bin/sh
img=; cfg=
while [ $# -gt 0 ]; do
	case "$1" in --image) img=$2; shift ;; --config) cfg=$2; shift ;; esac
	shift
done
case "$cfg" in *refused.yaml) echo "modelship deploy: port 8000 is taken"; exit 2 ;; esac
echo "plan: blue-green"
case "$img" in *regressed*) [ -z "$FAKE_BROKEN" ] && { echo "verify failed: traffic switched back to the previous release"; exit 1; } ;; esac
echo "$img" > "$FAKE_STATE"
echo "release live"
`

// fakeSite is a site whose history is the one release the fake deployer
// last made live.
type fakeSite struct {
	state string
}

// fakeTarget is the site's target: its history only.
type fakeTarget struct {
	deploy.Target
	site *fakeSite
}

func (t fakeTarget) Releases(context.Context, string) ([]*deploy.Release, error) {
	img := t.site.serving()
	return []*deploy.Release{{ID: "r-" + img, Image: img, Outcome: deploy.Live, Serving: true}}, nil
}

func (s *fakeSite) serving() string {
	b, _ := os.ReadFile(s.state)
	return strings.TrimSpace(string(b))
}

func (s *fakeSite) Target() deploy.Target                                { return fakeTarget{site: s} }
func (s *fakeSite) Alias(context.Context, string, string) error          { return nil }
func (s *fakeSite) Unalias(context.Context, string)                      {}
func (s *fakeSite) KillEngine(context.Context, string, ...string) string { return "none" }
func (s *fakeSite) Settle(context.Context, string)                       {}
func (s *fakeSite) Running(context.Context, string) (map[string][]string, error) {
	return map[string][]string{"r-" + s.serving(): {"engine"}}, nil
}

// runFake runs a campaign of deploys on the fake site, through an endpoint
// that answers completions and /version (the image the site serves).
func runFake(t *testing.T, deploys int, broken bool) (*campaign.Figures, string) {
	dir := t.TempDir()
	bin := dir + "/modelship"
	site := &fakeSite{state: dir + "/serving"}
	if err := os.WriteFile(bin, []byte(fakeDeployer), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(site.state, []byte("modelship-test/good:1\n"), 0o644)
	t.Setenv("FAKE_STATE", site.state)
	if broken {
		t.Setenv("FAKE_BROKEN", "1")
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/version" {
			fmt.Fprintf(w, `{"image":%q}`, site.serving())
			return
		}
		w.Write([]byte(`{"choices":[{"text":"Paris"}]}`))
	}))
	defer ts.Close()
	var log strings.Builder
	fig, err := campaign.Run(context.Background(), campaign.Config{
		Binary: bin, Config: dir + "/modelship.yaml", Env: "fake", URL: ts.URL, Ledger: dir + "/ledger.jsonl",
		Good: "modelship-test/good:1", Regressed: "modelship-test/regressed:1", Slow: "modelship-test/slow:1",
		Site: site, SiteFaults: []campaign.SiteFault{{Name: "port-taken", Config: dir + "/refused.yaml"}},
		// The faults that need no timing: the fake deployer is done
		// before any timed fault's moment.
		Only:    []string{"none", "ledger-full", "slow-engine", "port-taken"},
		Deploys: deploys, Seed: 7, Log: &log,
		LockTTL: 1, // the wait for the lock to be free at the end: a second
	})
	if err != nil {
		t.Fatal(err)
	}
	return fig, log.String()
}

// The campaign deploys good and regressed releases alternately, counts each
// deploy's fault and outcome and the load loop's requests, and finds
// nothing wrong with a deployer that keeps the promise.
func TestRunCounts(t *testing.T) {
	fig, log := runFake(t, 6, false)
	outcomes := 0
	for _, n := range fig.Outcomes {
		outcomes += n
	}
	faults := 0
	for _, n := range fig.Faults {
		faults += n
	}
	if !fig.OK() || fig.Deploys != 6 || outcomes != 6 || faults != 6 || fig.Requests == 0 || fig.Outcomes["live"] == 0 {
		t.Errorf("figures %s, problems %q", fig, fig.Problems)
	}
	if fig.Outcomes["rolled-back"] == 0 || strings.Count(log, "\n") != 6 || !strings.Contains(log, "deploy 1: regressed modelship-test/regressed:campaign-c1") {
		t.Errorf("no regressed deploy rolled back, or the log is not one line a deploy:\n%s", log)
	}
}

// A deployer that lets a regressed release go live breaks the promise: the
// campaign says which deploy did.
func TestRunFindsARegressedReleaseLive(t *testing.T) {
	fig, _ := runFake(t, 2, true)
	if fig.OK() || len(fig.Problems) == 0 || !strings.Contains(strings.Join(fig.Problems, "\n"), "deploy 1: the regressed release went live") {
		t.Errorf("figures %s, problems %q; want deploy 1's regressed release named", fig, fig.Problems)
	}
}
