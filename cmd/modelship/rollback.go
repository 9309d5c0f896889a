package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/notify"
)

func init() {
	register(command{name: "rollback", summary: "put an earlier release of an environment back, verified, without a pull", run: stageCommand("rollback", rollbackUsage, "", runRollback)})
}

// rollbackUsage is modelship rollback --help, before the flags.
const rollbackUsage = `Usage: modelship rollback --env NAME [--to RELEASE] [--config modelship.yaml]

Deploys an earlier release's image again, by content digest (on Docker its
image is still on the host: no pull; on Kubernetes the pods run
REPO@sha256:DIGEST as the nodes reported it; either way a moved tag cannot
change what comes back), with the same strategy choice, readiness wait,
verify and automatic undo as modelship deploy — except that an
environment's canary steps and shadow step are skipped (the release goes
back in one switch: it already served; --strategy canary keeps them).

Flags:
`

// rollbackOptions are rollback's flags: deploy's and the release to go to.
type rollbackOptions struct {
	deployFlags
	to string
}

func (o *rollbackOptions) flags(fs *flag.FlagSet) {
	o.register(fs)
	fs.StringVar(&o.to, "to", "", "`release` id to go back to (default: the newest earlier release that went live; see modelship history)")
}

func runRollback(ctx context.Context, o *rollbackOptions, pos []string, s stdio, sr *stageRun) int {
	f, to := &o.deployFlags, o.to
	if len(pos) > 0 {
		return sr.bad("unexpected argument %q", pos[0])
	}
	d, req, closeFn, code := deploySetup(ctx, f, s, "rollback")
	if code != exitOK {
		return code
	}
	defer closeFn()
	req = withoutRollout(req, f.strategy, s)
	res, err := deployStage(ctx, f, s, sr, d, req, notify.StageRollback, func(ctx context.Context) (*deploy.Result, error) {
		return d.Rollback(ctx, deploy.RollbackRequest{Request: req, To: to})
	})
	if err != nil {
		fmt.Fprintf(s.err, "modelship rollback: %v\n", err)
		return exitFailed
	}
	printResult(s.out, res)
	return exitOK
}

// withoutRollout is a rollback's request: the environment's canary and
// shadow steps dropped (auto then chooses blue-green or recreate from the
// GPU plan), unless --strategy canary asked for them.
func withoutRollout(req deploy.Request, strategy string, s stdio) deploy.Request {
	if req.Canary == nil || strategy == deploy.Canary {
		return req
	}
	fmt.Fprintln(s.err, "rollback: the environment's canary steps are skipped (the release already served); --strategy canary runs them")
	req.Canary, req.Shadow = nil, nil
	if req.Strategy == deploy.Canary {
		req.Strategy = deploy.Auto
	}
	return req
}
