package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"

	"github.com/modelship/modelship/internal/deploy"
)

// Lock takes the environment's lock: the container modelship-ENV-lock,
// running `modelship lock-hold` (the image's own binary) for the
// holder's TTL after each renewal. Its name makes it exclusive; it runs
// while the holder renews it, so a lock whose container has exited (or
// whose holder's process on this machine is gone) is stale and removed by
// its container id, never by name: of two deploys taking a stale lock
// over, one creates the new container and the other is told who holds it.
func (t *Target) Lock(ctx context.Context, env string, h deploy.Holder, img *deploy.ImageInfo) (deploy.Lease, error) {
	bin, err := binaryOf(img)
	if err != nil {
		return nil, err
	}
	hj, _ := json.Marshal(h)
	name := lockName(env)
	for attempt := 0; ; attempt++ {
		if attempt == 8 {
			return nil, fmt.Errorf("taking the lock of %s: it keeps changing hands; try again", env)
		}
		created, err := t.cli.ContainerCreate(ctx, &container.Config{
			Image: img.ID, Entrypoint: []string{bin, "lock-hold", "--ttl", h.LeaseTTL().String()}, Cmd: []string{},
			Labels: map[string]string{LabelRole: roleLock, deploy.LabelEnv: env, LabelHolder: string(hj)},
		}, &container.HostConfig{NetworkMode: "none"}, nil, nil, name)
		if err == nil {
			l := &lease{t: t, env: env, id: created.ID}
			if err := t.startContainer(ctx, created.ID); err != nil {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				defer cancel()
				_ = l.Release(rctx)
				return nil, t.wrap(err, "starting the lock of "+env)
			}
			return l, nil
		}
		if !cerrdefs.IsConflict(err) {
			return nil, t.wrap(err, "taking the lock of "+env)
		}
		held, ins, err := t.lockState(ctx, env)
		if err != nil {
			return nil, err
		}
		if ins == nil {
			// Released meanwhile, or another deploy's create holds the
			// name but has not finished: look again in a moment.
			if err := deploy.Sleep(ctx, time.Duration(attempt+1)*100*time.Millisecond); err != nil {
				return nil, err
			}
			continue
		}
		if !lockStale(held, ins) {
			return nil, &deploy.LockedError{Env: env, Holder: held, Renewed: lockRenewed(ins)}
		}
		if err := t.cli.ContainerRemove(ctx, ins.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return nil, t.wrap(err, "removing the stale lock of "+env)
		}
	}
}

// lockState reads the lock container (nil when there is none).
func (t *Target) lockState(ctx context.Context, env string) (deploy.Holder, *container.InspectResponse, error) {
	var held deploy.Holder
	ins, err := t.cli.ContainerInspect(ctx, lockName(env))
	if cerrdefs.IsNotFound(err) {
		return held, nil, nil
	}
	if err != nil {
		return held, nil, t.wrap(err, "reading the lock of "+env)
	}
	if ins.Config != nil {
		_ = json.Unmarshal([]byte(ins.Config.Labels[LabelHolder]), &held)
	}
	return held, &ins, nil
}

// lockStale: the lock container no longer runs (its lease expired, or it
// was never started and is older than a start takes), or the holder's
// process on this machine is gone.
func lockStale(h deploy.Holder, ins *container.InspectResponse) bool {
	if ins.State != nil && !ins.State.Running {
		created, _ := time.Parse(time.RFC3339Nano, ins.Created)
		return ins.State.Status != "created" || time.Since(created) > 30*time.Second
	}
	return h.Stale(time.Now()) // running: renewed; only a dead local process makes it stale
}

// lockRenewed is the last time the lock container was known alive.
func lockRenewed(ins *container.InspectResponse) time.Time {
	if ins.State != nil && ins.State.Running {
		return time.Now()
	}
	return time.Time{}
}

// BreakLock removes the environment's lock when its container no longer
// runs (deploy.LockBreaker).
func (t *Target) BreakLock(ctx context.Context, env string) (*deploy.Holder, error) {
	held, ins, err := t.lockState(ctx, env)
	if err != nil || ins == nil {
		return nil, err
	}
	if !lockStale(held, ins) {
		return nil, &deploy.LockedError{Env: env, Holder: held, Renewed: lockRenewed(ins)}
	}
	if err := t.cli.ContainerRemove(ctx, ins.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return nil, t.wrap(err, "removing the lock of "+env)
	}
	return &held, nil
}

// lease is a held Docker lock: its container, by id.
type lease struct {
	t   *Target
	env string
	id  string
}

// Renew signals the lock's process (SIGUSR1), which extends it.
func (l *lease) Renew(ctx context.Context) error {
	err := l.t.cli.ContainerKill(ctx, l.id, "USR1")
	if cerrdefs.IsNotFound(err) || (err != nil && strings.Contains(err.Error(), "is not running")) {
		return fmt.Errorf("%w: the lock container of %s is gone or stopped (its lease ran out)", deploy.ErrLockLost, l.env)
	}
	return l.t.wrap(err, "renewing the lock of "+l.env)
}

// Release removes the lock's container, by id: a lock someone else took
// over is left alone.
func (l *lease) Release(ctx context.Context) error {
	err := l.t.cli.ContainerRemove(ctx, l.id, container.RemoveOptions{Force: true})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	return l.t.wrap(err, "releasing the lock of "+l.env)
}
