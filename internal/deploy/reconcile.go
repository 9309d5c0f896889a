package deploy

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// reconcile cleans up after deploys whose deployer is gone: under the
// lock no other deploy runs, so a release still in progress was left by a
// deployer that was killed (or lost its lock). Its instance is removed
// (on Kubernetes a rolling update is rolled back), it is recorded as
// abandoned, and the GPUs it held are free for the plan that follows. A
// release left in progress that the router already serves keeps serving
// (it is what clients get); the log says so. A release left mid-canary
// first gets its share of the traffic (and any mirror) back to the
// serving release.
func (d *Deployer) reconcile(ctx context.Context, env string) error {
	rels, err := d.Target.Releases(ctx, env)
	if err != nil {
		return err
	}
	for _, r := range rels {
		if r.Serving {
			if r.Outcome == InProgress {
				d.logf("warning: release %s serves %s but the deploy that started it never finished (its deployer is gone); it keeps serving until this deploy replaces it", r.ID, env)
			}
			continue
		}
		in, err := d.Target.Instance(ctx, env, r.ID)
		if err != nil {
			return err
		}
		if r.Outcome != InProgress {
			// A finished release still running beside the serving one: its
			// deployer recorded the outcome and was stopped before it
			// removed the instance. (A rolling release has no instance of
			// its own: the Deployment is the serving one's.)
			if in == nil || r.Strategy == Rolling {
				continue
			}
			st, err := d.Target.Status(ctx, in)
			if err != nil {
				return err
			}
			if !st.Running {
				continue
			}
			if err := d.Target.Remove(ctx, in); err != nil {
				return fmt.Errorf("removing release %s (%s), still running beside the serving one: %w (nothing of this deploy was started)", r.ID, r.Outcome, err)
			}
			d.event("removed-orphan", r, "still running beside the serving release")
			d.logf("release %s (%s) was still running beside the serving release (its deployer was stopped before removing it): removed", r.ID, r.Outcome)
			continue
		}
		if sp, ok := d.Target.(Splitter); ok && r.Strategy == Canary {
			// Its deployer was killed mid-canary: the router may still
			// send a share of the traffic (or a mirror) to it.
			if err := clearSplit(ctx, sp, env); err != nil {
				return fmt.Errorf("release %s was left mid-canary by a deployer that is gone: %w (nothing of this deploy was started)", r.ID, err)
			}
			d.logf("release %s was left mid-canary by a deployer that is gone: cleared the traffic split and the mirror, all of %s's traffic is on the serving release", r.ID, env)
		}
		if in != nil {
			if err := d.Target.Remove(ctx, in); err != nil {
				return fmt.Errorf("removing release %s, left in progress by a deployer that is gone: %w (nothing of this deploy was started)", r.ID, err)
			}
		}
		r.Outcome, r.Finished = Abandoned, time.Now().UTC()
		r.Reason = "its deploy stopped without finishing (the deployer was killed or lost its lock); the next deploy removed it"
		if err := d.Target.Record(ctx, r); err != nil {
			return err
		}
		d.event("abandoned", r, r.Reason)
		freed := "no GPU"
		if len(r.GPUs) > 0 {
			freed = fmt.Sprintf("%d GPU(s) %s", len(r.GPUs), strings.Join(r.GPUs, ","))
		}
		d.logf("release %s was left in progress by a deployer that is gone (%s, since %s): removed it, marked abandoned; freed %s before planning",
			r.ID, r.DeployedBy, r.DeployedAt.Format(time.RFC3339), freed)
	}
	return nil
}
