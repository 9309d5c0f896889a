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
// (it is what clients get); the log says so.
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
