package docker_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/docker"
	"github.com/modelship/modelship/internal/testenv"
)

// serving checks the public endpoint serves image (and, when set, digest).
func (e *env) serving(t *testing.T, image string) {
	t.Helper()
	if v := e.version(t); v.Image != image {
		t.Errorf("/version image %q, want %q still serving", v.Image, image)
	}
}

// containers counts the environment's release containers.
func (e *env) releaseContainers(t *testing.T) int {
	t.Helper()
	rels, err := e.target.Releases(context.Background(), e.name)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range rels {
		if in, _ := e.target.Instance(context.Background(), e.name, r.ID); in != nil {
			n++
		}
	}
	return n
}

func TestRecreate(t *testing.T) {
	good, _ := images(t)
	e := newEnv(t)
	first := e.deploy(t, good.Tag)
	req := e.request("modelship-test/good:2")
	req.Strategy = deploy.Recreate
	res, err := e.d.Deploy(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Plan.Strategy != deploy.Recreate || !strings.Contains(e.log.String(), "expected downtime about") {
		t.Errorf("strategy %s; log does not print the expected downtime:\n%s", res.Plan.Strategy, e.log)
	}
	e.serving(t, "modelship-test/good:2")
	if in, _ := e.target.Instance(context.Background(), e.name, first.Release.ID); in != nil {
		t.Errorf("previous release's container still there after recreate")
	}
	// Its image stays on disk: a rollback needs no pull.
	cli, _ := testenv.Docker(t)
	if _, err := cli.ImageInspect(context.Background(), first.Release.ImageID); err != nil {
		t.Errorf("previous image gone: %v", err)
	}
	// Manual rollback to the first release, by content id.
	rr := deploy.RollbackRequest{Request: e.request("")}
	rb, err := e.d.Rollback(context.Background(), rr)
	if err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if rb.Release.ImageID != first.Release.ImageID || rb.Release.Image != good.Tag {
		t.Errorf("rollback deployed %s (%s), want %s", rb.Release.Image, rb.Release.ImageID, good.Tag)
	}
	e.serving(t, good.Tag)
}

func TestLock(t *testing.T) {
	good, _ := images(t)
	e := newEnv(t)
	e.deploy(t, good.Tag)
	img, err := e.target.Image(context.Background(), good.Tag)
	if err != nil {
		t.Fatal(err)
	}
	// Another deploy (another machine) holds the lock.
	holder := deploy.Holder{Who: "alice@ci-runner-7", Host: "ci-runner-7", PID: 4242, Since: time.Now().UTC(), What: "deploy modelship-test/good:3"}
	lock, err := e.target.Lock(context.Background(), e.name, holder, img)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.d.Deploy(context.Background(), e.request("modelship-test/good:2"))
	var le *deploy.LockedError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "alice@ci-runner-7 (pid 4242 on ci-runner-7, deploy modelship-test/good:3") {
		t.Fatalf("deploy while locked: %v, want a LockedError naming the holder", err)
	}
	// Waiting: the holder finishes after a moment, the waiting deploy goes on.
	done := make(chan error, 1)
	go func() {
		req := e.request("modelship-test/good:2")
		req.LockTimeout = time.Minute
		_, err := e.d.Deploy(context.Background(), req)
		done <- err
	}()
	testenv.Eventually(t, 30*time.Second, "the deploy says it waits for alice's lock", func() bool {
		return strings.Contains(e.log.String(), "waiting for the lock of "+e.name+", held by alice@ci-runner-7")
	})
	e.serving(t, good.Tag) // nothing happened while it waited
	if err := lock.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("deploy after the lock was released: %v", err)
	}
	e.serving(t, "modelship-test/good:2")

	// Two deploys at once: one wins, the other is told who holds the lock.
	errs := make(chan error, 2)
	for _, img := range []string{good.Tag, "modelship-test/good:3"} {
		go func() { _, err := e.d.Deploy(context.Background(), e.request(img)); errs <- err }()
	}
	e1, e2 := <-errs, <-errs
	if (e1 == nil) == (e2 == nil) {
		t.Fatalf("two deploys at once: %v and %v, want exactly one to succeed", e1, e2)
	}
	if lost := errors.Join(e1, e2); !errors.As(lost, &le) {
		t.Errorf("the loser says %v, want a LockedError", lost)
	}
	// A lock left by a process of this machine that died is stale.
	dead := deploy.Holder{Who: "bob@here", Host: hostname(), PID: 1 << 22, Since: time.Now().UTC(), What: "deploy"}
	if _, err := e.target.Lock(context.Background(), e.name, dead, img); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Deploy(context.Background(), e.request(good.Tag)); err != nil {
		t.Errorf("deploy over a dead process's lock: %v", err)
	}
}

func hostname() string { h, _ := os.Hostname(); return h }

// TestInterrupt cancels a blue-green deploy at each step: the previous
// release serves afterwards (or, once verified, the new one), the new
// release's container is gone, the lock is free.
func TestInterrupt(t *testing.T) {
	good, _ := images(t)
	e := newEnv(t)
	e.deploy(t, good.Tag)
	for _, step := range []string{"planned", "locked", "started", "ready", "switched", "drained"} {
		t.Run(step, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			e.d.Hook = func(s string) {
				if s == step {
					cancel()
				}
			}
			defer func() { e.d.Hook = nil }()
			l := testenv.LoadLoop(e.url, 2)
			_, err := e.d.Deploy(ctx, e.request("modelship-test/good:2"))
			reqs, fails, errs := l.Stop()
			if err == nil || !strings.Contains(err.Error(), "interrupted") {
				t.Fatalf("interrupted deploy: %v", err)
			}
			t.Logf("%s: %v (%d requests, %d failed)", step, err, reqs, fails)
			if fails != 0 {
				t.Errorf("%d of %d requests failed: %q", fails, reqs, errs)
			}
			e.serving(t, good.Tag)
			if n := e.releaseContainers(t); n != 1 {
				t.Errorf("%d release containers, want only the previous one", n)
			}
		})
	}
	// The lock was released every time.
	e.deploy(t, "modelship-test/good:3")
	e.serving(t, "modelship-test/good:3")
}

func TestBadInputs(t *testing.T) {
	good, _ := images(t)
	cli, _ := testenv.Docker(t)
	crash := testenv.ServingImage(t, cli, testenv.ImageCrash)
	never := testenv.ServingImage(t, cli, testenv.ImageNeverReady)
	e := newEnv(t)
	e.deploy(t, good.Tag)
	cases := []struct {
		name  string
		image string
		edit  func(*deploy.Request)
		want  []string
	}{
		{"bad reference", "Bad::Ref", nil, []string{`image reference "Bad::Ref" is not valid`}},
		{"missing image", "modelship-test/nosuch:1", nil, []string{"image modelship-test/nosuch:1 is not on docker host", "pulling it failed"}},
		{"exits at start", crash.Tag, nil, []string{"exited with status", "last log lines", "/models/missing", "previous release"}},
		{"never ready", never.Tag, func(r *deploy.Request) { r.ReadyTimeout = 4 * time.Second }, []string{"did not become ready within its load budget of 4s", "last /ready answer: 503", "previous release"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := e.request(c.image)
			if c.edit != nil {
				c.edit(&req)
			}
			_, err := e.d.Deploy(context.Background(), req)
			if err == nil {
				t.Fatal("deploy succeeded")
			}
			t.Logf("%v", err)
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q", w)
				}
			}
			e.serving(t, good.Tag)
			if n := e.releaseContainers(t); n != 1 {
				t.Errorf("%d release containers, want only the previous one", n)
			}
		})
	}

	t.Run("port taken", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		other := newEnv(t)
		req := other.request(good.Tag)
		req.Port = l.Addr().(*net.TCPAddr).Port
		_, err = other.d.Deploy(context.Background(), req)
		if err == nil || !strings.Contains(err.Error(), "is already in use") {
			t.Fatalf("deploy on a taken port: %v", err)
		}
		t.Logf("%v", err)
		e.serving(t, good.Tag) // the other environment is untouched
		if n := other.releaseContainers(t); n != 0 {
			t.Errorf("%d release containers left behind", n)
		}
	})

	t.Run("docker host unreachable", func(t *testing.T) {
		tg, err := docker.New(docker.Options{Host: "unix:///nonexistent/docker.sock"})
		if err != nil {
			t.Fatal(err)
		}
		d := &deploy.Deployer{Target: tg}
		_, err = d.Deploy(context.Background(), e.request(good.Tag))
		if !errors.Is(err, deploy.ErrUnreachable) || !strings.Contains(err.Error(), "docker host unix:///nonexistent/docker.sock does not answer") {
			t.Fatalf("unreachable host: %v", err)
		}
		t.Logf("%v", err)
		e.serving(t, good.Tag)
	})
}
