package campaign_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/campaign"
	"github.com/modelship/modelship/internal/deploy/docker"
	"github.com/modelship/modelship/internal/testenv"
)

var (
	deploys = flag.Int("campaign.deploys", 6, "faulted deploys to run (the long campaign: 200)")
	seed    = flag.Uint64("campaign.seed", 0, "fault sequence seed (0: from the clock; the log says which)")
	report  = flag.String("campaign.report", "", "write the figures as JSON to this `file`")
)

// TestCampaign runs the fault campaign on the real Docker engine: deploys
// of good and regressed releases alternating under a constant load loop,
// each with one fault at a random moment, and asserts the promise: no
// request lost, something always serving, /version agreeing with history,
// no release left running beside the serving one, the lock free. The short
// version runs with the tests; the long one:
//
//	go test ./internal/campaign -run TestCampaign -campaign.deploys 200 -timeout 3h -v
func TestCampaign(t *testing.T) {
	cli, host := testenv.Docker(t)
	good := testenv.ServingImage(t, cli, testenv.ImageGood)
	regressed := testenv.ServingImage(t, cli, testenv.ImageRegressed)
	slow := testenv.ServingImage(t, cli, testenv.ImageSlowLoad)
	dir := t.TempDir()
	bin := filepath.Join(dir, "modelship")
	if err := os.WriteFile(bin, testenv.StaticBinary(t), 0o755); err != nil {
		t.Fatal(err)
	}
	env := fmt.Sprintf("camp%d", os.Getpid()%100000)
	port := testenv.FreePort(t)
	root := testenv.RepoRoot()
	cfg := filepath.Join(dir, "modelship.yaml")
	yaml := fmt.Sprintf(`version: 1
model:
  path: %s
  served-name: current
serving:
  engine: sim
suites:
  validation: %s
environments:
  %s:
    target: docker
    port: %d
    ready-timeout: 60s
    keep-releases: 3
    docker:
      host: %s
`, filepath.Join(root, "testdata/models/good"), filepath.Join(root, "testdata/suites/validation_cases.json"), env, port, host)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	tg, err := docker.New(docker.Options{Host: host})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Destroy(context.Background(), env); tg.Close() })
	ledger := filepath.Join(dir, "ledger.jsonl")
	// The environment serves a first release before the faults start.
	first := exec(t, bin, "deploy", "--env", env, "--config", cfg, "--image", good.Tag, "--ledger", ledger)
	if first != nil {
		t.Fatalf("first deploy: %v", first)
	}
	s := *seed
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	t.Logf("campaign: %d deploys, seed %d (rerun with -campaign.seed %d)", *deploys, s, s)
	fig, err := campaign.Run(context.Background(), campaign.Config{
		Binary: bin, Config: cfg, Env: env, URL: fmt.Sprintf("http://127.0.0.1:%d", port), Ledger: ledger,
		Good: good.Tag, Regressed: regressed.Tag, Slow: slow.Tag, Target: tg,
		Deploys: *deploys, Seed: s, LockTTL: 3 * time.Second, Log: testLog{t},
	})
	if err != nil {
		t.Fatalf("campaign stopped: %v", err)
	}
	t.Logf("figures: %s", fig)
	if *report != "" {
		b, _ := json.MarshalIndent(fig, "", "  ")
		os.WriteFile(*report, b, 0o644)
	}
	for _, p := range fig.Problems {
		t.Error(p)
	}
	if !fig.OK() {
		t.Errorf("the promise was broken: %s", fig)
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) { l.t.Logf("%s", p); return len(p), nil }

func exec(t *testing.T, bin string, args ...string) error {
	t.Helper()
	out, err := osexec.Command(bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	return nil
}
