package deploy

import (
	"context"
	"errors"
	"fmt"
	"time"
)

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
			if req.LockTimeout > 0 {
				return nil, fmt.Errorf("%w; gave up after waiting %s (--lock-timeout); nothing was changed", err, req.LockTimeout)
			}
			return nil, fmt.Errorf("%w; nothing was changed (wait for it with --lock-timeout)", err)
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
