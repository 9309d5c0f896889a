package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/user"
	"slices"
	"strings"
	"time"

	"github.com/modelship/modelship/checkpoint"
	"github.com/modelship/modelship/gpu"
	"github.com/modelship/modelship/internal/fit"
	"github.com/modelship/modelship/serving"
)

// Deployer runs deploys and rollbacks against one target.
type Deployer struct {
	Target   Target
	GPUs     GPUSource // nil: the target's (GPUProber), else this machine's (gpu.Detect)
	Verifier Verifier
	Ledger   *Ledger // nil: no ledger
	Out      io.Writer
	// ProgressEvery is how often waiting prints a line (default 5s).
	ProgressEvery time.Duration
	// DrainTimeout bounds waiting for the previous release's in-flight
	// requests after the switch (default 2m: long generations).
	DrainTimeout time.Duration
	// CleanupTimeout bounds the undo after a failure or an interrupt
	// (default 5m, plus the previous release's load budget on recreate).
	CleanupTimeout time.Duration
	// Hook, when set, is called at each step ("planned", "locked",
	// "started", "ready", "switched", "drained", "verified"); tests use it
	// to interrupt a deploy at a precise point.
	Hook func(step string)
	// Started, when set, is called once a deploy or rollback has made its
	// release (id, image, model digest known), before anything changes on
	// the target: where the "started" notification goes out.
	Started func(r *Release)
	// Deadline, when set, is when the whole deploy, its undo included, must
	// be over (the stage's own bound, past which it is killed): the
	// forward work stops early enough to leave the undo its full budget.
	Deadline time.Time
	// LockTTL is the deploy lock's lease (default DefaultLockTTL): renewed
	// every quarter of it while the deploy runs; a deployer killed without
	// releasing it holds the environment for at most this long.
	LockTTL time.Duration
}

// Request is one deploy.
type Request struct {
	Env   string
	Image string // reference, as /version will report it
	// ImageID pins the content (rollback); "" resolves Image.
	ImageID  string
	GitSHA   string
	Strategy string // auto, recreate, blue-green
	// Engine is the serving engine, "vllm" or "sim".
	Engine     string
	ServedName string
	// ServedAliases are further names the model answers to.
	ServedAliases []string
	// Model is the checkpoint (for fit and the load budget); may be nil
	// for sim.
	Model *checkpoint.Info
	// ModelDigest is expected at /version when the image has no
	// modelship.model-digest label.
	ModelDigest string
	Fit         fit.Options
	// Settings are the environment's serving settings (the file's with
	// the environment's override): the release's engine flags.
	Settings serving.Settings
	// Secrets are the serving container's secrets by variable
	// (serving.EnvAPIKey, serving.EnvHFToken), resolved. They go to the
	// target only: never into a record, a label, a log or an error.
	Secrets map[string]string
	GPUs    []string // the environment's GPUs; empty: choose
	// Port and PublishIP are the environment's public endpoint; URL is how
	// verify reaches it.
	Port      int
	PublishIP string
	URL       string
	// ReadyTimeout overrides the load budget when positive.
	ReadyTimeout time.Duration
	// LockTimeout is how long to wait for another deploy's lock (0: fail
	// at once).
	LockTimeout time.Duration
	// DeployedBy overrides who deployed (default: DeployedBy()).
	DeployedBy string
	// What names the operation in the lock ("deploy", "rollback to R").
	What string
	// KeepReleases is how many releases the environment keeps: once the
	// outcome is recorded, older ones are pruned when the target is a
	// Pruner (see Prunable for what is always kept). 0 prunes nothing.
	KeepReleases int
}

// Result is what a deploy did, with the timings the log prints.
type Result struct {
	Release  *Release
	Previous *Release // nil on a first deploy
	Plan     *Plan
	Budget   time.Duration
	// ReadyAfter: start → /ready 200. SwitchAfterReady: ready → switched.
	// DrainedAfter: switched → previous release drained. Verify: verify time.
	ReadyAfter, SwitchAfterReady, DrainedAfter, Verify time.Duration
	// RolledBack is true when the previous release was put back.
	RolledBack bool
}

// DeployedBy is who is deploying: "GITHUB_ACTOR via GITHUB_WORKFLOW run
// GITHUB_RUN_ID" in GitHub Actions, else user@host.
func DeployedBy() string {
	if a := os.Getenv("GITHUB_ACTOR"); a != "" {
		s := a
		if w := os.Getenv("GITHUB_WORKFLOW"); w != "" {
			s += " via " + w
		}
		if r := os.Getenv("GITHUB_RUN_ID"); r != "" {
			s += " run " + r
		}
		return s
	}
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

func (d *Deployer) out() io.Writer {
	if d.Out == nil {
		return io.Discard
	}
	return d.Out
}

func (d *Deployer) logf(format string, a ...any) { fmt.Fprintf(d.out(), format+"\n", a...) }

func (d *Deployer) hook(step string) {
	if d.Hook != nil {
		d.Hook(step)
	}
}

func (d *Deployer) event(name string, r *Release, detail string) {
	if err := d.Ledger.Append(Event{Event: name, Release: r, Detail: detail}); err != nil {
		d.logf("warning: %v", err)
	}
}

// fresh is a context for cleanup that survives the deploy's cancellation.
func fresh(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}

// Deploy puts req.Image into req.Env. On any failure, and when ctx is
// cancelled at any point, the previous release is left (or put back)
// serving; the error says what failed and what was done about it.
func (d *Deployer) Deploy(ctx context.Context, req Request) (*Result, error) {
	res, err := d.deploy(ctx, req)
	if err != nil && ctx.Err() != nil && !strings.Contains(err.Error(), "interrupted") {
		// Cancelled before any release was started.
		err = fmt.Errorf("deploy to %s interrupted (%v): nothing was changed, the previous release kept serving", req.Env, err)
	}
	return res, err
}

func (d *Deployer) deploy(ctx context.Context, req Request) (*Result, error) {
	if req.Env == "" || req.Image == "" {
		return nil, errors.New("deploy needs an environment and an image")
	}
	ref := req.Image
	if req.ImageID != "" {
		ref = req.ImageID
	}
	img, err := d.Target.Image(ctx, ref)
	if err != nil {
		return nil, err
	}
	switch {
	case req.ImageID == "" && img.ID == "":
		d.logf("image %s: content digest not known to %s yet (it is fetched where the release runs)", req.Image, d.Target.Describe())
	case req.ImageID == "" && img.RepoDigest == "":
		d.logf("image %s is %s (built on this host, no registry digest)", req.Image, short(img.ID))
	}
	what := req.What
	if what == "" {
		what = "deploy " + req.Image
	}
	by := req.DeployedBy
	if by == "" {
		by = DeployedBy()
	}
	host, _ := os.Hostname()
	lease, err := d.lock(ctx, req, img, Holder{Who: by, Host: host, PID: os.Getpid(), Since: time.Now().UTC(), What: what, TTL: d.LockTTL})
	if err != nil {
		return nil, err
	}
	ctx, stopRenewing := d.renew(ctx, req.Env, lease, d.LockTTL)
	defer func() {
		stopRenewing()
		cctx, cancel := fresh(ctx, 30*time.Second)
		defer cancel()
		if err := lease.Release(cctx); err != nil {
			d.logf("warning: %v", err)
		}
	}()
	d.hook("locked")
	if err := d.reconcile(ctx, req.Env); err != nil {
		return nil, err
	}

	rels, err := d.Target.Releases(ctx, req.Env)
	if err != nil {
		return nil, err
	}
	placement := Placement{Engine: req.Engine, Strategy: req.Strategy, Model: req.Model, Fit: req.Fit, GPUs: req.GPUs, Current: liveRelease(rels)}
	var plan *Plan
	gpus := d.GPUs
	if p, ok := d.Target.(GPUProber); ok && gpus == nil {
		gpus = func(ctx context.Context) ([]gpu.Device, error) {
			devs, err := p.GPUs(ctx, img)
			if err == nil {
				d.logf("GPUs of %s (probed there, from the release's image): %s", d.Target.Describe(), describeGPUs(devs))
			}
			return devs, err
		}
	}
	if p, ok := d.Target.(Planner); ok {
		plan, err = p.Plan(ctx, placement)
	} else {
		plan, err = MakePlan(ctx, placement, gpus)
	}
	if err != nil {
		return nil, fmt.Errorf("deploy to %s: %w (nothing was changed)", req.Env, err)
	}
	d.logf("plan: %s, %s", plan.Strategy, plan.Why)
	d.hook("planned")
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("deploy to %s interrupted before it started: nothing was changed", req.Env)
	}

	current := liveRelease(rels)
	if err := d.Target.Router(ctx, RouterSpec{Env: req.Env, Port: req.Port, PublishIP: req.PublishIP}, img); err != nil {
		return nil, fmt.Errorf("deploy to %s: %w", req.Env, err)
	}

	var weights int64
	if req.Model != nil {
		weights = req.Model.WeightBytes
	}
	rel := &Release{
		ID: NewReleaseID(time.Now(), uint16(rand.Uint32())), Env: req.Env, Image: req.Image, ImageID: img.ID,
		ModelDigest: firstNonEmpty(img.Labels[LabelModelDigest], req.ModelDigest), GitSHA: req.GitSHA,
		DeployedBy: by, DeployedAt: time.Now().UTC(), Strategy: plan.Strategy, GPUs: plan.GPUs, Outcome: InProgress,
	}
	if current != nil {
		rel.Previous = current.ID
	}
	res := &Result{Release: rel, Previous: current, Plan: plan, Budget: LoadBudget(weights, req.ReadyTimeout)}
	r := &run{d: d, req: req, res: res, rel: rel, old: current}
	if !d.Deadline.IsZero() {
		undo := r.cleanupTimeout()
		if plan.Strategy == Recreate && current != nil {
			undo += res.Budget // restarting the previous release
		}
		stopAt := d.Deadline.Add(-undo)
		if left := time.Until(stopAt); left < 10*time.Second {
			return nil, fmt.Errorf("deploy to %s: its deadline (%s) leaves %s for the deploy once %s is kept to undo it; give it more time (--deadline) (nothing was changed)",
				req.Env, d.Deadline.Format(time.RFC3339), left.Round(time.Second), undo)
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadlineCause(ctx, stopAt, fmt.Errorf("the deadline: the deploy stops at %s to keep %s to undo it before %s",
			stopAt.UTC().Format(time.RFC3339), undo, d.Deadline.UTC().Format(time.RFC3339)))
		defer cancel()
		d.logf("deadline %s: the deploy stops by %s, keeping %s to undo", d.Deadline.UTC().Format(time.RFC3339), stopAt.UTC().Format(time.RFC3339), undo)
	}
	if current != nil {
		if r.oldInst, err = d.Target.Instance(ctx, req.Env, current.ID); err != nil {
			return nil, err
		}
		if r.oldInst == nil {
			d.logf("warning: release %s is named serving but its container is gone; deploying as if first", current.ID)
			r.old = nil
		}
	}
	d.event("started", rel, plan.Why)
	if d.Started != nil {
		d.Started(rel)
	}
	d.logf("release %s: %s → %s (load budget %s)", rel.ID, req.Image, req.Env, res.Budget)
	err = r.execute(ctx)
	// The outcome is recorded; prune while the lock is still held.
	d.prune(ctx, req)
	return res, err
}

func (d *Deployer) lock(ctx context.Context, req Request, img *ImageInfo, h Holder) (Lease, error) {
	deadline := time.Now().Add(req.LockTimeout)
	said := false
	for {
		lease, err := d.Target.Lock(ctx, req.Env, h, img)
		var le *LockedError
		if !errors.As(err, &le) {
			return lease, err
		}
		if time.Now().After(deadline) {
			if req.LockTimeout > 0 {
				return nil, fmt.Errorf("%w; gave up after waiting %s (--lock-timeout); nothing was changed", err, req.LockTimeout)
			}
			return nil, fmt.Errorf("%w; nothing was changed (wait for it with --lock-timeout)", err)
		}
		if !said {
			d.logf("waiting for the lock of %s, held by %s", req.Env, le.Holder)
			said = true
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("interrupted while waiting for the lock of %s: nothing was changed", req.Env)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// renew keeps the lease while the deploy runs: a renewal every quarter of
// ttl. If the lock turns out to be someone else's (this process was
// stopped for longer than the lease), the returned context is cancelled:
// the deploy stops and undoes what it did, as for an interrupt.
func (d *Deployer) renew(ctx context.Context, env string, lease Lease, ttl time.Duration) (context.Context, func()) {
	if ttl <= 0 {
		ttl = DefaultLockTTL
	}
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(ttl / 4)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			rctx, rcancel := context.WithTimeout(ctx, ttl/4)
			err := lease.Renew(rctx)
			rcancel()
			switch {
			case errors.Is(err, ErrLockLost):
				d.logf("LOCK LOST: %v; stopping this deploy", err)
				cancel(fmt.Errorf("deploy to %s interrupted: %w", env, err))
				return
			case err != nil && ctx.Err() == nil:
				d.logf("warning: renewing the lock of %s: %v (retrying; the lease lasts %s)", env, err, ttl)
			}
		}
	}()
	return ctx, func() { close(done); cancel(nil) }
}

// reconcile cleans up after deploys whose deployer is gone: under the
// lock no other deploy runs, so a release still in progress was left by a
// deployer that was killed (or lost its lock). Its instance is removed
// (on Kubernetes a rolling update is rolled back), it is recorded as
// abandoned, and the GPUs it held are free for the plan that follows. A
// release left in progress that the router already serves keeps serving
// (it is what clients get); the log says so.
func (d *Deployer) reconcile(ctx context.Context, env string) error {
	rels, err := d.Target.Releases(ctx, env)
	if err != nil {
		return err
	}
	for _, r := range rels {
		if r.Serving {
			if r.Outcome == InProgress {
				d.logf("warning: release %s serves %s but the deploy that started it never finished (its deployer is gone); it keeps serving until this deploy replaces it", r.ID, env)
			}
			continue
		}
		in, err := d.Target.Instance(ctx, env, r.ID)
		if err != nil {
			return err
		}
		if r.Outcome != InProgress {
			// A finished release still running beside the serving one: its
			// deployer recorded the outcome and was stopped before it
			// removed the instance. (A rolling release has no instance of
			// its own: the Deployment is the serving one's.)
			if in == nil || r.Strategy == Rolling {
				continue
			}
			st, err := d.Target.Status(ctx, in)
			if err != nil {
				return err
			}
			if !st.Running {
				continue
			}
			if err := d.Target.Remove(ctx, in); err != nil {
				return fmt.Errorf("removing release %s (%s), still running beside the serving one: %w (nothing of this deploy was started)", r.ID, r.Outcome, err)
			}
			d.event("removed-orphan", r, "still running beside the serving release")
			d.logf("release %s (%s) was still running beside the serving release (its deployer was stopped before removing it): removed", r.ID, r.Outcome)
			continue
		}
		if in != nil {
			if err := d.Target.Remove(ctx, in); err != nil {
				return fmt.Errorf("removing release %s, left in progress by a deployer that is gone: %w (nothing of this deploy was started)", r.ID, err)
			}
		}
		r.Outcome, r.Finished = Abandoned, time.Now().UTC()
		r.Reason = "its deploy stopped without finishing (the deployer was killed or lost its lock); the next deploy removed it"
		if err := d.Target.Record(ctx, r); err != nil {
			return err
		}
		d.event("abandoned", r, r.Reason)
		freed := "no GPU"
		if len(r.GPUs) > 0 {
			freed = fmt.Sprintf("%d GPU(s) %s", len(r.GPUs), strings.Join(r.GPUs, ","))
		}
		d.logf("release %s was left in progress by a deployer that is gone (%s, since %s): removed it, marked abandoned; freed %s before planning",
			r.ID, r.DeployedBy, r.DeployedAt.Format(time.RFC3339), freed)
	}
	return nil
}

// run is one deploy's state: what has been done, so undo knows what to undo.
type run struct {
	d       *Deployer
	req     Request
	res     *Result
	rel     *Release
	old     *Release
	oldInst *Instance
	newInst *Instance

	oldStopped  bool // recreate stopped the previous release
	switched    bool // the router sends traffic to the new release
	switchTried bool // a switch to the new release was asked (it may have happened)
}

func (r *run) execute(ctx context.Context) error {
	d := r.d
	var err error
	if r.res.Plan.Strategy == Recreate {
		err = r.recreate(ctx)
	} else {
		err = r.blueGreen(ctx)
	}
	if err == nil {
		err = r.verify(ctx)
	}
	if err == nil {
		return r.finish(ctx)
	}
	// Failure or interrupt: put the previous release back.
	interrupted := ctx.Err() != nil
	outcome, verb := Failed, "failed"
	if interrupted {
		outcome, verb = Interrupted, "was interrupted"
		err = fmt.Errorf("interrupted (%v)", context.Cause(ctx))
	}
	d.logf("release %s %s: %v", r.rel.ID, verb, err)
	cctx, cancel := fresh(ctx, r.cleanupTimeout())
	defer cancel()
	undone, uerr := r.undo(cctx)
	r.rel.Outcome, r.rel.Reason, r.rel.Finished = outcome, oneLine(err.Error()), time.Now().UTC()
	if rerr := d.Target.Record(cctx, r.rel); rerr != nil {
		d.logf("warning: recording the outcome: %v", rerr)
	}
	d.event(string(outcome), r.rel, undone)
	msg := fmt.Sprintf("deploy of %s to %s %s: %v; %s", r.req.Image, r.req.Env, verb, err, undone)
	if uerr != nil {
		return fmt.Errorf("%s; PUTTING THE PREVIOUS RELEASE BACK FAILED: %v", msg, uerr)
	}
	return errors.New(msg)
}

func (r *run) drainTimeout() time.Duration {
	if r.d.DrainTimeout == 0 {
		return 2 * time.Minute
	}
	return r.d.DrainTimeout
}

func (r *run) cleanupTimeout() time.Duration {
	t := r.d.CleanupTimeout
	if t == 0 {
		t = 5 * time.Minute
	}
	if r.oldStopped {
		t += r.res.Budget
	}
	return t
}

// start starts the new release and waits until it is ready.
func (r *run) start(ctx context.Context) error {
	d, req := r.d, r.req
	settings := req.Settings
	if u := r.res.Plan.GPUMemoryUtilization; u > 0 {
		settings.GPUMemoryUtilization = u
	}
	env := ReleaseEnv(r.rel, append([]string{req.ServedName}, req.ServedAliases...), settings)
	in, err := d.Target.Start(ctx, &Spec{Release: r.rel, Env: env, GPUs: r.res.Plan.GPUs, Port: serving.Port,
		LoadBudget: r.res.Budget, SharedMemory: settings.NeedsSharedMemory(), Secrets: req.Secrets, Engine: req.Engine})
	if err != nil {
		return fmt.Errorf("starting release %s: %w", r.rel.ID, err)
	}
	r.newInst = in
	d.event("started-container", r.rel, in.Name)
	d.hook("started")
	d.logf("started %s; waiting for /ready (health, %q in /v1/models, one generation)", in.Name, req.ServedName)
	every := d.ProgressEvery
	if every == 0 {
		every = 5 * time.Second
	}
	took, err := WaitReady(ctx, d.Target, in, r.res.Budget, d.out(), every)
	if err != nil {
		return err
	}
	r.res.ReadyAfter, r.rel.ReadyAfter = took, took
	d.logf("release %s ready after %s", r.rel.ID, took.Round(time.Millisecond))
	d.event("ready", r.rel, took.String())
	d.hook("ready")
	return ctx.Err()
}

// ReleaseEnv is the environment a release's serving container gets
// (KEY=VALUE): the image, its digest, the git SHA and deploy time for
// /version, the served name and aliases, then every serving setting's
// variable (empty when unset, clearing what the image baked). No
// MODELSHIP_MODEL_DIGEST: the release hashes its own weights, so /version
// proves which model it serves.
func ReleaseEnv(rel *Release, served []string, settings serving.Settings) []string {
	env := []string{
		serving.EnvImage + "=" + rel.Image, serving.EnvImageDigest + "=" + rel.ImageID,
		serving.EnvDeployedAt + "=" + rel.DeployedAt.Format(time.RFC3339),
	}
	if rel.GitSHA != "" {
		env = append(env, serving.EnvGitSHA+"="+rel.GitSHA)
	}
	if len(served) > 0 && served[0] != "" {
		env = append(env, serving.EnvServedName+"="+served[0])
	}
	var aliases []string
	if len(served) > 1 {
		aliases = served[1:]
	}
	env = append(env, serving.EnvServedAliases+"="+serving.JoinWords(aliases))
	// The environment's settings replace whatever the image baked in; a
	// setting the environment leaves out is cleared, so the release runs
	// exactly the settings modelship.yaml gives for it.
	set := map[string]string{}
	for _, kv := range settings.Env() {
		k, v, _ := strings.Cut(kv, "=")
		set[k] = v
	}
	names := make([]string, 0, len(serving.EnvNames()))
	for name := range serving.EnvNames() {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		env = append(env, name+"="+set[name])
	}
	return env
}

// SecretEnv is secrets as KEY=VALUE, sorted by name: a Docker container's
// share of Spec.Secrets.
func SecretEnv(secrets map[string]string) []string {
	env := make([]string, 0, len(secrets))
	for _, k := range slices.Sorted(maps.Keys(secrets)) {
		env = append(env, k+"="+secrets[k])
	}
	return env
}

func (r *run) switchTo(ctx context.Context) error {
	t0 := time.Now()
	// A switch cut short (an interrupt, a lost answer) may still have
	// taken effect: from here the undo switches back in any case.
	r.switchTried = true
	if err := r.d.Target.Switch(ctx, r.req.Env, r.newInst); err != nil {
		return err
	}
	r.switched = true
	r.res.SwitchAfterReady = time.Since(t0)
	r.d.logf("switched %s to release %s in %s", r.req.Env, r.rel.ID, r.res.SwitchAfterReady.Round(time.Millisecond))
	r.d.event("switched", r.rel, "")
	r.d.hook("switched")
	return ctx.Err()
}

func (r *run) blueGreen(ctx context.Context) error {
	if err := r.start(ctx); err != nil {
		return err
	}
	if err := r.switchTo(ctx); err != nil {
		return err
	}
	if r.oldInst != nil {
		t0 := time.Now()
		if err := r.d.Target.WaitDrained(ctx, r.req.Env, r.oldInst, r.drainTimeout()); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.d.logf("warning: %v (continuing: new requests already go to %s)", err, r.rel.ID)
		}
		r.res.DrainedAfter = time.Since(t0)
		r.d.logf("release %s drained %s after the switch", r.old.ID, r.res.DrainedAfter.Round(time.Millisecond))
		r.d.hook("drained")
	}
	return ctx.Err()
}

func (r *run) recreate(ctx context.Context) error {
	if r.oldInst != nil {
		expect := r.res.Budget
		if r.old.ReadyAfter > 0 {
			expect = r.old.ReadyAfter
		}
		r.d.logf("recreate: %s stops serving until %s is ready; expected downtime about %s (the previous release's load time; at most the %s budget). Release %s's image stays on disk for a rollback without pull.",
			r.req.Env, r.rel.ID, expect.Round(time.Second), r.res.Budget, r.old.ID)
		if err := r.d.Target.Stop(ctx, r.oldInst); err != nil {
			return err
		}
		r.oldStopped = true
		r.d.event("stopped-previous", r.old, "")
	}
	if err := r.start(ctx); err != nil {
		return err
	}
	return r.switchTo(ctx)
}

func (r *run) verify(ctx context.Context) error {
	if r.d.Verifier == nil {
		return nil
	}
	t0 := time.Now()
	r.d.logf("verifying %s through %s", r.rel.ID, r.req.URL)
	err := r.d.Verifier.Verify(ctx, r.req.URL, Expect{Release: r.rel.ID, Model: r.req.ServedName, ModelDigest: r.rel.ModelDigest, Image: r.req.Image})
	r.res.Verify = time.Since(t0)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("verify failed: %w", err)
	}
	r.d.logf("verified %s in %s", r.rel.ID, r.res.Verify.Round(time.Millisecond))
	r.d.hook("verified")
	return nil
}

// finish: the new release is live; retire the previous one (its image stays).
func (r *run) finish(ctx context.Context) error {
	cctx, cancel := fresh(ctx, 2*time.Minute)
	defer cancel()
	r.rel.Outcome, r.rel.Finished = Live, time.Now().UTC()
	if err := r.d.Target.Record(cctx, r.rel); err != nil {
		r.d.logf("warning: recording the outcome: %v", err)
	}
	r.d.event("live", r.rel, "")
	if r.oldInst != nil {
		if !r.oldStopped {
			if err := r.d.Target.Stop(cctx, r.oldInst); err != nil {
				r.d.logf("warning: %v", err)
			}
		}
		if err := r.d.Target.Remove(cctx, r.oldInst); err != nil {
			r.d.logf("warning: %v", err)
		}
	}
	if u, ok := r.d.Target.(RouterUpgrader); ok && r.newInst != nil {
		if err := u.UpgradeRouter(cctx, r.req.Env, r.newInst); err != nil {
			r.d.logf("warning: the gateway keeps its binary: %v", err)
		}
	}
	r.d.logf("release %s is live on %s", r.rel.ID, r.req.Env)
	return nil
}

// undo puts the previous release back and removes the new one. It returns
// a sentence saying what it did.
func (r *run) undo(ctx context.Context) (string, error) {
	d := r.d
	var did []string
	if r.old == nil {
		if r.newInst != nil {
			if err := d.Target.Remove(ctx, r.newInst); err != nil {
				return "", err
			}
		}
		return fmt.Sprintf("release %s removed; there was no previous release to go back to", r.rel.ID), nil
	}
	oldInst := r.oldInst
	resumed := false
	if !r.oldStopped && r.res.Plan.Strategy != Rolling {
		// The previous release's engine may have died meanwhile (a crash,
		// the OOM killer): start it again before traffic goes back to it.
		// (A rolling update has no separate previous instance: switching
		// back rolls the Deployment back.)
		if st, err := d.Target.Status(ctx, oldInst); err == nil && !st.Running {
			d.logf("previous release %s is not running (exit %d); starting it again", r.old.ID, st.ExitCode)
			in, err := d.Target.Resume(ctx, oldInst)
			if err != nil {
				return "", fmt.Errorf("previous release %s stopped and could not be started again: %w", r.old.ID, err)
			}
			oldInst = in
			if _, err := WaitReady(ctx, d.Target, in, r.res.Budget, d.out(), 5*time.Second); err != nil {
				return "", fmt.Errorf("previous release %s: %w", r.old.ID, err)
			}
			did = append(did, "previous release "+r.old.ID+" (its engine had stopped) started again")
			resumed = true
		}
	}
	if r.oldStopped {
		d.logf("starting release %s again", r.old.ID)
		if r.newInst != nil { // free its GPUs first
			if err := d.Target.Remove(ctx, r.newInst); err != nil {
				return "", err
			}
			r.newInst = nil
		}
		in, err := d.Target.Resume(ctx, r.oldInst)
		if err != nil {
			return "", err
		}
		oldInst = in
		if _, err := WaitReady(ctx, d.Target, in, r.res.Budget, d.out(), 5*time.Second); err != nil {
			return "", fmt.Errorf("previous release %s: %w", r.old.ID, err)
		}
		did = append(did, "previous release "+r.old.ID+" started again")
	}
	if r.switched || r.switchTried || r.oldStopped {
		if err := d.Target.Switch(ctx, r.req.Env, oldInst); err != nil {
			return "", err
		}
		if r.switched || r.oldStopped {
			did = append(did, "traffic switched back to "+r.old.ID)
		} else {
			did = append(did, "traffic confirmed on "+r.old.ID+" (the interrupted switch may have taken effect)")
		}
		d.event("rolled-back", r.old, "from "+r.rel.ID)
		r.res.RolledBack = true
	}
	if r.newInst != nil {
		if r.switched || r.switchTried {
			// Requests the new release took before the switch back finish
			// there first.
			if err := d.Target.WaitDrained(ctx, r.req.Env, r.newInst, r.drainTimeout()); err != nil {
				d.logf("warning: %v", err)
			}
			if err := d.Target.Stop(ctx, r.newInst); err != nil {
				d.logf("warning: %v", err)
			}
		}
		if err := d.Target.Remove(ctx, r.newInst); err != nil {
			return "", err
		}
	}
	did = append(did, "release "+r.rel.ID+" removed")
	if d.Verifier != nil && (r.switched || r.switchTried || r.oldStopped || resumed) {
		if err := d.Verifier.Verify(ctx, r.req.URL, Expect{Release: r.old.ID, Model: r.req.ServedName, ModelDigest: r.old.ModelDigest, Image: r.old.Image}); err != nil {
			return strings.Join(did, ", "), fmt.Errorf("previous release %s does not verify either: %w", r.old.ID, err)
		}
		did = append(did, r.old.ID+" verified again")
	}
	if !r.switchTried && !r.oldStopped && !resumed {
		did = append([]string{"previous release " + r.old.ID + " kept serving throughout"}, did...)
	}
	return strings.Join(did, ", "), nil
}

// liveRelease is the release the router points at, or nil.
func liveRelease(rels []*Release) *Release {
	for _, r := range rels {
		if r.Serving {
			return r
		}
	}
	return nil
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

func short(id string) string {
	if i := strings.IndexByte(id, ':'); i >= 0 && len(id) > i+13 {
		return id[:i+13]
	}
	return id
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return s
}

// describeGPUs is "2 × NVIDIA H100 80GB HBM3 (79.1 GiB free of 80.0 GiB, ...)".
func describeGPUs(devs []gpu.Device) string {
	if len(devs) == 0 {
		return "none"
	}
	parts := make([]string, len(devs))
	for i, d := range devs {
		parts[i] = fmt.Sprintf("%d %s %s (%s free of %s)", d.Index, d.UUID, d.Name, gib(int64(d.MemoryFree)), gib(int64(d.MemoryTotal)))
	}
	return fmt.Sprintf("%d GPU(s): %s", len(devs), strings.Join(parts, "; "))
}
