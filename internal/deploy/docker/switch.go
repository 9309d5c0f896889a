package docker

import (
	"context"
	"fmt"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"

	"github.com/modelship/modelship/internal/deploy"
)

// Switch points the gateway at in; the gateway checks in's /ready first.
func (t *Target) Switch(ctx context.Context, env string, in *deploy.Instance) error {
	// What the gateway points at comes back after a daemon restart or a
	// reboot, verified or not: otherwise a deployer killed between the
	// switch and verify leaves the gateway pointing at nothing.
	if _, err := t.cli.ContainerUpdate(ctx, in.ID, container.UpdateConfig{
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
	}); err != nil {
		return t.wrap(err, "setting release "+in.Release+" to restart unless stopped before the switch")
	}
	_, err := t.gatewayExec(ctx, env, "switch", "--to", in.Upstream, "--ready-timeout", t.opt.SwitchReadyTimeout.String())
	if err != nil {
		return fmt.Errorf("switching %s to release %s: %w", env, in.Release, err)
	}
	return nil
}

// WaitDrained waits until the gateway has nothing in flight to in.
func (t *Target) WaitDrained(ctx context.Context, env string, in *deploy.Instance, timeout time.Duration) error {
	_, err := t.gatewayExec(ctx, env, "wait-drained", "--upstream", in.Upstream, "--timeout", timeout.String())
	if err != nil {
		return fmt.Errorf("draining release %s: %w", in.Release, err)
	}
	return nil
}

// Stop stops the container (SIGTERM, StopTimeout to drain) and keeps it.
func (t *Target) Stop(ctx context.Context, in *deploy.Instance) error {
	secs := int(t.opt.StopTimeout / time.Second)
	err := t.cli.ContainerStop(ctx, in.ID, container.StopOptions{Timeout: &secs})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	return t.wrap(err, "stopping "+in.Name)
}

// Resume starts a stopped release again (its image is still on disk).
func (t *Target) Resume(ctx context.Context, in *deploy.Instance) (*deploy.Instance, error) {
	if err := t.startContainer(ctx, in.ID); err != nil {
		return nil, t.wrap(err, "starting "+in.Name+" again")
	}
	out, err := t.Instance(ctx, in.Env, in.Release)
	if err == nil && out == nil {
		err = fmt.Errorf("release %s vanished while starting again", in.Release)
	}
	return out, err
}

// Remove deletes the container; its image stays.
func (t *Target) Remove(ctx context.Context, in *deploy.Instance) error {
	err := t.cli.ContainerRemove(ctx, in.ID, container.RemoveOptions{Force: true})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	return t.wrap(err, "removing "+in.Name)
}
