// Package campaign is the fault campaign: it proves, by repetition, the
// promise that every fault during a deploy leaves a release serving and
// loses nothing. On a real Docker engine it runs `modelship deploy` (the
// binary, as a user runs it) again and again, good and regressed releases
// alternating, under a constant load loop through the environment's
// endpoint, and injects one fault per deploy at a random moment:
//
//   - kill-deployer: SIGKILL of the deploy process (no undo runs; the next
//     deploy takes the lock over once its lease runs out and removes what
//     it left in progress);
//   - term-deployer: SIGTERM (the deploy undoes what it did);
//   - kill-engine: the candidate release's container killed;
//   - ledger-full: the audit ledger on a full disk (/dev/full);
//   - slow-engine: a release that takes seconds to load;
//   - none: a control deploy.
//
// After each deploy it checks that the environment answers, that /version
// names the release history says serves, that the lock is free (or taken
// over by the next deploy within its lease) and that no release container
// is left running beside the serving one once the next deploy has
// reconciled. Figures gives the totals.
package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/docker"
)

// Faults are the kinds a deploy may get, in the order the figures list them.
var Faults = []string{"kill-deployer", "term-deployer", "kill-engine", "ledger-full", "slow-engine", "none"}

// Config is one campaign.
type Config struct {
	Binary string // the modelship binary run as the deployer
	Config string // its modelship.yaml, with environment Env on a Docker host
	Env    string
	URL    string // the environment's endpoint (the gateway)
	Ledger string // the audit ledger (ledger-full uses /dev/full instead)
	// Good and Regressed are images of a model that passes and one that
	// fails verify; Slow is a good one that takes seconds to load. Each
	// deploy of Good or Slow uses a fresh alias (tagged here) so /version
	// tells releases apart.
	Good, Regressed, Slow string
	Target                *docker.Target
	Deploys               int
	Seed                  uint64
	LockTTL               time.Duration // the deployer's --lock-ttl
	Workers               int           // load loop concurrency
	Log                   io.Writer
}

// Figures are a campaign's totals.
type Figures struct {
	Deploys  int            `json:"deploys"`
	Faults   map[string]int `json:"faults"`
	Outcomes map[string]int `json:"outcomes"` // live, rolled-back, killed, interrupted, failed
	Requests int64          `json:"requests"`
	Failures int64          `json:"failures"`
	// FailuresByFault: failed requests during deploys with each fault.
	FailuresByFault map[string]int64 `json:"failures_by_fault"`
	// NothingServing counts checks where the endpoint did not answer.
	NothingServing int `json:"nothing_serving"`
	// Disagreements counts checks where /version and history differ.
	Disagreements int `json:"disagreements"`
	// OrphansLeft counts release containers running beside the serving
	// one after a deploy that was not killed, or after the reconciling
	// deploy that followed a killed one.
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
	fmt.Fprintf(&b, "%d deploys in %s; faults:", f.Deploys, f.Took)
	for _, k := range Faults {
		fmt.Fprintf(&b, " %s %d", k, f.Faults[k])
	}
	fmt.Fprintf(&b, "; outcomes:")
	keys := make([]string, 0, len(f.Outcomes))
	for k := range f.Outcomes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s %d", k, f.Outcomes[k])
	}
	fmt.Fprintf(&b, "; %d requests, %d failed", f.Requests, f.Failures)
	for _, k := range Faults {
		if n := f.FailuresByFault[k]; n > 0 {
			fmt.Fprintf(&b, " (%d during %s)", n, k)
		}
	}
	fmt.Fprintf(&b, "; nothing serving %d times; /version vs history disagreed %d times; orphans reconciled %d, left %d",
		f.NothingServing, f.Disagreements, f.OrphansReconciled, f.OrphansLeft)
	return b.String()
}

// Run runs the campaign. The environment must already serve a release
// (the load loop starts at once).
func Run(ctx context.Context, c Config) (*Figures, error) {
	if c.Workers == 0 {
		c.Workers = 2
	}
	if c.LockTTL == 0 {
		c.LockTTL = 3 * time.Second
	}
	logf := func(format string, a ...any) {
		if c.Log != nil {
			fmt.Fprintf(c.Log, format+"\n", a...)
		}
	}
	rng := rand.New(rand.NewPCG(c.Seed, c.Seed^0x9e3779b97f4a7c15))
	fig := &Figures{Faults: map[string]int{}, Outcomes: map[string]int{}, FailuresByFault: map[string]int64{}}
	start := time.Now()
	load := startLoad(c.URL, c.Workers)
	defer func() {
		fig.Requests, fig.Failures = load.stop()
		for _, e := range load.errs() {
			fig.Problems = append(fig.Problems, "request failed: "+e)
		}
		fig.Took = time.Since(start).Round(time.Second).String()
	}()
	cli := c.Target.Client()
	var tags []string
	defer func() { // the campaign's tags go; the images stay under their own
		for _, tag := range tags {
			cli.ImageRemove(context.WithoutCancel(ctx), tag, image.RemoveOptions{})
		}
	}()
	pending := false // a killed deploy's leftovers not yet reconciled
	var failedBefore int64
	for i := 0; i < c.Deploys; i++ {
		if err := ctx.Err(); err != nil {
			return fig, err
		}
		fault := Faults[rng.IntN(len(Faults))]
		regressed := i%2 == 1 && fault != "slow-engine" // the slow release is a good one
		// Each deploy a fresh tag: /version tells releases apart, and
		// pruning an old release (which deletes its image unless another
		// tag holds it) never takes the campaign's own images away.
		src := c.Good
		switch {
		case regressed:
			src = c.Regressed
		case fault == "slow-engine":
			src = c.Slow
		}
		image := fmt.Sprintf("%s-c%d", strings.SplitN(src, ":", 2)[0]+":campaign", i)
		if err := cli.ImageTag(ctx, src, image); err != nil {
			return fig, fmt.Errorf("tagging %s: %w", image, err)
		}
		tags = append(tags, image)
		fig.Deploys++
		fig.Faults[fault]++
		before, err := c.serving(ctx)
		if err != nil {
			return fig, err
		}
		ledger := c.Ledger
		if fault == "ledger-full" {
			ledger = "/dev/full"
		}
		cmd := exec.CommandContext(ctx, c.Binary, "deploy", "--env", c.Env, "--config", c.Config, "--image", image,
			"--ledger", ledger, "--lock-timeout", (4 * c.LockTTL).String(), "--lock-ttl", c.LockTTL.String(), "--log-format", "text")
		var out syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			return fig, err
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		at := time.Duration(200+rng.IntN(5000)) * time.Millisecond
		injected := ""
		switch fault {
		case "kill-deployer", "term-deployer", "kill-engine":
			select {
			case err := <-done:
				done <- err // finished before the fault's moment: nothing to inject
			case <-time.After(at):
				injected = c.inject(ctx, fault, cmd, before)
			}
		}
		var runErr error
		select {
		case runErr = <-done:
		case <-time.After(5 * time.Minute):
			cmd.Process.Kill()
			runErr = <-done
			fig.Problems = append(fig.Problems, fmt.Sprintf("deploy %d (%s) hung for 5 minutes:\n%s", i, fault, tail(out.String())))
		}
		outcome := outcomeOf(runErr, out.String())
		fig.Outcomes[outcome]++
		logf("deploy %d: %s %s, fault %s%s → %s", i, map[bool]string{true: "regressed", false: "good"}[regressed], image, fault, injected, outcome)
		fig.OrphansReconciled += strings.Count(out.String(), "was left in progress by a deployer that is gone") +
			strings.Count(out.String(), "was still running beside the serving release")
		// Checks.
		after, err := c.serving(ctx)
		if err != nil {
			return fig, err
		}
		v, verr := version(c.URL)
		switch {
		case verr != nil:
			fig.NothingServing++
			fig.Problems = append(fig.Problems, fmt.Sprintf("deploy %d (%s): the endpoint does not answer: %v", i, fault, verr))
		case after == nil || v.Image != after.Image:
			fig.Disagreements++
			fig.Problems = append(fig.Problems, fmt.Sprintf("deploy %d (%s): /version serves %q, history says %v", i, fault, v.Image, describe(after)))
		}
		killed := outcome == "killed"
		switch {
		case outcome == "live" && (after == nil || after.Image != image):
			fig.Problems = append(fig.Problems, fmt.Sprintf("deploy %d (%s) said live but %v serves:\n%s", i, fault, describe(after), tail(out.String())))
		case outcome == "live" && regressed:
			fig.Problems = append(fig.Problems, fmt.Sprintf("deploy %d: the regressed release went live:\n%s", i, tail(out.String())))
		case !killed && outcome != "live" && (after == nil || before == nil || after.Image != before.Image):
			fig.Problems = append(fig.Problems, fmt.Sprintf("deploy %d (%s) ended %s but the previous release %v no longer serves (now %v):\n%s", i, fault, outcome, describe(before), describe(after), tail(out.String())))
		}
		// Orphans: a killed deploy may leave its candidate until the next
		// deploy reconciles it; after any other, nothing runs beside the
		// serving release.
		// A deploy refused before it took the lock (no plan made) cannot
		// have reconciled what a killed one left: that stays pending.
		reconciled := strings.Contains(out.String(), "plan: ")
		if killed || !reconciled {
			pending = pending || killed
		} else {
			pending = false
		}
		if n, names := c.orphans(ctx, after); n > 0 && !pending {
			fig.OrphansLeft += n
			fig.Problems = append(fig.Problems, fmt.Sprintf("deploy %d (%s): %d release container(s) running beside the serving one: %v\n%s", i, fault, n, names, tail(out.String())))
		}
		if d := load.failures.Load() - failedBefore; d > 0 {
			fig.FailuresByFault[fault] += d
		}
		failedBefore = load.failures.Load()
	}
	// A killed last deploy: one more, clean, must reconcile and leave
	// nothing behind; and the lock must be free.
	if pending {
		cmd := exec.CommandContext(ctx, c.Binary, "deploy", "--env", c.Env, "--config", c.Config, "--image", c.Good,
			"--ledger", c.Ledger, "--lock-timeout", (4 * c.LockTTL).String(), "--lock-ttl", c.LockTTL.String())
		if b, err := cmd.CombinedOutput(); err != nil {
			fig.Problems = append(fig.Problems, fmt.Sprintf("the clean-up deploy after a killed one failed: %v\n%s", err, tail(string(b))))
		}
		after, _ := c.serving(ctx)
		if n, names := c.orphans(ctx, after); n > 0 {
			fig.OrphansLeft += n
			fig.Problems = append(fig.Problems, fmt.Sprintf("after the clean-up deploy: %d release container(s) beside the serving one: %v", n, names))
		}
	}
	time.Sleep(c.LockTTL + time.Second)
	if _, err := c.Target.BreakLock(ctx, c.Env); err != nil {
		fig.Problems = append(fig.Problems, fmt.Sprintf("the lock is not free after the campaign: %v", err))
	}
	return fig, nil
}

// inject applies a timed fault and says what it did.
func (c *Config) inject(ctx context.Context, fault string, cmd *exec.Cmd, before *deploy.Release) string {
	switch fault {
	case "kill-deployer":
		cmd.Process.Signal(syscall.SIGKILL)
		return " (SIGKILL)"
	case "term-deployer":
		cmd.Process.Signal(syscall.SIGTERM)
		return " (SIGTERM)"
	case "kill-engine":
		cli := c.Target.Client()
		list, err := cli.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(
			filters.Arg("label", deploy.LabelEnv+"="+c.Env), filters.Arg("label", docker.LabelRole+"=release"))})
		if err != nil {
			return " (listing containers failed: " + err.Error() + ")"
		}
		// The candidate: a release the gateway does not send traffic to
		// now (killing the serving engine loses its requests by design).
		now, err := c.serving(ctx)
		if err != nil {
			return " (reading history failed: " + err.Error() + ")"
		}
		for _, ct := range list {
			id := ct.Labels[deploy.LabelRelease]
			if (now != nil && id == now.ID) || (before != nil && id == before.ID) {
				continue
			}
			cli.ContainerKill(ctx, ct.ID, "KILL")
			return " (killed " + strings.TrimPrefix(ct.Names[0], "/") + ")"
		}
		return " (no candidate that does not serve yet)"
	}
	return ""
}

// serving is the release history says serves (nil: none).
func (c *Config) serving(ctx context.Context) (*deploy.Release, error) {
	rels, err := deploy.History(ctx, c.Target, c.Env)
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

// orphans are running release containers other than the serving one's.
func (c *Config) orphans(ctx context.Context, serving *deploy.Release) (int, []string) {
	list, err := c.Target.Client().ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", deploy.LabelEnv+"="+c.Env), filters.Arg("label", docker.LabelRole+"=release"))})
	if err != nil {
		return 0, nil
	}
	var names []string
	for _, ct := range list {
		if serving != nil && ct.Labels[deploy.LabelRelease] == serving.ID {
			continue
		}
		names = append(names, strings.TrimPrefix(ct.Names[0], "/"))
	}
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

// load is the constant load loop: completions through the endpoint.
type load struct {
	requests, failures atomic.Int64
	quit               chan struct{}
	wg                 sync.WaitGroup
	mu                 sync.Mutex
	first              []string
}

func startLoad(url string, workers int) *load {
	l := &load{quit: make(chan struct{})}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	body := `{"model":"current","prompt":"What is the capital of France?","max_tokens":4}`
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.quit:
					return
				default:
				}
				resp, err := hc.Post(url+"/v1/completions", "application/json", strings.NewReader(body))
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %s", resp.Status)
					}
				}
				l.requests.Add(1)
				if err != nil {
					l.failures.Add(1)
					l.mu.Lock()
					if len(l.first) < 5 {
						l.first = append(l.first, time.Now().UTC().Format(time.RFC3339Nano)+" "+err.Error())
					}
					l.mu.Unlock()
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	return l
}

func (l *load) stop() (int64, int64) {
	close(l.quit)
	l.wg.Wait()
	return l.requests.Load(), l.failures.Load()
}

func (l *load) errs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.first)
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
