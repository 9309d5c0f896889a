package deploy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Pruner is implemented by targets that can delete what they keep of old
// releases (records, stopped instances, images no longer used), so that
// history does not fill the host's disk or the cluster's namespace.
// Deploy and Rollback call it, under the environment's lock, with the
// releases Prunable chose; a target must still never delete what the
// environment serves.
type Pruner interface {
	// Prune deletes the dropped releases of env: their records, their
	// instances when left (stopped), and on a host with images, their
	// images when nothing kept uses them. It goes on after a failure and
	// returns every failure, naming the release.
	Prune(ctx context.Context, env string, drop []*Release) error
}

// pruneTimeout bounds pruning after a deploy (removing a many-GB image
// takes a while).
const pruneTimeout = 5 * time.Minute

// Prunable returns the releases of rels (oldest first, as Target.Releases
// returns them) to drop so that the newest keep remain: every release but
// the newest keep, except the serving one, the one a rollback would go back
// to (RollbackTarget) and any release still in progress, which are always
// kept. When no release is marked serving although some went live (the
// target could not tell which one serves), nothing is dropped. A keep below
// 1 drops nothing.
func Prunable(rels []*Release, keep int) []*Release {
	if keep < 1 || len(rels) <= keep {
		return nil
	}
	cur := liveRelease(rels)
	if cur == nil && slices.ContainsFunc(rels, wentLive) {
		return nil
	}
	back := RollbackTarget(rels)
	var drop []*Release
	for _, r := range rels[:len(rels)-keep] {
		if r == cur || r == back || r.Outcome == InProgress || r.Serving {
			continue
		}
		drop = append(drop, r)
	}
	return drop
}

// RollbackTarget is the release a rollback that names none goes back to: the
// newest release that went live and does not serve, deployed before the
// serving one (any, when none serves); nil when there is none.
func RollbackTarget(rels []*Release) *Release {
	cur := liveRelease(rels)
	for i := len(rels) - 1; i >= 0; i-- {
		r := rels[i]
		if wentLive(r) && !r.Serving && (cur == nil || r.DeployedAt.Before(cur.DeployedAt)) {
			return r
		}
	}
	return nil
}

// wentLive: the release took the traffic once (Live as stored, Superseded
// as History reports it).
func wentLive(r *Release) bool { return r.Outcome == Live || r.Outcome == Superseded }

// prune drops the environment's oldest releases beyond req.KeepReleases
// when the target can (Pruner). It runs after the outcome was recorded,
// under the lock, with its own bounded context (the deploy's may be
// cancelled); a failure is a warning, never the deploy's.
func (d *Deployer) prune(ctx context.Context, req Request) {
	p, ok := d.Target.(Pruner)
	if !ok || req.KeepReleases <= 0 {
		return
	}
	cctx, cancel := fresh(ctx, pruneTimeout)
	defer cancel()
	rels, err := d.Target.Releases(cctx, req.Env)
	if err != nil {
		d.logf("warning: not pruning old releases of %s: %v", req.Env, err)
		return
	}
	drop := Prunable(rels, req.KeepReleases)
	if len(drop) == 0 {
		return
	}
	perr := p.Prune(cctx, req.Env, drop)
	// Say what is gone, read back from the target: with a failure, some of
	// drop may be gone and some not.
	gone := drop
	if perr != nil {
		if after, err := d.Target.Releases(cctx, req.Env); err == nil {
			gone = nil
			for _, r := range drop {
				if !slices.ContainsFunc(after, func(a *Release) bool { return a.ID == r.ID }) {
					gone = append(gone, r)
				}
			}
		} else {
			gone = nil
		}
	}
	if len(gone) > 0 {
		ids := make([]string, len(gone))
		for i, r := range gone {
			ids[i] = r.ID
			d.event("pruned", r, fmt.Sprintf("keep-releases %d", req.KeepReleases))
		}
		noun := "releases"
		if len(gone) == 1 {
			noun = "release"
		}
		d.logf("pruned %d old %s: %s (keep-releases %d)", len(gone), noun, strings.Join(ids, ", "), req.KeepReleases)
	}
	if perr != nil {
		d.logf("warning: pruning old releases of %s (the deploy is not affected): %v", req.Env, oneLine(perr.Error()))
	}
}
