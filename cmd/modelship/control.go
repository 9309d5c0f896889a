package main

import (
	"context"
	"fmt"
	"time"

	"github.com/modelship/modelship/internal/config"
	"github.com/modelship/modelship/internal/deploy"
)

// The commands that steer a running canary or shadow rollout.
var controls = []struct {
	name, summary, does string
}{
	{"promote", "end an environment's running canary now: all traffic to the new release at its next analysis",
		"it sends all traffic to the new release at its next analysis, skipping the steps left"},
	{"abort", "end an environment's running canary now: all traffic back to the serving release, the new one removed",
		"it sends all traffic back to the serving release at its next analysis and removes the new one (the deploy ends rolled back)"},
	{"resume", "let an environment's canary go on past a step that paused for approval (canary.steps[].pause)",
		"it goes on to the next step at its next analysis, once the paused step has passed"},
}

func init() {
	for _, c := range controls {
		register(command{name: c.name, summary: c.summary, run: func(ctx context.Context, args []string, s stdio) int {
			return runControl(ctx, c.name, c.does, args, s)
		}})
	}
}

// controlUsage is modelship ACTION --help, before the flags (%[1]s the
// action).
const controlUsage = `Usage: modelship %[1]s --env NAME [--config modelship.yaml]

Asks the canary rollout running in the environment (a deploy with
strategy canary, or auto with a canary block) to %[1]s. The deploy acts on
it at its next analysis (canary.interval, default 10s):

  promote  all traffic to the new release, skipping the steps left (a
           step that fails its analysis first still aborts; during the
           shadow step, promote waits for the first canary step);
  abort    all traffic back to the serving release, the new release
           removed: the deploy ends rolled back (also during the shadow
           step);
  resume   a step with pause: true goes on to the next step once it has
           passed.

Canaries run through a Docker target's gateway, or on Kubernetes by
replica ratio. Exit codes: 0 asked, 1 no rollout is running in the
environment (the target says so) or the target failed, 2 usage.

Flags:
`

// runControl is modelship ACTION: the environment's target opened as
// unlock and history open it, then askRollout.
func runControl(ctx context.Context, action, does string, args []string, s stdio) int {
	var f envTargetFlags
	tg, closeTarget, code := f.parse(action, fmt.Sprintf(controlUsage, action), args, s, nil)
	if tg == nil {
		return code
	}
	defer closeTarget()
	return askRollout(ctx, s, tg, f.env, action, does, analysisInterval(f.cfgFile, f.env))
}

// askRollout asks target tg's rollout in environment env for action and
// says what it will do (does) and within how long.
func askRollout(ctx context.Context, s stdio, tg deploy.Target, env, action, does string, within time.Duration) int {
	sp, ok := tg.(deploy.Splitter)
	if !ok {
		fmt.Fprintf(s.err, "modelship %s: target %s cannot steer a rollout: it splits no traffic\n", action, tg.Describe())
		return exitFailed
	}
	if err := sp.SetControl(ctx, env, action); err != nil {
		fmt.Fprintf(s.err, "modelship %s: %v\n", action, err)
		return exitFailed
	}
	fmt.Fprintf(s.out, "asked the rollout on %s to %s: %s (within %s)\n", env, action, does, within)
	return exitOK
}

// analysisInterval is environment env's canary.interval (the default
// when the file has no canary block): how soon the rollout acts on a
// request.
func analysisInterval(file, env string) time.Duration {
	if cfg, err := config.Load(file); err == nil {
		if e := cfg.Environments[env]; e != nil && e.Canary != nil {
			return time.Duration(e.Canary.Interval)
		}
	}
	return config.DefaultCanaryInterval
}
