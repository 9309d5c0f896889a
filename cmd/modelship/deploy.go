package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/modelship/modelship/internal/config"
	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/fit"
	"github.com/modelship/modelship/internal/logging"
	"github.com/modelship/modelship/notify"
	"github.com/modelship/modelship/serving"
	"github.com/modelship/modelship/suite"
)

func init() {
	register(command{name: "deploy", summary: "deploy an image to an environment: blue-green or recreate, verify, roll back on failure", run: stageCommand("deploy", runDeploy)})
}

// deployGPUs lists the GPUs deploy places models on; tests replace it.
var deployGPUs deploy.GPUSource = deploy.DetectGPUs

// deployFlags are the flags deploy and rollback share.
type deployFlags struct {
	env, config, strategy, ledger string
	lockTimeout, readyTimeout     time.Duration
	deadline, lockTTL             time.Duration
	logFormat                     string
	asJSON                        bool
	kube                          kubeFlags

	cfg *config.Config // set by deploySetup: notifications, secrets to mask
}

func (f *deployFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.env, "env", "", "`environment` of modelship.yaml to deploy to (required), e.g. staging or production")
	fs.StringVar(&f.config, "config", config.DefaultFile, "modelship.yaml `file`")
	fs.StringVar(&f.strategy, "strategy", "", "auto, recreate, blue-green or rolling (kubernetes) (default: the environment's strategy; auto on Docker: blue-green when two copies fit in GPU memory; on Kubernetes: rolling)")
	fs.StringVar(&f.ledger, "ledger", deploy.DefaultLedgerPath(), "JSONL `file` every release event is appended to, for audit")
	fs.DurationVar(&f.lockTimeout, "lock-timeout", 0, "wait this long for another deploy to the environment to finish (0: fail at once, naming who holds it)")
	fs.DurationVar(&f.lockTTL, "lock-ttl", deploy.DefaultLockTTL, "the deploy lock's lease: renewed every quarter of it; if this process is killed, the next deploy may take the lock over this long after the last renewal")
	fs.DurationVar(&f.deadline, "deadline", 0, "end the whole command, an undo included, within this long (what kills it past a bound, a CI stage, should allow a little more): the deploy stops early enough to leave its undo the full budget (0: no deadline)")
	fs.DurationVar(&f.readyTimeout, "ready-timeout", 0, "load budget for the new release (0: the environment's ready-timeout, else 60s + 30s per GiB of weights)")
	fs.StringVar(&f.logFormat, "log-format", "", "progress `format` on stderr: text (as is) or json (structured log lines) (default: text on a terminal, JSON elsewhere; or $MODELSHIP_LOG_FORMAT)")
	fs.BoolVar(&f.asJSON, "json", false, "print the stage result (docs/STAGE-RESULT.md) as one line of JSON on stdout; the summary goes to stderr")
	f.kube.register(fs)
}

// deploySetup reads the config and builds the deployer and the request
// fields every deploy of the environment shares.
func deploySetup(ctx context.Context, f *deployFlags, s stdio, name string) (*deploy.Deployer, deploy.Request, func(), int) {
	fail := func(code int, format string, a ...any) (*deploy.Deployer, deploy.Request, func(), int) {
		fmt.Fprintf(s.err, "modelship %s: "+format+"\n", append([]any{name}, a...)...)
		return nil, deploy.Request{}, nil, code
	}
	if f.env == "" {
		return fail(exitUsage, "--env NAME is required")
	}
	if _, err := logging.ParseFormat(f.logFormat); err != nil {
		return fail(exitUsage, "--log-format: %v", err)
	}
	cfg, err := config.Load(f.config)
	if err != nil {
		fmt.Fprintln(s.err, err)
		return nil, deploy.Request{}, nil, exitUsage
	}
	f.cfg = cfg
	env, err := cfg.Environment(f.env)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	// The target's notes (Kubernetes: the surge chosen, the Deployment
	// applied) go wherever the deployer's progress goes, set below or later.
	var d *deploy.Deployer
	notes := writerFunc(func(p []byte) (int, error) {
		if d == nil || d.Out == nil {
			return s.err.Write(p)
		}
		return d.Out.Write(p)
	})
	creds, err := cfg.RegistryCredentials(nil)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	tg, targetURL, closeTarget, err := newTarget(f.env, env, f.kube, notes, creds)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	settings := cfg.ServingFor(f.env)
	secrets, err := cfg.EngineSecrets(f.env, nil)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	req := deploy.Request{
		Env: f.env, Engine: cfg.Serving.Engine, ServedName: cfg.Model.ServedName, ServedAliases: cfg.Model.Aliases, GPUs: env.GPUs,
		Port: env.Port, URL: firstSet(env.URL, targetURL), LockTimeout: f.lockTimeout,
		ReadyTimeout: time.Duration(env.ReadyTimeout),
		Strategy:     env.Strategy,
		KeepReleases: env.KeepReleases,
		Settings:     settings,
		Secrets:      secrets,
		Fit:          fit.FromSettings(settings),
	}
	if f.strategy != "" {
		req.Strategy = f.strategy
	}
	if f.readyTimeout > 0 {
		req.ReadyTimeout = f.readyTimeout
	}
	// The checkpoint sizes the load budget and the GPU fit, and its digest is
	// what /version must report when the image carries no digest label.
	if p := cfg.ModelPath(); p != "" {
		info, _, _, err := inspectCheckpoint(ctx, p, true, true, "", 0, s.err)
		switch {
		case err == nil:
			req.Model, req.ModelDigest = info, info.Digest
		case cfg.Serving.Engine == "vllm":
			return fail(exitUsage, "%s: model.path: %v", f.config, err)
		}
	}
	checks := &deploy.Checks{APIKey: secrets[serving.EnvAPIKey]}
	if file := firstSet(cfg.Suites.Smoke, cfg.Suites.Validation); file != "" {
		if !filepath.IsAbs(file) {
			file = filepath.Join(filepath.Dir(cfg.File), file)
		}
		st, err := suite.Load(file)
		if err != nil {
			return fail(exitUsage, "verify suite: %v", err)
		}
		checks.Suite = st
	}
	d = &deploy.Deployer{Target: tg, GPUs: deployGPUs, Verifier: checks, Ledger: &deploy.Ledger{Path: f.ledger}, Out: s.err}
	if f.deadline > 0 {
		d.Deadline = time.Now().Add(f.deadline)
	}
	if f.lockTTL == 0 {
		f.lockTTL = deploy.DefaultLockTTL
	}
	if f.lockTTL < time.Second {
		return fail(exitUsage, "--lock-ttl: expected at least 1s, got %s", f.lockTTL)
	}
	d.LockTTL = f.lockTTL
	return d, req, closeTarget, exitOK
}

func firstSet(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

func runDeploy(ctx context.Context, args []string, s stdio, sr *stageRun) int {
	fs := flag.NewFlagSet("deploy", flag.ContinueOnError)
	fs.SetOutput(s.err)
	var f deployFlags
	f.register(fs)
	image := fs.String("image", "", "serving image `reference` to deploy (required)")
	gitSHA := fs.String("git-sha", os.Getenv("GITHUB_SHA"), "git `commit` the image was built from, for /version and history (default $GITHUB_SHA)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: modelship deploy --env NAME --image REF [--config modelship.yaml] [--git-sha SHA] [--strategy S]

Deploys REF to the environment's Docker host (environments.NAME.docker.host,
else DOCKER_HOST) or Kubernetes cluster (environments.NAME.kubernetes: a
Deployment and a Service; rolling or blue-green; the kubeconfig from
kubernetes.kubeconfig, KUBECONFIG or ~/.kube/config, or in-cluster). The model must fit in free GPU memory (checked before
anything is stopped); auto runs blue-green when two copies fit, else
recreate. The new release must answer /ready (health, the served name in
/v1/models, one generation) within its load budget; then traffic switches
at the environment's port and verify runs there (smoke: /v1/models, a
generation, /version digest and image; then suites.smoke or
suites.validation). If anything fails, or on Ctrl-C, the previous release
is put back and verified again, and the command exits 1 saying what failed.

Flags:
`)
		fs.PrintDefaults()
	}
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	s = sr.output(s, f.asJSON)
	if len(pos) > 0 {
		fmt.Fprintf(s.err, "modelship deploy: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	if *image == "" {
		fmt.Fprintln(s.err, "modelship deploy: --image REF is required")
		return exitUsage
	}
	d, req, closeFn, code := deploySetup(ctx, &f, s, "deploy")
	if code != exitOK {
		return code
	}
	defer closeFn()
	req.Image, req.GitSHA = *image, *gitSHA
	res, done, err := deployStage(ctx, &f, s, sr, d, req, notify.StageDeploy, func(ctx context.Context) (*deploy.Result, error) { return d.Deploy(ctx, req) })
	defer done()
	if err != nil {
		fmt.Fprintf(s.err, "modelship deploy: %v\n", err)
		return exitFailed
	}
	printResult(s.out, res)
	return exitOK
}

func printResult(w io.Writer, res *deploy.Result) {
	r := res.Release
	fmt.Fprintf(w, "release %s live on %s: %s (%s, %s)\n", r.ID, r.Env, r.Image, res.Plan.Strategy, orDash(r.ModelDigest))
	fmt.Fprintf(w, "  ready after %s, switched %s after ready", res.ReadyAfter.Round(time.Millisecond), res.SwitchAfterReady.Round(time.Millisecond))
	if res.Previous != nil {
		fmt.Fprintf(w, ", previous release %s drained %s after the switch", res.Previous.ID, res.DrainedAfter.Round(time.Millisecond))
	}
	fmt.Fprintf(w, ", verified in %s\n", res.Verify.Round(time.Millisecond))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
