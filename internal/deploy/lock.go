package deploy

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// LockWaitError says another deploy held the environment's lock for as
// long as this one could wait for it (Request.LockTimeout); nothing was
// changed. It wraps the *LockedError that names the holder.
type LockWaitError struct {
	Locked *LockedError
	// Waited is how long the deploy waited; 0: it did not wait.
	Waited time.Duration
}

func (e *LockWaitError) Error() string {
	if e.Waited > 0 {
		return fmt.Sprintf("%v; gave up after waiting %s; nothing was changed", e.Locked, e.Waited)
	}
	return fmt.Sprintf("%v; nothing was changed", e.Locked)
}

func (e *LockWaitError) Unwrap() error { return e.Locked }

func (d *Deployer) lock(ctx context.Context, req Request, img *ImageInfo, h Holder) (Lease, error) {
	deadline := time.Now().Add(req.LockTimeout)
	said := false
	for {
		lease, err := d.Target.Lock(ctx, req.Env, h, img)
		var le *LockedError
		if !errors.As(err, &le) {
			return lease, err
		}
		if time.Now().After(deadline) {
			return nil, &LockWaitError{Locked: le, Waited: req.LockTimeout}
		}
		if !said {
			d.logf("waiting for the lock of %s, held by %s", req.Env, le.Holder)
			said = true
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("interrupted while waiting for the lock of %s: nothing was changed", req.Env)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// renew keeps the lease while the deploy runs: a renewal every quarter of
// ttl. If the lock turns out to be someone else's (this process was
// stopped for longer than the lease), the returned context is cancelled:
// the deploy stops and undoes what it did, as for an interrupt.
func (d *Deployer) renew(ctx context.Context, env string, lease Lease, ttl time.Duration) (context.Context, func()) {
	if ttl <= 0 {
		ttl = DefaultLockTTL
	}
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(ttl / 4)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			rctx, rcancel := context.WithTimeout(ctx, ttl/4)
			err := lease.Renew(rctx)
			rcancel()
			switch {
			case errors.Is(err, ErrLockLost):
				d.logf("LOCK LOST: %v; stopping this deploy", err)
				cancel(fmt.Errorf("deploy to %s interrupted: %w", env, err))
				return
			case err != nil && ctx.Err() == nil:
				d.logf("warning: renewing the lock of %s: %v (retrying; the lease lasts %s)", env, err, ttl)
			}
		}
	}()
	return ctx, func() { close(done); cancel(nil) }
}
