package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/kubernetes"
)

// The deploy packages say what happened; the command adds the flag that
// changes it, at the end, wherever the error is wrapped.
func TestHintNamesTheFlag(t *testing.T) {
	locked := &deploy.LockedError{Env: "prod", Holder: deploy.Holder{Who: "ci", Host: "runner-1", PID: 42}}
	cases := []struct {
		err  error
		want string
	}{
		{&deploy.LockWaitError{Locked: locked}, "nothing was changed (wait for it with --lock-timeout)"},
		{&deploy.LockWaitError{Locked: locked, Waited: 30 * time.Second}, "gave up after waiting 30s; nothing was changed; wait longer with --lock-timeout"},
		{&deploy.DeadlineError{Env: "prod", Deadline: time.Now(), Left: time.Second, Undo: time.Minute}, "; give it more time (--deadline)"},
		{&deploy.TwoCopiesError{Footprint: 20 << 30, Free: "10.0 GiB"}, "10.0 GiB free; use --strategy recreate (downtime) or auto"},
		{fmt.Errorf("rollback: %w", &deploy.UnknownReleaseError{Env: "prod", Release: "r9"}), "has no release r9 (releases older than the newest keep-releases are pruned); see modelship history --env prod"},
		{&kubernetes.LoopbackServerError{Host: "127.0.0.1", Err: errors.New("connection refused")}, "reaches the API server at (modelship --kube-server, or kubeServer of the Dagger functions)"},
	}
	for _, c := range cases {
		got := withHint(c.err)
		if !strings.HasSuffix(got.Error(), c.want) {
			t.Errorf("withHint(%T):\n got %q\nwant suffix %q", c.err, got, c.want)
		}
		if !errors.Is(got, c.err) {
			t.Errorf("withHint(%T) no longer wraps the error", c.err)
		}
	}
	plain := errors.New("engine exited 1")
	if got := withHint(plain); got != plain {
		t.Errorf("an error without a hint changed: %q", got)
	}
	if withHint(nil) != nil {
		t.Error("withHint(nil) is not nil")
	}
}
