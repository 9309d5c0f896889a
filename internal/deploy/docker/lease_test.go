package docker_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/docker"
	"github.com/modelship/modelship/internal/testenv"
)

// The lock is a lease: held while its holder renews it; once the holder
// stops (killed, its container gone), it is free within the lease, not
// hours later, whoever the holder was (another machine, a container), and
// of two deploys taking it over only one gets it. A lock whose holder
// renews cannot be broken by `unlock`.
func TestLockLease(t *testing.T) {
	good, _ := images(t)
	e := newEnv(t)
	e.deploy(t, good.Tag)
	ctx := context.Background()
	img, err := e.target.Image(ctx, good.Tag)
	if err != nil {
		t.Fatal(err)
	}
	// A holder in another machine's container: its hostname is a
	// container id and its pid 1, which says nothing here.
	h := deploy.Holder{Who: "ci@runner", Host: "3f2a9c1d7e6b", PID: 1, Since: time.Now().UTC(), What: "deploy x:1", TTL: 3 * time.Second}
	lease, err := e.target.Lock(ctx, e.name, h, img)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ { // renewed for longer than its TTL: still held
		time.Sleep(time.Second)
		if err := lease.Renew(ctx); err != nil {
			t.Fatalf("renew %d: %v", i, err)
		}
	}
	var le *deploy.LockedError
	if _, err := e.target.BreakLock(ctx, e.name); !errors.As(err, &le) || le.Holder.Who != "ci@runner" {
		t.Fatalf("unlock while the holder renews: %v, want refused naming the holder", err)
	}
	// The holder stops renewing: within its TTL the lock is free, and of
	// two deploys taking it over exactly one wins.
	testenv.Eventually(t, 15*time.Second, "the unrenewed lock to expire", func() bool {
		expired, err := stale(ctx, e)
		return err == nil && expired
	})
	var wg sync.WaitGroup
	results := make([]error, 2)
	leases := make([]deploy.Lease, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			leases[i], results[i] = e.target.Lock(ctx, e.name, deploy.Holder{Who: []string{"bob", "carol"}[i], Host: "elsewhere", PID: 7, Since: time.Now().UTC(), What: "deploy"}, img)
		}()
	}
	wg.Wait()
	if (results[0] == nil) == (results[1] == nil) {
		t.Fatalf("two takers of a stale lock: %v and %v, want exactly one", results[0], results[1])
	}
	if err := lease.Renew(ctx); !errors.Is(err, deploy.ErrLockLost) {
		t.Errorf("the old holder renewing after a takeover: %v, want ErrLockLost", err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Errorf("the old holder releasing: %v", err)
	}
	if _, err := e.target.Lock(ctx, e.name, h, img); !errors.As(err, &le) {
		t.Errorf("the old holder's release removed the new holder's lock: %v", err)
	}
	for _, l := range leases {
		if l != nil {
			l.Release(ctx)
		}
	}
}

// stale reports whether the environment's lock may be taken over now.
func stale(ctx context.Context, e *env) (bool, error) {
	ctr, err := e.target.Client().ContainerInspect(ctx, "modelship-"+e.name+"-lock")
	if err != nil {
		return false, err
	}
	return ctr.State != nil && !ctr.State.Running, nil
}

// A deployer killed mid-deploy leaves its candidate running and its lock
// unrenewed. The next deploy waits for the lease to run out, takes the lock
// over, removes the orphan, records it abandoned (saying so in its log),
// and deploys; nothing of the dead deploy is left.
func TestDeadDeployerReconciled(t *testing.T) {
	good, _ := images(t)
	e := newEnv(t)
	first := e.deploy(t, good.Tag)
	ctx := context.Background()
	img, err := e.target.Image(ctx, "modelship-test/good:2")
	if err != nil {
		t.Fatal(err)
	}
	// The dead deployer: it took the lock (lease 3s), started its
	// candidate, and was killed before switching.
	dead := deploy.Holder{Who: "ci@runner", Host: "3f2a9c1d7e6b", PID: 1, Since: time.Now().UTC(), What: "deploy modelship-test/good:2", TTL: 3 * time.Second}
	if _, err := e.target.Lock(ctx, e.name, dead, img); err != nil {
		t.Fatal(err)
	}
	orphan := &deploy.Release{ID: deploy.NewReleaseID(time.Now(), 0x0dea), Env: e.name, Image: "modelship-test/good:2", ImageID: img.ID,
		DeployedBy: dead.Who, DeployedAt: time.Now().UTC(), Strategy: deploy.BlueGreen, Previous: first.Release.ID, Outcome: deploy.InProgress}
	env := deploy.ReleaseEnv(orphan, []string{"current"}, e.request("").Settings)
	if _, err := e.target.Start(ctx, &deploy.Spec{Release: orphan, Env: env, Port: 8000, LoadBudget: time.Minute, Engine: "sim"}); err != nil {
		t.Fatal(err)
	}
	if in, _ := e.target.Instance(ctx, e.name, orphan.ID); in == nil {
		t.Fatal("the orphan candidate is not running")
	}
	l := testenv.LoadLoop(e.url, 2)
	req := e.request("modelship-test/good:3")
	req.LockTimeout = time.Minute
	res, err := e.d.Deploy(ctx, req)
	reqs, fails, errs := l.Stop()
	if err != nil {
		t.Fatalf("deploy after a dead deployer: %v", err)
	}
	if fails != 0 {
		t.Errorf("%d of %d requests failed: %q", fails, reqs, errs)
	}
	log := e.log.String()
	for _, want := range []string{"waiting for the lock of " + e.name + ", held by ci@runner", "release " + orphan.ID + " was left in progress by a deployer that is gone", "marked abandoned", "freed no GPU before planning"} {
		if !strings.Contains(log, want) {
			t.Errorf("deploy log lacks %q:\n%s", want, log)
		}
	}
	if in, _ := e.target.Instance(ctx, e.name, orphan.ID); in != nil {
		t.Errorf("the orphan %s still exists", in.Name)
	}
	hist, err := deploy.History(ctx, e.target, e.name)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range hist {
		got = append(got, r.ID+"="+string(r.Outcome))
	}
	want := []string{first.Release.ID + "=" + string(deploy.Superseded), orphan.ID + "=" + string(deploy.Abandoned), res.Release.ID + "=" + string(deploy.Live)}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("history %v, want %v", got, want)
	}
	e.serving(t, "modelship-test/good:3")
}

// A deploy given a deadline (the CI stage's bound) stops its forward work
// early enough to undo in full before it: a release that never becomes
// ready is stopped at the deadline minus the undo budget, undone, and the
// whole deploy is over before the deadline; the previous release serves.
func TestDeadlineKeepsTheUndo(t *testing.T) {
	good, _ := images(t)
	cli, _ := testenv.Docker(t)
	never := testenv.ServingImage(t, cli, testenv.ImageNeverReady)
	e := newEnv(t)
	e.deploy(t, good.Tag)
	d := *e.d
	d.CleanupTimeout = 15 * time.Second
	d.Deadline = time.Now().Add(30 * time.Second)
	req := e.request(never.Tag)
	req.ReadyTimeout = 5 * time.Minute // the release's own budget is not what stops it
	start := time.Now()
	_, err := d.Deploy(context.Background(), req)
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "the deadline") || !strings.Contains(err.Error(), "15s to undo") {
		t.Fatalf("deploy past its deadline: %v, want stopped by the deadline, keeping 15s to undo", err)
	}
	if time.Now().After(d.Deadline) {
		t.Errorf("the deploy ended %s after its deadline (took %s)", time.Since(d.Deadline), took)
	}
	e.serving(t, good.Tag)
	if n := e.releaseContainers(t); n != 1 {
		t.Errorf("%d release containers, want only the previous one", n)
	}
	t.Logf("deadline 30s, undo budget 15s: stopped and undone in %s: %v", took.Round(time.Millisecond), err)
}

// The release the gateway points at restarts with the engine from the
// moment of the switch, before verify: a deployer killed in between
// leaves no gateway pointing at a container that a reboot does not bring
// back.
func TestSwitchedReleaseRestarts(t *testing.T) {
	good, _ := images(t)
	cli, _ := testenv.Docker(t)
	e := newEnv(t)
	e.deploy(t, good.Tag)
	d := *e.d
	var id, policy string
	d.Started = func(r *deploy.Release) { id = r.ID }
	d.Hook = func(step string) {
		if step == "switched" {
			c, err := cli.ContainerInspect(context.Background(), "modelship-"+e.name+"-"+id)
			if err == nil {
				policy = string(c.HostConfig.RestartPolicy.Name)
			}
		}
	}
	if _, err := d.Deploy(context.Background(), e.request("modelship-test/good:2")); err != nil {
		t.Fatal(err)
	}
	if policy != "unless-stopped" {
		t.Errorf("restart policy of the release at the switch, before verify: %q, want unless-stopped", policy)
	}
}

// lostAnswer switches for real and then, the first time, reports a
// failure, as when the deployer is interrupted or the answer is lost after
// the gateway switched.
type lostAnswer struct {
	*docker.Target
	calls *atomic.Int32
}

func (l lostAnswer) Switch(ctx context.Context, env string, in *deploy.Instance) error {
	if err := l.Target.Switch(ctx, env, in); err != nil {
		return err
	}
	if l.calls.Add(1) == 1 {
		return errors.New("the gateway's answer was lost")
	}
	return nil
}

// A switch whose answer is lost may have happened: the undo switches back
// before removing the new release, so the gateway never points at a
// removed container.
func TestLostSwitchAnswerIsUndone(t *testing.T) {
	good, _ := images(t)
	e := newEnv(t)
	e.deploy(t, good.Tag)
	d := *e.d
	d.Target = lostAnswer{e.target, new(atomic.Int32)}
	l := testenv.LoadLoop(e.url, 2)
	_, err := d.Deploy(context.Background(), e.request("modelship-test/good:2"))
	reqs, fails, errs := l.Stop()
	if err == nil || !strings.Contains(err.Error(), "answer was lost") || !strings.Contains(err.Error(), "traffic confirmed on") {
		t.Fatalf("deploy with a lost switch answer: %v", err)
	}
	if fails != 0 {
		t.Errorf("%d of %d requests failed: %q", fails, reqs, errs)
	}
	e.serving(t, good.Tag)
	if n := e.releaseContainers(t); n != 1 {
		t.Errorf("%d release containers, want only the previous one", n)
	}
}

// The previous release's engine dies while the new release is being
// verified; the new one fails verify: the undo starts the previous release
// again and puts it back, rather than pointing the gateway at nothing.
func TestDeadPreviousReleaseRestartedByUndo(t *testing.T) {
	good, regressed := images(t)
	cli, _ := testenv.Docker(t)
	e := newEnv(t)
	first := e.deploy(t, good.Tag)
	d := *e.d
	d.Hook = func(step string) {
		if step == "switched" {
			if err := cli.ContainerKill(context.Background(), "modelship-"+e.name+"-"+first.Release.ID, "KILL"); err != nil {
				t.Errorf("killing the previous release: %v", err)
			}
		}
	}
	_, err := d.Deploy(context.Background(), e.request(regressed.Tag))
	if err == nil || !strings.Contains(err.Error(), "verify failed") || !strings.Contains(err.Error(), "(its engine had stopped) started again") ||
		!strings.Contains(err.Error(), first.Release.ID+" verified again") {
		t.Fatalf("deploy of the regressed model with the previous engine dead: %v", err)
	}
	e.serving(t, good.Tag)
}
