package main

import (
	"errors"
	"fmt"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/kubernetes"
)

// hint is what the command line adds to a deploy error: the flag (or the
// Dagger function's argument) that changes the outcome, which the deploy
// packages know nothing about. "" when err calls for none.
func hint(err error) string {
	var (
		lw *deploy.LockWaitError
		de *deploy.DeadlineError
		tc *deploy.TwoCopiesError
		ur *deploy.UnknownReleaseError
		lb *kubernetes.LoopbackServerError
	)
	switch {
	case errors.As(err, &lw) && lw.Waited > 0:
		return "; wait longer with --lock-timeout"
	case errors.As(err, &lw):
		return " (wait for it with --lock-timeout)"
	case errors.As(err, &de):
		return "; give it more time (--deadline)"
	case errors.As(err, &tc):
		return "; use --strategy recreate (downtime) or auto"
	case errors.As(err, &ur):
		return fmt.Sprintf("; see modelship history --env %s", ur.Env)
	case errors.As(err, &lb):
		return " (modelship --kube-server, or kubeServer of the Dagger functions)"
	}
	return ""
}

// withHint is err with its hint at the end of its message (errors.Is and
// As still see err); nil stays nil.
func withHint(err error) error {
	if h := hint(err); h != "" {
		return &hinted{err: err, hint: h}
	}
	return err
}

type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() + h.hint }
func (h *hinted) Unwrap() error { return h.err }
