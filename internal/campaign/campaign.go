// Package campaign is the fault campaign: it proves, by repetition, the
// promise that every fault during a deploy leaves a release serving and
// loses nothing. On a real Docker engine or a real Kubernetes cluster (a
// Site) it runs `modelship deploy` (the binary, as a user runs it) again
// and again, good and regressed releases alternating, under a constant
// load loop through the environment's endpoint, and injects one fault per
// deploy at a random moment:
//
//   - kill-deployer: SIGKILL of the deploy process (no undo runs; the next
//     deploy takes the lock over once its lease runs out and removes what
//     it left in progress);
//   - term-deployer: SIGTERM (the deploy undoes what it did);
//   - kill-engine: the candidate release's container (pod) killed;
//   - ledger-full: the audit ledger on a full disk (/dev/full);
//   - slow-engine: a release that takes seconds to load;
//   - none: a control deploy;
//
// and the site's own (Config.SiteFaults): the Docker daemon restarted, the
// API server paused, the port taken.
//
// After each deploy it checks that the environment answers, that /version
// names the release history says serves, that the lock is free (or taken
// over by the next deploy within its lease) and that no release runs
// beside the serving one once the next deploy has reconciled. Figures
// gives the totals.
package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/testenv"
)

// Faults are the kinds every site's deploys may get, in the order the
// figures list them; Config.SiteFaults adds the site's own.
var Faults = []string{"kill-deployer", "term-deployer", "kill-engine", "ledger-full", "slow-engine", "none"}

// Site is where the campaign deploys: the target modelship deploys to, and
// what the checks and faults need of it.
type Site interface {
	// Target reads the environment's history and breaks its lock.
	Target() deploy.Target
	// Alias gives the image src a further name (tag) the deploy can use.
	Alias(ctx context.Context, src, alias string) error
	// Unalias removes a name Alias gave.
	Unalias(ctx context.Context, alias string)
	// KillEngine kills an engine of a release that is not in spare and
	// gets no client traffic yet, and says which (or that there was none).
	KillEngine(ctx context.Context, env string, spare ...string) string
	// Running lists what runs of each release of env (release id → the
	// containers or pods), not counting what is shutting down.
	Running(ctx context.Context, env string) (map[string][]string, error)
	// Settle waits (bounded) until what a killed deployer left in motion
	// has come to rest (a rollout the cluster goes on with).
	Settle(ctx context.Context, env string)
}

// SiteFault is a fault only some sites have.
type SiteFault struct {
	Name string
	// Inject, when set, runs at a random moment of the deploy and says
	// what it did.
	Inject func(ctx context.Context) string
	// Config, when set, is the modelship.yaml the deploy gets instead of
	// Config.Config (one whose port another process holds, say); such a
	// deploy must fail with nothing changed.
	Config string
	// OptIn: drawn only when Config.Only names it (a fault whose known
	// open findings would fail every run).
	OptIn bool
}

// Config is one campaign.
type Config struct {
	Binary string // the modelship binary run as the deployer
	Config string // its modelship.yaml, with environment Env on Site
	Env    string
	URL    string // the environment's endpoint (the gateway, the Service)
	Ledger string // the audit ledger (ledger-full uses /dev/full instead)
	// Good and Regressed are images of a model that passes and one that
	// fails verify; Slow is a good one that takes seconds to load. Each
	// deploy uses a fresh alias (given here) so /version tells releases
	// apart.
	Good, Regressed, Slow string
	// Configs, when set, holds the modelship.yaml for each of Good,
	// Regressed and Slow (its model the image's, so verify expects the
	// image's model digest where the target cannot read image labels).
	Configs    map[string]string
	Site       Site
	SiteFaults []SiteFault
	// Strategies, when set, are the strategies deploys pick from at
	// random (--strategy); else the environment's.
	Strategies []string
	// Only, when set, restricts the faults drawn to these kinds (to
	// reproduce one).
	Only    []string
	Deploys int
	Seed    uint64
	LockTTL time.Duration // the deployer's --lock-ttl
	Workers int           // load loop concurrency
	Log     io.Writer
}

// Figures are a campaign's totals.
type Figures struct {
	Deploys    int            `json:"deploys"`
	Faults     map[string]int `json:"faults"`
	Strategies map[string]int `json:"strategies,omitempty"`
	Outcomes   map[string]int `json:"outcomes"` // live, rolled-back, killed, interrupted, failed
	Requests   int64          `json:"requests"`
	Failures   int64          `json:"failures"`
	// FailuresByFault: failed requests during deploys with each fault.
	FailuresByFault map[string]int64 `json:"failures_by_fault"`
	// NothingServing counts checks where the endpoint did not answer.
	NothingServing int `json:"nothing_serving"`
	// Disagreements counts checks where /version and history differ.
	Disagreements int `json:"disagreements"`
	// UnverifiedAfterKill counts killed rolling deploys whose rollout the
	// cluster finished on its own: the unverified release serves (history
	// says so: in progress) until the next deploy rolls it back.
	UnverifiedAfterKill int `json:"unverified_after_kill"`
	// OrphansLeft counts releases running beside the serving one after a
	// deploy that was not killed, or after the reconciling deploy that
	// followed a killed one.
	OrphansLeft int `json:"orphans_left"`
	// OrphansReconciled counts releases a deploy found left in progress
	// by a killed deployer and removed.
	OrphansReconciled int      `json:"orphans_reconciled"`
	Problems          []string `json:"problems,omitempty"`
	Took              string   `json:"took"`
}

// OK reports whether the campaign kept the promise.
func (f *Figures) OK() bool {
	return f.Failures == 0 && f.NothingServing == 0 && f.Disagreements == 0 && f.OrphansLeft == 0 && len(f.Problems) == 0
}

func (f *Figures) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d deploys in %s; faults:%s", f.Deploys, f.Took, counts(f.Faults))
	if len(f.Strategies) > 0 {
		fmt.Fprintf(&b, "; strategies:%s", counts(f.Strategies))
	}
	fmt.Fprintf(&b, "; outcomes:%s", counts(f.Outcomes))
	fmt.Fprintf(&b, "; %d requests, %d failed", f.Requests, f.Failures)
	for _, k := range sortedKeys(f.FailuresByFault) {
		if n := f.FailuresByFault[k]; n > 0 {
			fmt.Fprintf(&b, " (%d during %s)", n, k)
		}
	}
	fmt.Fprintf(&b, "; nothing serving %d times; /version vs history disagreed %d times; orphans reconciled %d, left %d",
		f.NothingServing, f.Disagreements, f.OrphansReconciled, f.OrphansLeft)
	if f.UnverifiedAfterKill > 0 {
		fmt.Fprintf(&b, "; %d killed rolling deploy(s) the cluster rolled out unverified (rolled back by the next deploy)", f.UnverifiedAfterKill)
	}
	return b.String()
}

func counts[V int | int64](m map[string]V) string {
	var b strings.Builder
	for _, k := range sortedKeys(m) {
		fmt.Fprintf(&b, " %s %d", k, m[k])
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// inject applies a timed fault and says what it did.
func (c *Config) inject(ctx context.Context, fault string, sf SiteFault, cmd *exec.Cmd, before *deploy.Release) string {
	switch fault {
	case "kill-deployer":
		cmd.Process.Signal(syscall.SIGKILL)
		return " (SIGKILL)"
	case "term-deployer":
		cmd.Process.Signal(syscall.SIGTERM)
		return " (SIGTERM)"
	case "kill-engine":
		// A release that gets no traffic now (killing the serving engine
		// loses its requests by design).
		now, err := c.serving(ctx)
		if err != nil {
			return " (reading history failed: " + err.Error() + ")"
		}
		var spare []string
		for _, r := range []*deploy.Release{now, before} {
			if r != nil {
				spare = append(spare, r.ID)
			}
		}
		return " (" + c.Site.KillEngine(ctx, c.Env, spare...) + ")"
	}
	if sf.Inject != nil {
		return " (" + sf.Inject(ctx) + ")"
	}
	return ""
}

// serving is the release history says serves (nil: none).
func (c *Config) serving(ctx context.Context) (*deploy.Release, error) {
	rels, err := deploy.History(ctx, c.Site.Target(), c.Env)
	if err != nil {
		return nil, err
	}
	for _, r := range rels {
		if r.Serving {
			return r, nil
		}
	}
	return nil, nil
}

// orphans are what runs of releases other than the serving one.
func (c *Config) orphans(ctx context.Context, serving *deploy.Release) (int, []string) {
	running, err := c.Site.Running(ctx, c.Env)
	if err != nil {
		return 0, nil
	}
	var names []string
	for id, what := range running {
		if serving != nil && id == serving.ID {
			continue
		}
		names = append(names, what...)
	}
	sort.Strings(names)
	return len(names), names
}

// outcomeOf classifies how a deploy process ended.
func outcomeOf(err error, out string) string {
	var xe *exec.ExitError
	switch {
	case err == nil:
		return "live"
	case errors.As(err, &xe) && xe.ProcessState != nil && !xe.Exited():
		return "killed"
	case strings.Contains(out, "interrupted"):
		return "interrupted"
	case strings.Contains(out, "switched back to") || strings.Contains(out, "kept serving"):
		return "rolled-back"
	}
	return "failed"
}

func describe(r *deploy.Release) string {
	if r == nil {
		return "nothing"
	}
	return fmt.Sprintf("%s (%s, %s)", r.ID, r.Image, r.Outcome)
}

type versionInfo struct {
	Image string `json:"image"`
}

func version(url string) (*versionInfo, error) {
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get(url + "/version")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /version: %s", resp.Status)
	}
	var v versionInfo
	return &v, json.NewDecoder(resp.Body).Decode(&v)
}

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 12 {
		lines = lines[len(lines)-12:]
	}
	return strings.Join(lines, "\n")
}

// startLoad is the constant load loop: completions through the endpoint,
// 20 ms apart per worker (the deploys need the machine too); a failure
// says when it happened.
func startLoad(url string, workers int) *testenv.Load {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	body := `{"model":"current","prompt":"What is the capital of France?","max_tokens":4}`
	return testenv.StartLoad(workers, func(int, int) error {
		defer time.Sleep(20 * time.Millisecond)
		resp, err := hc.Post(url+"/v1/completions", "application/json", strings.NewReader(body))
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %s", resp.Status)
			}
		}
		if err != nil {
			return fmt.Errorf("%s %w", time.Now().UTC().Format(time.RFC3339Nano), err)
		}
		return nil
	})
}
