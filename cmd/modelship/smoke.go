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
	"github.com/modelship/modelship/internal/gha"
	"github.com/modelship/modelship/internal/smoke"
	"github.com/modelship/modelship/notify"
	"github.com/modelship/modelship/serving"
	"github.com/modelship/modelship/serving/stage"
)

func init() {
	register(command{name: "smoke", summary: "check a deployed endpoint: model listed, one generation, /version digest and image", run: stageCommand("smoke", runSmoke)})
}

func runSmoke(ctx context.Context, args []string, s stdio, sr *stageRun) int {
	fs := flag.NewFlagSet("smoke", flag.ContinueOnError)
	fs.SetOutput(s.err)
	endpoint := fs.String("endpoint", "", "base `URL` of the deployment, with or without /v1, e.g. http://host:8000 (default: the --env environment's url; on Kubernetes its Service through the API server)")
	var opt smoke.Options
	fs.StringVar(&opt.Model, "model", "", "served model `name` /v1/models must list (default: the first one listed)")
	fs.StringVar(&opt.ExpectDigest, "expect-digest", "", "model `digest` (sha256:...) GET /version must report")
	fs.StringVar(&opt.ExpectImage, "expect-image", "", "image `reference` GET /version must report")
	fs.DurationVar(&opt.Timeout, "timeout", smoke.DefaultTimeout, "bound on the whole smoke test")
	keyEnv := fs.String("api-key-env", "", "environment `variable` holding an API key to send as a Bearer token (the key is never printed; default: the --env environment's serving.api-key, else $VLLM_API_KEY)")
	asJSON := fs.Bool("json", false, "print the stage result (docs/STAGE-RESULT.md) as one line of JSON on stdout; the checks go to stderr")
	cfgFile := fs.String("config", "", "modelship.yaml `file` whose notifications: section is told the verify stage's outcome (default: modelship.yaml when there is one)")
	envName := fs.String("env", "", "`environment` of the config the endpoint belongs to (staging, production): for the events, and the endpoint when --endpoint is not given")
	var kube kubeFlags
	kube.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: modelship smoke --endpoint URL | --env NAME [--model NAME] [--expect-digest D] [--expect-image REF] [--timeout 60s] [--json]

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
`)
		fs.PrintDefaults()
	}
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	s = sr.output(s, *asJSON)
	if len(pos) > 0 {
		fmt.Fprintf(s.err, "modelship smoke: unexpected argument %q (use --endpoint URL)\n", pos[0])
		return exitUsage
	}
	if *endpoint == "" {
		if *envName == "" {
			fmt.Fprintln(s.err, "modelship smoke: --endpoint URL or --env NAME is required")
			return exitUsage
		}
		url, closeTarget, err := envEndpoint(firstSet(*cfgFile, config.DefaultFile), *envName, kube, s)
		if err != nil {
			fmt.Fprintf(s.err, "modelship smoke: %v\n", err)
			return exitUsage
		}
		defer closeTarget()
		*endpoint = url
	} else if kube != (kubeFlags{}) {
		fmt.Fprintln(s.err, "modelship smoke: --kubeconfig and --kube-server go with --env (the endpoint is then the environment's Service), not with --endpoint")
		return exitUsage
	}
	if _, err := smoke.ParseEndpoint(*endpoint); err != nil {
		fmt.Fprintf(s.err, "modelship smoke: --endpoint: %v\n", err)
		return exitUsage
	}
	if opt.Timeout <= 0 {
		fmt.Fprintln(s.err, "modelship smoke: --timeout must be positive")
		return exitUsage
	}
	if *keyEnv != "" {
		opt.APIKey = os.Getenv(*keyEnv)
		if opt.APIKey == "" {
			fmt.Fprintf(s.err, "modelship smoke: --api-key-env: $%s is empty or not set\n", *keyEnv)
			return exitUsage
		}
	}
	switch {
	case opt.APIKey != "":
	case *envName != "":
		// The environment's serving.api-key, when its config gives one.
		key, err := envAPIKey(firstSet(*cfgFile, config.DefaultFile), *envName)
		if err != nil {
			fmt.Fprintf(s.err, "modelship smoke: %v\n", err)
			return exitUsage
		}
		opt.APIKey = key
	default:
		// In a serving container (its health check), the container's key.
		opt.APIKey = os.Getenv(serving.EnvAPIKey)
	}
	ga := gha.FromEnv(s.out, s.err) // with --json, s.out is stderr
	ga.Mask(opt.APIKey)
	ev, code := smokeEvents(*cfgFile, *envName, &opt, ga, s)
	if code != exitOK {
		return code
	}
	defer ev.Close(ctx)
	ev.Start()
	sr.res.Endpoint = redactURL(*endpoint)
	res, err := smoke.Run(ctx, *endpoint, opt)
	if err != nil {
		ev.Finish(notify.StatusFailed, err.Error())
		fmt.Fprintf(s.err, "modelship smoke: %v\n", err)
		if errors.Is(err, smoke.ErrUnreachable) {
			ga.Smoke(nil)
			sr.decide(stage.Inconclusive, err.Error())
			return exitInconclusive
		}
		return exitUsage
	}
	printSmoke(s.out, res)
	ga.Smoke(res)
	msg := smokeMessage(res)
	ev.Finish(gateStatus(res.Passed), msg)
	sr.figure("checks_total", float64(len(res.Checks)))
	sr.figure("checks_passed", float64(len(res.Checks)-len(res.Failed())))
	sr.decide(stage.Of(res.Passed), msg)
	return sr.res.ExitCode
}

// printSmoke prints each check with its result and the reason.
func printSmoke(w io.Writer, res *smoke.Result) {
	fmt.Fprintf(w, "smoke %s (model %s)\n", res.Endpoint, smokeOrDash(res.Model))
	for _, c := range res.Checks {
		fmt.Fprintf(w, "  %-4s  %-10s  %s\n", c.Status, c.Name, c.Detail)
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
	_, url, closeTarget, err := newTarget(name, env, kube, s.err, nil)
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
func smokeEvents(file, env string, opt *smoke.Options, ga *gha.Actions, s stdio) (*stageNotifier, int) {
	var cfg *config.Config
	if file != "" {
		c, err := config.Load(file)
		if err != nil {
			fmt.Fprintf(s.err, "modelship smoke: %v\n", err)
			return nil, exitUsage
		}
		cfg = c
	}
	cfg = eventsConfig(cfg, s.err)
	ga.MaskSecrets(cfg)
	ev := stageEvents(cfg, notify.StageVerify, ga, s.err)
	ev.Event.Environment, ev.Event.ModelDigest, ev.Event.Image = env, opt.ExpectDigest, opt.ExpectImage
	ev.Event.ImageDigest = pinnedDigest(opt.ExpectImage)
	ev.Event.Model = firstSet(opt.Model, ev.Event.Model)
	return ev, exitOK
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
