// Package waitready waits until a model service is ready, never silently:
// it says every so often how long it has waited and why the service is not
// ready yet, and past its budget it gives up with the last check's reason.
// The pipeline (ci/) runs it through `modelship wait-ready` before a
// validation, a benchmark or a smoke test of a service it has just started.
package waitready

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Options tune Wait.
type Options struct {
	// What names the service in the messages, e.g. its URL.
	What string
	// Budget bounds the wait; past it Wait returns a *TimeoutError.
	Budget time.Duration
	// Poll is the pause between checks; default 1s.
	Poll time.Duration
	// Say is how often a line says how long it has waited; default 10s.
	Say time.Duration
	// Log gets those lines (stderr); nil discards them.
	Log io.Writer
}

// TimeoutError is the end of a wait past its budget: how long it waited
// and the last check's reason.
type TimeoutError struct {
	What   string
	Waited time.Duration
	Budget time.Duration
	Last   error
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("model service %s not ready after %s (budget %s); last check: %v", e.What, e.Waited.Round(time.Second), e.Budget, e.Last)
}

func (e *TimeoutError) Unwrap() error { return e.Last }

// Wait calls check until it returns nil (ready), the budget is spent (a
// *TimeoutError) or ctx ends (its error). Each check gets ctx; bounding a
// single check is the check's business.
func Wait(ctx context.Context, check func(context.Context) error, opt Options) error {
	if opt.Budget <= 0 {
		return fmt.Errorf("wait for %s: budget %s: expected a positive duration", opt.What, opt.Budget)
	}
	if opt.Poll <= 0 {
		opt.Poll = time.Second
	}
	if opt.Say <= 0 {
		opt.Say = 10 * time.Second
	}
	if opt.Log == nil {
		opt.Log = io.Discard
	}
	start := time.Now()
	said := start
	for {
		err := check(ctx)
		waited := time.Since(start)
		if err == nil {
			fmt.Fprintf(opt.Log, "model service %s ready after %s\n", opt.What, waited.Round(time.Second))
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if waited >= opt.Budget {
			return &TimeoutError{What: opt.What, Waited: waited, Budget: opt.Budget, Last: err}
		}
		if time.Since(said) >= opt.Say {
			fmt.Fprintf(opt.Log, "waiting for model service %s: %s of %s; last check: %v\n", opt.What, waited.Round(time.Second), opt.Budget, err)
			said = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(opt.Poll, opt.Budget-waited)):
		}
	}
}

// IsTimeout reports whether err is a wait past its budget.
func IsTimeout(err error) bool {
	var te *TimeoutError
	return errors.As(err, &te)
}
