package campaign

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/testenv"
)

// Run runs the campaign. The environment must already serve a release
// (the load loop starts at once).
func Run(ctx context.Context, c Config) (*Figures, error) {
	if c.Workers == 0 {
		c.Workers = 2
	}
	if c.LockTTL == 0 {
		c.LockTTL = 3 * time.Second
	}
	r, err := newRun(c)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	r.load = startLoad(c.URL, c.Workers)
	defer r.stopLoad(start)
	defer func() { // the campaign's names go; the images stay under their own
		for _, a := range r.aliases {
			c.Site.Unalias(context.WithoutCancel(ctx), a)
		}
	}()
	for i := 0; i < c.Deploys; i++ {
		if err := ctx.Err(); err != nil {
			return r.fig, err
		}
		if err := r.deploy(ctx, i); err != nil {
			return r.fig, err
		}
	}
	r.finish(ctx)
	return r.fig, nil
}

// run is a campaign under way: what it draws from, its figures, the load
// loop and what the next deploy must reconcile.
type run struct {
	Config
	faults []string             // the kinds drawn from
	site   map[string]SiteFault // the site's own, by name
	rng    *rand.Rand
	fig    *Figures
	load   *testenv.Load

	aliases      []string // the images' campaign names, removed at the end
	pending      bool     // a killed deploy's leftovers not yet reconciled
	failedBefore int64    // the load loop's failures before this deploy
}

// newRun draws up the faults (Faults, the site's own unless opt-in and not
// named in Only, then only those Only names) and the figures.
func newRun(c Config) (*run, error) {
	r := &run{Config: c, faults: slices.Clone(Faults), site: map[string]SiteFault{},
		rng: rand.New(rand.NewPCG(c.Seed, c.Seed^0x9e3779b97f4a7c15)),
		fig: &Figures{Faults: map[string]int{}, Outcomes: map[string]int{}, FailuresByFault: map[string]int64{}}}
	for _, f := range c.SiteFaults {
		if !f.OptIn || slices.Contains(c.Only, f.Name) {
			r.faults = append(r.faults, f.Name)
		}
		r.site[f.Name] = f
	}
	if len(c.Only) > 0 {
		r.faults = slices.DeleteFunc(r.faults, func(f string) bool { return !slices.Contains(c.Only, f) })
		if len(r.faults) == 0 {
			return nil, fmt.Errorf("no fault of %v is known here", c.Only)
		}
	}
	if len(c.Strategies) > 0 {
		r.fig.Strategies = map[string]int{}
	}
	return r, nil
}

// stopLoad stops the load loop and counts its requests and failures.
func (r *run) stopLoad(start time.Time) {
	var errs []string
	r.fig.Requests, r.fig.Failures, errs = r.load.Stop()
	for _, e := range errs {
		r.fig.Problems = append(r.fig.Problems, "request failed: "+e)
	}
	r.fig.Took = time.Since(start).Round(time.Second).String()
}

func (r *run) logf(format string, a ...any) {
	if r.Log != nil {
		fmt.Fprintf(r.Log, format+"\n", a...)
	}
}

// round is one deploy of the campaign: what was drawn for it and what
// came of it.
type round struct {
	i         int
	fault     string
	sf        SiteFault // the site's fault, when fault is one
	isSite    bool
	strategy  string // "": the environment's
	regressed bool
	src       string // the image deployed under its campaign name image
	image     string

	before, after *deploy.Release // what served before and after
	out           string          // the deploy's output
	outcome       string
	injected      string // what the fault did
}

// deploy runs the campaign's deploy i: it draws its fault, strategy and
// release, runs `modelship deploy` with the fault injected, and checks
// what serves afterwards.
func (r *run) deploy(ctx context.Context, i int) error {
	d, err := r.draw(ctx, i)
	if err != nil {
		return err
	}
	if d.before, err = r.serving(ctx); err != nil {
		return err
	}
	if err := r.runDeploy(ctx, d); err != nil {
		return err
	}
	r.fig.Outcomes[d.outcome]++
	r.logf("deploy %d: %s %s%s, fault %s%s → %s", i, map[bool]string{true: "regressed", false: "good"}[d.regressed], d.image,
		map[bool]string{true: " (" + d.strategy + ")", false: ""}[d.strategy != ""], d.fault, d.injected, d.outcome)
	r.fig.OrphansReconciled += strings.Count(d.out, "was left in progress by a deployer that is gone") +
		strings.Count(d.out, "was still running beside the serving release")
	killed := d.outcome == "killed"
	if killed {
		r.Site.Settle(ctx, r.Env)
	}
	if d.after, err = r.serving(ctx); err != nil {
		return err
	}
	r.checkVersion(d, killed)
	r.checkOutcome(d, killed)
	r.checkOrphans(ctx, d, killed)
	if n := r.load.Failures() - r.failedBefore; n > 0 {
		r.fig.FailuresByFault[d.fault] += n
	}
	r.failedBefore = r.load.Failures()
	return nil
}

// draw draws deploy i's fault and strategy, and gives its release (good
// and regressed alternate; slow-engine gets the slow good one) a fresh
// name: /version tells releases apart, and pruning an old release (which
// deletes its image unless another name holds it) never takes the
// campaign's own images away.
func (r *run) draw(ctx context.Context, i int) (*round, error) {
	d := &round{i: i, fault: r.faults[r.rng.IntN(len(r.faults))]}
	d.sf, d.isSite = r.site[d.fault]
	if len(r.Strategies) > 0 {
		d.strategy = r.Strategies[r.rng.IntN(len(r.Strategies))]
		r.fig.Strategies[d.strategy]++
	}
	d.regressed = i%2 == 1 && d.fault != "slow-engine" // the slow release is a good one
	d.src = r.Good
	switch {
	case d.regressed:
		d.src = r.Regressed
	case d.fault == "slow-engine":
		d.src = r.Slow
	}
	d.image = fmt.Sprintf("%s-c%d", strings.SplitN(d.src, ":", 2)[0]+":campaign", i)
	if err := r.Site.Alias(ctx, d.src, d.image); err != nil {
		return nil, fmt.Errorf("naming %s: %w", d.image, err)
	}
	r.aliases = append(r.aliases, d.image)
	r.fig.Deploys++
	r.fig.Faults[d.fault]++
	return d, nil
}

// runDeploy runs `modelship deploy` of d's release, injects d's fault at a
// random moment (when the deploy has not finished by then) and sets d's
// output, outcome and what the fault did. A deploy that hangs for 5
// minutes is killed, and that is a problem.
func (r *run) runDeploy(ctx context.Context, d *round) error {
	ledger, config := r.Ledger, r.Config.Config
	if cf := r.Configs[d.src]; cf != "" {
		config = cf
	}
	if d.fault == "ledger-full" {
		ledger = "/dev/full"
	}
	if d.sf.Config != "" {
		config = d.sf.Config
	}
	args := []string{"deploy", "--env", r.Env, "--config", config, "--image", d.image,
		"--ledger", ledger, "--lock-timeout", (4 * r.LockTTL).String(), "--lock-ttl", r.LockTTL.String(), "--log-format", "text"}
	if d.strategy != "" {
		args = append(args, "--strategy", d.strategy)
	}
	cmd := exec.CommandContext(ctx, r.Binary, args...)
	var out testenv.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	at := time.Duration(200+r.rng.IntN(5000)) * time.Millisecond
	if timed := d.fault == "kill-deployer" || d.fault == "term-deployer" || d.fault == "kill-engine" || d.sf.Inject != nil; timed {
		select {
		case err := <-done:
			done <- err // finished before the fault's moment: nothing to inject
		case <-time.After(at):
			d.injected = r.inject(ctx, d.fault, d.sf, cmd, d.before)
		}
	}
	var runErr error
	select {
	case runErr = <-done:
	case <-time.After(5 * time.Minute):
		cmd.Process.Kill()
		runErr = <-done
		r.fig.Problems = append(r.fig.Problems, fmt.Sprintf("deploy %d (%s) hung for 5 minutes:\n%s", d.i, d.fault, tail(out.String())))
	}
	d.out = out.String()
	d.outcome = outcomeOf(runErr, d.out)
	return nil
}

// checkVersion checks that the endpoint answers and that /version names
// the release history says serves. The serving path may follow the switch
// a moment later (a Service's endpoints and kube-proxy's rules are
// eventually consistent): a disagreement counts when it lasts 10 s.
func (r *run) checkVersion(d *round, killed bool) {
	v, verr := version(r.URL)
	for t0 := time.Now(); verr == nil && d.after != nil && v.Image != d.after.Image && time.Since(t0) < 10*time.Second; {
		time.Sleep(500 * time.Millisecond)
		v, verr = version(r.URL)
	}
	switch {
	case verr != nil:
		r.fig.NothingServing++
		r.fig.Problems = append(r.fig.Problems, fmt.Sprintf("deploy %d (%s): the endpoint does not answer: %v", d.i, d.fault, verr))
	case killed && v.Image == d.image && d.strategy == deploy.Rolling:
		// The cluster went on with the killed deploy's rollout (a
		// Deployment's controller does not need the deployer); the
		// next deploy's reconcile rolls it back.
		r.fig.UnverifiedAfterKill++
	case d.after == nil || v.Image != d.after.Image:
		r.fig.Disagreements++
		r.fig.Problems = append(r.fig.Problems, fmt.Sprintf("deploy %d (%s): /version serves %q, history says %v", d.i, d.fault, v.Image, describe(d.after)))
	}
}

// checkOutcome checks that the deploy ended as its release and fault
// allow: a refused config's deploy not live, live only when its release
// serves, a good release without a fault live, a regressed one never, and
// after a failure the previous release still serving.
func (r *run) checkOutcome(d *round, killed bool) {
	problem := func(format string, a ...any) {
		r.fig.Problems = append(r.fig.Problems, fmt.Sprintf(format, a...)+":\n"+tail(d.out))
	}
	before, after, outcome, fault := d.before, d.after, d.outcome, d.fault
	switch {
	case d.isSite && d.sf.Config != "" && outcome == "live":
		problem("deploy %d (%s) went live, want it refused", d.i, fault)
	case outcome == "live" && (after == nil || after.Image != d.image):
		problem("deploy %d (%s) said live but %v serves", d.i, fault, describe(after))
	case outcome != "live" && !d.regressed && (fault == "none" || fault == "ledger-full" || fault == "slow-engine"):
		problem("deploy %d (%s): a good release ended %s", d.i, fault, outcome)
	case outcome == "live" && d.regressed:
		problem("deploy %d: the regressed release went live", d.i)
	case !killed && outcome != "live" && (after == nil || before == nil || after.Image != before.Image):
		problem("deploy %d (%s) ended %s but the previous release %v no longer serves (now %v)", d.i, fault, outcome, describe(before), describe(after))
	}
}

// checkOrphans checks that nothing runs beside the serving release. A
// killed deploy may leave its candidate until the next deploy reconciles
// it; after any other, nothing may. A deploy refused before it took the
// lock (no plan made) cannot have reconciled what a killed one left: that
// stays pending.
func (r *run) checkOrphans(ctx context.Context, d *round, killed bool) {
	reconciled := strings.Contains(d.out, "plan: ")
	if killed || !reconciled {
		r.pending = r.pending || killed
	} else {
		r.pending = false
	}
	if n, names := r.orphans(ctx, d.after); n > 0 && !r.pending {
		r.fig.OrphansLeft += n
		r.fig.Problems = append(r.fig.Problems, fmt.Sprintf("deploy %d (%s): %d release(s) running beside the serving one: %v\n%s", d.i, d.fault, n, names, tail(d.out)))
	}
}

// finish ends the campaign's checks. After a killed last deploy one more,
// clean, must reconcile and leave nothing behind; and the lock must be
// free once its lease has run out.
func (r *run) finish(ctx context.Context) {
	if r.pending {
		cmd := exec.CommandContext(ctx, r.Binary, "deploy", "--env", r.Env, "--config", r.Config.Config, "--image", r.Good,
			"--ledger", r.Ledger, "--lock-timeout", (4 * r.LockTTL).String(), "--lock-ttl", r.LockTTL.String())
		if b, err := cmd.CombinedOutput(); err != nil {
			r.fig.Problems = append(r.fig.Problems, fmt.Sprintf("the clean-up deploy after a killed one failed: %v\n%s", err, tail(string(b))))
		}
		after, _ := r.serving(ctx)
		if n, names := r.orphans(ctx, after); n > 0 {
			r.fig.OrphansLeft += n
			r.fig.Problems = append(r.fig.Problems, fmt.Sprintf("after the clean-up deploy: %d release(s) beside the serving one: %v", n, names))
		}
	}
	time.Sleep(r.LockTTL + time.Second)
	if lb, ok := r.Site.Target().(deploy.LockBreaker); ok {
		if _, err := lb.BreakLock(ctx, r.Env); err != nil {
			r.fig.Problems = append(r.fig.Problems, fmt.Sprintf("the lock is not free after the campaign: %v", err))
		}
	}
}
