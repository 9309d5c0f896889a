package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/modelship/modelship/internal/config"
	"github.com/modelship/modelship/internal/smoke"
	"github.com/modelship/modelship/notify"
	"github.com/modelship/modelship/serving"
	"github.com/modelship/modelship/serving/stage"
)

func init() {
	register(command{name: "smoke", summary: "check a deployed endpoint: model listed, one generation, /version digest and image", run: stageCommand("smoke", smokeUsage, "", runSmoke)})
}

// smokeUsage is modelship smoke --help, before the flags.
const smokeUsage = `Usage: modelship smoke --endpoint URL | --env NAME [--model NAME] [--expect-digest D] [--expect-image REF] [--timeout 60s] [--json]

Checks a deployed endpoint, typically right after a switch:
  models      GET /v1/models lists the served model (--model, else the first)
  generation  one chat completion (temperature 0, max_tokens 8) answers 200
              with non-empty content
  version     GET /version (modelship serve) reports --expect-digest and
              --expect-image; without them it only reports what is serving
Each check is printed with its result and the reason.

Exit codes: 0 every check passed, 1 a check failed, 2 usage, 3 the endpoint
did not answer (inconclusive).

Flags:
`

// smokeFlags are modelship smoke's flags.
type smokeFlags struct {
	endpoint, keyEnv, cfgFile, envName string
	opt                                smoke.Options
	kube                               kubeFlags
}

func (f *smokeFlags) flags(fs *flag.FlagSet) {
	fs.StringVar(&f.endpoint, "endpoint", "", "base `URL` of the deployment, with or without /v1, e.g. http://host:8000 (default: the --env environment's url; on Kubernetes its Service through the API server)")
	fs.StringVar(&f.opt.Model, "model", "", "served model `name` /v1/models must list (default: the first one listed)")
	fs.StringVar(&f.opt.ExpectDigest, "expect-digest", "", "model `digest` (sha256:...) GET /version must report")
	fs.StringVar(&f.opt.ExpectImage, "expect-image", "", "image `reference` GET /version must report")
	fs.DurationVar(&f.opt.Timeout, "timeout", smoke.DefaultTimeout, "bound on the whole smoke test")
	fs.StringVar(&f.keyEnv, "api-key-env", "", "environment `variable` holding an API key to send as a Bearer token (the key is never printed; default: the --env environment's serving.api-key, else $VLLM_API_KEY)")
	fs.StringVar(&f.cfgFile, "config", "", "modelship.yaml `file` whose notifications: section is told the verify stage's outcome (default: modelship.yaml when there is one)")
	fs.StringVar(&f.envName, "env", "", "`environment` of the config the endpoint belongs to (staging, production): for the events, and the endpoint when --endpoint is not given")
	f.kube.register(fs)
}

func runSmoke(ctx context.Context, f *smokeFlags, pos []string, s stdio, sr *stageRun) int {
	if len(pos) > 0 {
		return sr.bad("unexpected argument %q (use --endpoint URL)", pos[0])
	}
	closeTarget, code := f.resolveEndpoint(s, sr)
	if code != exitOK {
		return code
	}
	defer closeTarget()
	if code := f.check(sr); code != exitOK {
		return code
	}
	return smokeStage(ctx, f, s, sr)
}

// resolveEndpoint sets the endpoint from --env when --endpoint is not
// given; call the function returned when done with it.
func (f *smokeFlags) resolveEndpoint(s stdio, sr *stageRun) (func(), int) {
	if f.endpoint != "" {
		if f.kube != (kubeFlags{}) {
			return nil, sr.bad("--kubeconfig and --kube-server go with --env (the endpoint is then the environment's Service), not with --endpoint")
		}
		return func() {}, exitOK
	}
	if f.envName == "" {
		return nil, sr.bad("--endpoint URL or --env NAME is required")
	}
	url, closeTarget, err := envEndpoint(firstSet(f.cfgFile, config.DefaultFile), f.envName, f.kube, s)
	if err != nil {
		return nil, sr.bad("%v", err)
	}
	f.endpoint = url
	return closeTarget, exitOK
}

// check checks the endpoint and the timeout and resolves the API key: the
// --api-key-env variable, else the environment's serving.api-key, else
// (in a serving container: its health check) the container's key.
func (f *smokeFlags) check(sr *stageRun) int {
	if _, err := smoke.ParseEndpoint(f.endpoint); err != nil {
		return sr.bad("--endpoint: %v", err)
	}
	if f.opt.Timeout <= 0 {
		return sr.bad("--timeout must be positive")
	}
	switch {
	case f.keyEnv != "":
		if f.opt.APIKey = os.Getenv(f.keyEnv); f.opt.APIKey == "" {
			return sr.bad("--api-key-env: $%s is empty or not set", f.keyEnv)
		}
	case f.envName != "":
		key, err := envAPIKey(firstSet(f.cfgFile, config.DefaultFile), f.envName)
		if err != nil {
			return sr.bad("%v", err)
		}
		f.opt.APIKey = key
	default:
		f.opt.APIKey = os.Getenv(serving.EnvAPIKey)
	}
	sr.ga.Mask(f.opt.APIKey)
	return exitOK
}

// smokeStage runs the checks as the verify stage: its events, the checks
// printed, the Actions output and annotations, and the verdict.
func smokeStage(ctx context.Context, f *smokeFlags, s stdio, sr *stageRun) int {
	if code := smokeEvents(f.cfgFile, f.envName, &f.opt, s, sr); code != exitOK {
		return code
	}
	sr.start()
	sr.res.Endpoint = redactURL(f.endpoint)
	res, err := smoke.Run(ctx, f.endpoint, f.opt)
	if err != nil {
		fmt.Fprintf(s.err, "modelship smoke: %v\n", err)
		if errors.Is(err, smoke.ErrUnreachable) {
			sr.ga.Smoke(nil)
			sr.decide(stage.Inconclusive, err.Error())
			return exitInconclusive
		}
		sr.decide(stage.Invalid, err.Error())
		return exitUsage
	}
	printSmoke(s.out, res)
	sr.ga.Smoke(res)
	sr.figure("checks_total", float64(len(res.Checks)))
	sr.figure("checks_passed", float64(len(res.Checks)-len(res.Failed())))
	sr.decide(stage.Of(res.Passed), smokeMessage(res))
	return sr.res.ExitCode
}

// printSmoke prints each check with its result and the reason.
func printSmoke(w io.Writer, res *smoke.Result) {
	fmt.Fprintf(w, "smoke %s (model %s)\n", res.Endpoint, smokeOrDash(res.Model))
	for _, c := range res.Checks {
		fmt.Fprintf(w, "  %-7s  %-10s  %s\n", c.Status, c.Name, c.Detail)
	}
	if res.Passed {
		fmt.Fprintln(w, "passed")
	} else {
		fmt.Fprintf(w, "FAILED: %d check(s) failed\n", len(res.Failed()))
	}
}

// envEndpoint is where environment name of file is reached: its url, or
// for a Kubernetes environment without one, its Service through the API
// server's service proxy (valid until the returned func is called).
func envEndpoint(file, name string, kube kubeFlags, s stdio) (string, func(), error) {
	cfg, err := config.Load(file)
	if err != nil {
		return "", nil, err
	}
	env, err := cfg.Environment(name)
	if err != nil {
		return "", nil, err
	}
	if env.URL != "" {
		return env.URL, func() {}, kube.check(name, env)
	}
	_, url, closeTarget, err := newTarget(cfg, name, env, kube, s.err, nil)
	if err != nil {
		return "", nil, err
	}
	return url, closeTarget, nil
}

// envAPIKey is the API key environment name's endpoint requires
// (serving.api-key, resolved), "" when the config gives none or there is no
// config file.
func envAPIKey(file, name string) (string, error) {
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	cfg, err := config.Load(file)
	if err != nil {
		return "", err
	}
	return cfg.ServingSecret(name, "api-key", nil)
}

func smokeOrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// smokeEvents reads --config (when given; else modelship.yaml when there is
// one) for the verify stage's events.
func smokeEvents(file, env string, opt *smoke.Options, s stdio, sr *stageRun) int {
	var cfg *config.Config
	if file != "" {
		c, err := config.Load(file)
		if err != nil {
			return sr.bad("%v", err)
		}
		cfg = c
	}
	cfg = eventsConfig(cfg, s.err)
	sr.ga.MaskSecrets(cfg)
	ev := sr.events(cfg, notify.StageVerify)
	ev.Event.Environment, ev.Event.ModelDigest, ev.Event.Image = env, opt.ExpectDigest, opt.ExpectImage
	ev.Event.ImageDigest = pinnedDigest(opt.ExpectImage)
	ev.Event.Model = firstSet(opt.Model, ev.Event.Model)
	return exitOK
}

// smokeMessage names the checks that failed, or says all passed.
func smokeMessage(res *smoke.Result) string {
	failed := res.Failed()
	if len(failed) == 0 {
		return fmt.Sprintf("%d checks passed", len(res.Checks))
	}
	parts := make([]string, len(failed))
	for i, c := range failed {
		parts[i] = c.Name + ": " + c.Detail
	}
	return strings.Join(parts, "; ")
}
