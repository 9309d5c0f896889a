package docker

import (
	"context"
	"errors"
	"fmt"
	"slices"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"github.com/modelship/modelship/internal/deploy"
)

// Record writes the release's outcome as a never-started container's
// labels. A release that went live is also set to restart unless stopped,
// like the gateway, so both come back after a daemon restart or a reboot
// (while the deploy watched it, it ran without restarts: a crash had to
// show).
func (t *Target) Record(ctx context.Context, r *deploy.Release) error {
	if r.Outcome == deploy.Live {
		_, err := t.cli.ContainerUpdate(ctx, releaseName(r.Env, r.ID), container.UpdateConfig{
			RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
		})
		if err != nil && !cerrdefs.IsNotFound(err) {
			return t.wrap(err, "setting release "+r.ID+" to restart unless stopped")
		}
	}
	name := recordName(r.Env, r.ID)
	if err := t.cli.ContainerRemove(ctx, name, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return t.wrap(err, "replacing record "+name)
	}
	labels := r.Labels()
	labels[LabelRole] = roleRecord
	_, err := t.cli.ContainerCreate(ctx, &container.Config{
		Image: r.ImageID, Entrypoint: []string{"/modelship-record"}, Labels: labels,
	}, &container.HostConfig{NetworkMode: "none"}, nil, nil, name)
	return t.wrap(err, "writing record "+name)
}

// Releases lists the environment's releases from records and release
// containers, marking the one the gateway serves.
func (t *Target) Releases(ctx context.Context, env string) ([]*deploy.Release, error) {
	list, err := t.cli.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", deploy.LabelEnv+"="+env))})
	if err != nil {
		return nil, t.wrap(err, "listing the containers of "+env)
	}
	byID := map[string]*deploy.Release{}
	for _, c := range list {
		role := c.Labels[LabelRole]
		if role != roleRelease && role != roleRecord {
			continue
		}
		r, err := deploy.ReleaseFromLabels(c.Labels)
		if err != nil {
			continue // not ours to judge; history lists what it can read
		}
		if prev, ok := byID[r.ID]; ok && role == roleRelease && prev.Outcome != deploy.InProgress {
			continue // the record's outcome wins
		}
		byID[r.ID] = r
	}
	var out []*deploy.Release
	for _, r := range byID {
		out = append(out, r)
	}
	deploy.SortReleases(out)
	if st, err := t.GatewayState(ctx, env); err == nil && st.Active != "" {
		for _, r := range out {
			if fmt.Sprintf("http://%s:%d", releaseName(env, r.ID), ServePort) == st.Active {
				r.Serving = true
			}
		}
	}
	return out, nil
}

// Prune deletes the dropped releases of env (deploy.Pruner): the release
// container when one is left (stopped; a running one is left alone with
// its record and reported), the record, then each dropped release's image
// by content id, without force, unless a kept release or the gateway uses
// it. The engine itself refuses to delete an image a container still
// uses (another environment's) or one with several tags; such images stay
// quietly. A release the gateway serves is never touched.
func (t *Target) Prune(ctx context.Context, env string, drop []*deploy.Release) error {
	rels, err := t.Releases(ctx, env)
	if err != nil {
		return err
	}
	dropped := map[string]bool{}
	for _, r := range drop {
		dropped[r.ID] = true
	}
	// Images that stay whatever happens: the kept releases' and the
	// gateway's (its container's image and its tag).
	keep := map[string]bool{}
	for _, r := range rels {
		if !dropped[r.ID] {
			keep[r.ImageID] = true
		}
	}
	gw := gatewayName(env)
	if ins, err := t.cli.ContainerInspect(ctx, gw); err == nil {
		keep[ins.Image] = true
	} else if !cerrdefs.IsNotFound(err) {
		return t.wrap(err, "inspecting the gateway "+gw+" (to keep its image)")
	}
	if img, err := t.cli.ImageInspect(ctx, gatewayTag(env)); err == nil {
		keep[img.ID] = true
	} else if !cerrdefs.IsNotFound(err) {
		return t.wrap(err, "inspecting the gateway image "+gatewayTag(env)+" (to keep it)")
	}
	var errs []error
	var images []string
	for _, r := range drop {
		if i := slices.IndexFunc(rels, func(x *deploy.Release) bool { return x.ID == r.ID }); i >= 0 && rels[i].Serving {
			errs = append(errs, fmt.Errorf("release %s serves %s: not pruned", r.ID, env))
			continue
		}
		if err := t.pruneContainers(ctx, env, r.ID); err != nil {
			errs = append(errs, fmt.Errorf("release %s: %w", r.ID, err))
			continue
		}
		if r.ImageID != "" && !keep[r.ImageID] && !slices.Contains(images, r.ImageID) {
			images = append(images, r.ImageID)
		}
	}
	// Images last: two dropped releases may share one.
	for _, id := range images {
		_, err := t.cli.ImageRemove(ctx, id, image.RemoveOptions{Force: false, PruneChildren: false})
		if err == nil || cerrdefs.IsNotFound(err) || cerrdefs.IsConflict(err) {
			continue // removed, already gone, or still used / tagged elsewhere
		}
		errs = append(errs, t.wrap(err, "removing image "+id))
	}
	return errors.Join(errs...)
}

// pruneContainers removes a release's container (unless it runs) and
// then its record, so that the release is not half there: with the record
// gone, a left container would show the release in progress again.
func (t *Target) pruneContainers(ctx context.Context, env, release string) error {
	name := releaseName(env, release)
	ins, err := t.cli.ContainerInspect(ctx, name)
	switch {
	case cerrdefs.IsNotFound(err):
	case err != nil:
		return t.wrap(err, "inspecting "+name)
	case ins.State != nil && (ins.State.Running || ins.State.Restarting):
		return fmt.Errorf("its container %s is running: left it and its record (stop it, then the next deploy prunes it)", name)
	default:
		// No force: a container started meanwhile is refused, not killed.
		if err := t.cli.ContainerRemove(ctx, name, container.RemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			return t.wrap(err, "removing "+name)
		}
	}
	rec := recordName(env, release)
	if err := t.cli.ContainerRemove(ctx, rec, container.RemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
		return t.wrap(err, "removing record "+rec)
	}
	return nil
}

// Destroy removes everything the target created for env (tests, teardown).
func (t *Target) Destroy(ctx context.Context, env string) error {
	list, err := t.cli.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", deploy.LabelEnv+"="+env))})
	if err != nil {
		return t.wrap(err, "listing the containers of "+env)
	}
	for _, c := range list {
		if err := t.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return t.wrap(err, "removing "+c.ID)
		}
	}
	_ = t.cli.NetworkRemove(ctx, networkName(env))
	_ = t.cli.VolumeRemove(ctx, gatewayName(env), true)
	// Untag only: the image stays while other tags or releases use it.
	_, _ = t.cli.ImageRemove(ctx, gatewayTag(env), image.RemoveOptions{})
	return nil
}
