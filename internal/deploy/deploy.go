package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/user"
	"slices"
	"strings"
	"time"

	"github.com/modelship/modelship/checkpoint"
	"github.com/modelship/modelship/gpu"
	"github.com/modelship/modelship/internal/analysis"
	"github.com/modelship/modelship/internal/fit"
	"github.com/modelship/modelship/internal/shadow"
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
	// Progress, when set, is called for each step of a canary or shadow
	// rollout (the ledger events shadow, canary-step, canary-aborted and
	// canary-promoted: the shadow step's verdict, each canary step that
	// passed, the abort, the promotion) with the release rolled out and
	// the step's detail, once the step is in the ledger: where a step's
	// notification goes out. Other events (started, switched, live, ...)
	// do not reach it; the stage's own notifications tell those.
	Progress func(name string, r *Release, detail string)
	// Deadline, when set, is when the whole deploy, its undo included, must
	// be over (the stage's own bound, past which it is killed): the
	// forward work stops early enough to leave the undo its full budget.
	Deadline time.Time
	// Synthetic, when set, sends analysis traffic (the benchmark's
	// prompts) to url until the returned stop is called: what a canary
	// step with too few requests uses when its Traffic is "synthetic".
	Synthetic func(ctx context.Context, url string) (stop func())
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
	Strategy string // auto, recreate, blue-green, rolling or canary
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
	// Canary configures strategy canary (nil otherwise); Shadow, when
	// set, mirrors traffic to the new release before any client sees it.
	Canary *CanarySpec
	Shadow *ShadowSpec
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
	// Rollout is what a canary or shadow rollout measured and decided;
	// nil for the other strategies.
	Rollout *Rollout
}

// Rollout is the record of a canary (and shadow) rollout for the report.
type Rollout struct {
	// Steps are the analysed steps in order, the deciding one last.
	Steps []analysis.Step
	// Shadow is the mirror's report when a shadow step ran.
	Shadow *shadow.Report
	// CanaryRequests and StableRequests are the requests each version
	// answered during the rollout (the canary's share is the traffic
	// exposed to it).
	CanaryRequests, StableRequests int
	// AbortAfter is, on an abort, the time from the canary's first
	// request to all traffic back on the serving release.
	AbortAfter time.Duration
	// Decision is one sentence: promoted, or why it was aborted.
	Decision string
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

// event appends one event to the ledger and hands a rollout's step to
// Progress.
func (d *Deployer) event(name string, r *Release, detail string) {
	if err := d.Ledger.Append(Event{Event: name, Release: r, Detail: detail}); err != nil {
		d.logf("warning: %v", err)
	}
	if d.Progress != nil && rolloutStep(name) {
		d.Progress(name, r, detail)
	}
}

// rolloutSteps are the ledger events a canary or shadow rollout records
// for its steps: what Deployer.Progress receives.
var rolloutSteps = []string{"shadow", "canary-step", "canary-aborted", "canary-promoted"}

// rolloutStep reports whether the ledger event name is one of rolloutSteps.
func rolloutStep(name string) bool { return slices.Contains(rolloutSteps, name) }

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
	if err := d.checkRollout(&req); err != nil {
		return nil, fmt.Errorf("deploy to %s: %w (nothing was changed)", req.Env, err)
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
	_, split := d.Target.(Splitter)
	if req.Canary != nil && !split {
		d.logf("target %s cannot split traffic: the canary steps are not run (strategy %s)", d.Target.Describe(), firstNonEmpty(req.Strategy, Auto))
	}
	placement := Placement{Engine: req.Engine, Strategy: req.Strategy, Model: req.Model, Fit: req.Fit, GPUs: req.GPUs, Current: liveRelease(rels),
		Canary: req.Canary != nil && split}
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
			return nil, &DeadlineError{Env: req.Env, Deadline: d.Deadline, Left: left, Undo: undo}
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

// DeadlineError says the deploy's deadline (Deployer.Deadline) leaves too
// little time for it once the time to undo it is kept; nothing was changed.
type DeadlineError struct {
	Env      string
	Deadline time.Time
	// Left is what the deadline leaves for the deploy, Undo what is kept
	// to undo it.
	Left, Undo time.Duration
}

func (e *DeadlineError) Error() string {
	return fmt.Sprintf("deploy to %s: its deadline (%s) leaves %s for the deploy once %s is kept to undo it (nothing was changed)",
		e.Env, e.Deadline.Format(time.RFC3339), e.Left.Round(time.Second), e.Undo)
}
