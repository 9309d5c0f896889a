package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/modelship/modelship/internal/deploy"
)

func init() {
	register(command{name: "unlock", summary: "remove an environment's deploy lock whose holder no longer renews it (refused while the holder is alive)", run: runUnlock})
}

const unlockUsage = `Usage: modelship unlock --env NAME [--config modelship.yaml]

A deploy holds its environment's lock as a lease (a minute), renewed every
15s while it runs. A deployer that was killed stops renewing, and the next
deploy takes the lock over by itself once the lease has run out (and
cleans up the release the dead deploy left in progress). unlock removes such
a lock at once. It refuses, changing nothing, while the holder still renews
it: stop that deploy instead (Ctrl-C or SIGTERM undoes what it did).

Exit codes: 0 removed (or there was no lock), 1 the holder is alive or the
target failed, 2 usage.

Flags:
`

func runUnlock(ctx context.Context, args []string, s stdio) int {
	var f envTargetFlags
	tg, closeTarget, code := f.parse("unlock", unlockUsage, args, s, nil)
	if tg == nil {
		return code
	}
	defer closeTarget()
	lb, ok := tg.(deploy.LockBreaker)
	if !ok {
		fmt.Fprintf(s.err, "modelship unlock: target %s cannot break locks\n", tg.Describe())
		return exitFailed
	}
	held, err := lb.BreakLock(ctx, f.env)
	var le *deploy.LockedError
	switch {
	case errors.As(err, &le):
		fmt.Fprintf(s.err, "modelship unlock: refused: %v. Its holder is alive; stop that deploy instead.\n", err)
		return exitFailed
	case err != nil:
		fmt.Fprintf(s.err, "modelship unlock: %v%s\n", err, hint(err))
		return exitFailed
	case held == nil:
		fmt.Fprintf(s.out, "%s has no deploy lock\n", f.env)
	default:
		fmt.Fprintf(s.out, "removed the lock of %s held by %s (lease %s, not renewed); the next deploy cleans up any release it left in progress (%s)\n",
			f.env, held, held.LeaseTTL(), time.Now().UTC().Format(time.RFC3339))
	}
	return exitOK
}
