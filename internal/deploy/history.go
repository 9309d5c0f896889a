package deploy

import (
	"context"
	"fmt"
	"slices"
)

// History lists the environment's releases, oldest first. A release that
// went live but no longer serves is reported Superseded.
func History(ctx context.Context, t Records, env string) ([]*Release, error) {
	rels, err := t.Releases(ctx, env)
	if err != nil {
		return nil, err
	}
	for _, r := range rels {
		if r.Outcome == Live && !r.Serving {
			r.Outcome = Superseded
		}
	}
	return rels, nil
}

// UnknownReleaseError says a rollback named a release the environment
// does not have (or no longer has: pruned).
type UnknownReleaseError struct {
	Env, Release string
}

func (e *UnknownReleaseError) Error() string {
	return fmt.Sprintf("environment %s has no release %s (releases older than the newest keep-releases are pruned)", e.Env, e.Release)
}

// RollbackRequest names the environment and, optionally, the release to go
// back to (default: the newest release before the serving one that went live).
type RollbackRequest struct {
	Request        // Env, ServedName, Port, URL, ... as for a deploy
	To      string // release id
}

// Rollback deploys an earlier release's image again (by content id: no
// pull, and a moved tag cannot change what comes back), with the same
// strategies, verify and safety as a deploy.
func (d *Deployer) Rollback(ctx context.Context, rr RollbackRequest) (*Result, error) {
	rels, err := d.Target.Releases(ctx, rr.Env)
	if err != nil {
		return nil, err
	}
	cur := liveRelease(rels)
	var to *Release
	if rr.To != "" {
		i := slices.IndexFunc(rels, func(r *Release) bool { return r.ID == rr.To })
		if i < 0 {
			return nil, &UnknownReleaseError{Env: rr.Env, Release: rr.To}
		}
		to = rels[i]
		if cur != nil && cur.ID == to.ID {
			return nil, fmt.Errorf("release %s is already serving %s", to.ID, rr.Env)
		}
	} else {
		// The same choice pruning keeps (Prunable), so it is always there.
		if to = RollbackTarget(rels); to == nil {
			return nil, fmt.Errorf("environment %s has no earlier live release to roll back to", rr.Env)
		}
	}
	req := rr.Request
	req.Image, req.ImageID, req.GitSHA, req.ModelDigest = to.Image, to.ImageID, to.GitSHA, to.ModelDigest
	req.What = "rollback to " + to.ID
	d.logf("rolling %s back to release %s (%s, deployed %s by %s)", rr.Env, to.ID, to.Image, to.DeployedAt.Format("2006-01-02 15:04"), to.DeployedBy)
	return d.Deploy(ctx, req)
}
