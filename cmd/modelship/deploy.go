package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
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
	register(command{name: "deploy", summary: "deploy an image to an environment: blue-green, recreate or canary, verify, roll back on failure", run: stageCommand("deploy", deployUsage, "", runDeploy)})
}

// deployGPUs lists the GPUs deploy places models on; tests replace it.
var deployGPUs deploy.GPUSource = deploy.DetectGPUs

// deployFlags are the flags deploy and rollback share.
type deployFlags struct {
	env, config, strategy, ledger string
	lockTimeout, readyTimeout     time.Duration
	deadline, lockTTL             time.Duration
	logFormat                     string
	kube                          kubeFlags

	cfg *config.Config // set by deploySetup: notifications, secrets to mask
}

func (f *deployFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.env, "env", "", "`environment` of modelship.yaml to deploy to (required), e.g. staging or production")
	fs.StringVar(&f.config, "config", config.DefaultFile, "modelship.yaml `file`")
	fs.StringVar(&f.strategy, "strategy", "", "auto, recreate, blue-green, rolling (kubernetes) or canary (docker: the environment's canary steps, else 10, 50 and 100%) (default: the environment's strategy; auto on Docker: blue-green when two copies fit in GPU memory; on Kubernetes: rolling)")
	fs.StringVar(&f.ledger, "ledger", deploy.DefaultLedgerPath(), "JSONL `file` every release event is appended to, for audit")
	fs.DurationVar(&f.lockTimeout, "lock-timeout", 0, "wait this long for another deploy to the environment to finish (0: fail at once, naming who holds it)")
	fs.DurationVar(&f.lockTTL, "lock-ttl", deploy.DefaultLockTTL, "the deploy lock's lease: renewed every quarter of it; if this process is killed, the next deploy may take the lock over this long after the last renewal")
	fs.DurationVar(&f.deadline, "deadline", 0, "end the whole command, an undo included, within this long (what kills it past a bound, a CI stage, should allow a little more): the deploy stops early enough to leave its undo the full budget (0: no deadline)")
	fs.DurationVar(&f.readyTimeout, "ready-timeout", 0, "load budget for the new release (0: the environment's ready-timeout, else 60s + 30s per GiB of weights)")
	fs.StringVar(&f.logFormat, "log-format", "", "progress `format` on stderr: text (as is) or json (structured log lines) (default: text on a terminal, JSON elsewhere; or $MODELSHIP_LOG_FORMAT)")
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
	d := &deploy.Deployer{GPUs: deployGPUs, Ledger: &deploy.Ledger{Path: f.ledger}, Out: s.err}
	notes := writerFunc(func(p []byte) (int, error) { return d.Out.Write(p) })
	creds, err := cfg.RegistryCredentials(nil)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	tg, targetURL, closeTarget, err := newTarget(cfg, f.env, env, f.kube, notes, creds)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	d.Target = tg
	req, checks, err := deployRequest(ctx, f, cfg, env, targetURL, s)
	if err != nil {
		closeTarget()
		return fail(exitUsage, "%v", err)
	}
	d.Verifier = checks
	if err := wireRollout(d, &req, cfg, env); err != nil { // rollback drops it again (withoutRollout)
		closeTarget()
		return fail(exitUsage, "%v", err)
	}
	if f.deadline > 0 {
		d.Deadline = time.Now().Add(f.deadline)
	}
	if f.lockTTL == 0 {
		f.lockTTL = deploy.DefaultLockTTL
	}
	if f.lockTTL < time.Second {
		closeTarget()
		return fail(exitUsage, "--lock-ttl: expected at least 1s, got %s", f.lockTTL)
	}
	d.LockTTL = f.lockTTL
	return d, req, closeTarget, exitOK
}

// deployRequest is the request every deploy of environment env shares, and
// the verify step's checks: the smoke checks with the environment's API key,
// then suites.smoke (else suites.validation) of cfg.
func deployRequest(ctx context.Context, f *deployFlags, cfg *config.Config, env *config.Environment, targetURL string, s stdio) (deploy.Request, *deploy.Checks, error) {
	settings := cfg.ServingFor(f.env)
	secrets, err := cfg.EngineSecrets(f.env, nil)
	if err != nil {
		return deploy.Request{}, nil, err
	}
	req := deploy.Request{
		Env: f.env, Engine: cfg.Serving.Engine, ServedName: cfg.Model.ServedName, ServedAliases: cfg.Model.Aliases, GPUs: env.GPUs,
		Port: env.Port, URL: firstSet(env.URL, targetURL), LockTimeout: f.lockTimeout,
		ReadyTimeout: time.Duration(env.ReadyTimeout),
		Strategy:     firstSet(f.strategy, env.Strategy),
		KeepReleases: env.KeepReleases,
		Settings:     settings,
		Secrets:      secrets,
		Fit:          fit.FromSettings(settings),
	}
	if f.readyTimeout > 0 {
		req.ReadyTimeout = f.readyTimeout
	}
	// The checkpoint sizes the load budget and the GPU fit, and its digest is
	// what /version must report when the image carries no digest label.
	if p := cfg.ModelPath(); p != "" {
		info, _, _, err := inspectCheckpoint(ctx, p, true, true, "", 0, terminalErr(s.err))
		switch {
		case err == nil:
			req.Model, req.ModelDigest = info, info.Digest
		case cfg.Serving.Engine == "vllm":
			return req, nil, fmt.Errorf("%s: model.path: %v", f.config, err)
		}
	}
	checks := &deploy.Checks{APIKey: secrets[serving.EnvAPIKey]}
	if file := firstSet(cfg.Suites.Smoke, cfg.Suites.Validation); file != "" {
		st, err := suite.Load(cfg.Rel(file))
		if err != nil {
			return req, nil, fmt.Errorf("verify suite: %v", err)
		}
		checks.Suite = st
	}
	return req, checks, nil
}

func firstSet(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// deployUsage is modelship deploy --help, before the flags.
const deployUsage = `Usage: modelship deploy --env NAME --image REF [--config modelship.yaml] [--git-sha SHA] [--strategy S]

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
`

// deployOptions are deploy's flags: those it shares with rollback, and the image.
type deployOptions struct {
	deployFlags
	image, gitSHA string
}

func (o *deployOptions) flags(fs *flag.FlagSet) {
	o.register(fs)
	fs.StringVar(&o.image, "image", "", "serving image `reference` to deploy (required)")
	fs.StringVar(&o.gitSHA, "git-sha", os.Getenv("GITHUB_SHA"), "git `commit` the image was built from, for /version and history (default $GITHUB_SHA)")
}

func runDeploy(ctx context.Context, o *deployOptions, pos []string, s stdio, sr *stageRun) int {
	f, image, gitSHA := &o.deployFlags, o.image, o.gitSHA
	if len(pos) > 0 {
		return sr.bad("unexpected argument %q", pos[0])
	}
	if image == "" {
		return sr.bad("--image REF is required")
	}
	d, req, closeFn, code := deploySetup(ctx, f, s, "deploy")
	if code != exitOK {
		return code
	}
	defer closeFn()
	req.Image, req.GitSHA = image, gitSHA
	res, err := deployStage(ctx, f, s, sr, d, req, notify.StageDeploy, func(ctx context.Context) (*deploy.Result, error) { return d.Deploy(ctx, req) })
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
