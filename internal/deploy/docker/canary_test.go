package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/measure"
)

// fakeGateway answers the gateway commands the rollout reads (samples,
// shadow --report, state) from a measurement ring that restart replaces,
// as a restarted gateway container's process does.
type fakeGateway struct {
	mu      sync.Mutex
	ring    *measure.Ring
	started time.Time
	// down is how many commands the gateway does not answer, as while
	// its container restarts.
	down int
	// downExit, when set, is how a down gateway fails instead: docker
	// exec's exit code (126: the exec could not start in a container
	// stopping or starting).
	downExit int
}

func (f *fakeGateway) add(n int, upstream string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.ring.Add(measure.Sample{Upstream: upstream, Status: 200})
	}
}

func (f *fakeGateway) restart() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ring, f.started = measure.NewRing(), time.Now().UTC()
}

func (f *fakeGateway) run(_ context.Context, _, sub string, args ...string) (stdout, stderr []byte, code int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down > 0 {
		f.down--
		if f.downExit != 0 {
			return nil, nil, f.downExit, nil
		}
		return nil, nil, 0, errors.New("exec in modelship-prod-gateway: container is restarting, wait until the container is running")
	}
	switch {
	case sub == "samples" && len(args) == 2 && args[0] == "--since":
		since, err := strconv.ParseUint(args[1], 10, 64)
		if err != nil {
			return nil, []byte(err.Error()), 2, nil
		}
		b, _ := json.Marshal(f.ring.Since(since, samplesPerPage))
		return b, nil, 0, nil
	case sub == "shadow" && len(args) == 1 && args[0] == "--report":
		return nil, []byte("modelship: shadow report: no shadow is running\n"), 1, nil
	case sub == "state":
		b, _ := json.Marshal(GatewayState{Active: "http://release-a:8000", PID: 1, StartedAt: f.started})
		return b, nil, 0, nil
	}
	return nil, []byte("unexpected command " + sub + " " + strings.Join(args, " ")), 2, nil
}

func fakeTarget(t *testing.T) (*Target, *fakeGateway, *bytes.Buffer) {
	var out bytes.Buffer
	tg, err := New(Options{Host: "unix:///nonexistent/docker.sock", Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	f := &fakeGateway{ring: measure.NewRing(), started: time.Now().UTC()}
	tg.gatewayRunner = f.run
	return tg, f, &out
}

// After the gateway restarted (a new ring, seqs from 1 again), Samples
// waits for it to answer, then reads the new ring from 0 instead of
// waiting for it to pass the old cursor, and says so; without a restart
// the cursor just moves on.
func TestUnitSamplesStartOverWhenTheGatewayRestarts(t *testing.T) {
	tg, gw, out := fakeTarget(t)
	ctx := context.Background()
	gw.add(50, "http://release-b:8000")
	got, next, err := tg.Samples(ctx, "prod", 0)
	if err != nil || len(got) != 50 || next != 50 {
		t.Fatalf("first read: %d samples, next %d, %v", len(got), next, err)
	}
	gw.add(5, "http://release-b:8000")
	if got, next, err = tg.Samples(ctx, "prod", next); err != nil || len(got) != 5 || next != 55 {
		t.Fatalf("second read: %d samples, next %d, %v", len(got), next, err)
	}
	if strings.Contains(out.String(), "restarted") {
		t.Fatalf("a restart was reported without one: %s", out)
	}

	gw.restart()
	gw.add(7, "http://release-b:8000")
	gw.down = 3 // the first read, then two of waitGateway's
	got, next, err = tg.Samples(ctx, "prod", next)
	if err != nil || len(got) != 7 || next != 7 {
		t.Fatalf("after the restart: %d samples, next %d, %v; want the new ring's 7 from 0", len(got), next, err)
	}
	if !strings.Contains(out.String(), "environment prod: the gateway does not answer `gateway samples` (restarting?): waiting for it") {
		t.Fatalf("the wait for the gateway was not logged: %q", out)
	}
	if !strings.Contains(out.String(), "environment prod: the gateway restarted: its measurements start over") {
		t.Fatalf("the restart was not logged: %q", out)
	}
	gw.add(3, "http://release-a:8000")
	if got, next, err = tg.Samples(ctx, "prod", next); err != nil || len(got) != 3 || next != 10 || got[0].Upstream != "http://release-a:8000" {
		t.Fatalf("after that: %d samples, next %d, %v", len(got), next, err)
	}
	// An exec that docker could not start in the restarting container
	// (exit 126, nothing said) is waited out the same way.
	gw.restart()
	gw.add(2, "http://release-b:8000")
	gw.down, gw.downExit = 1, 126
	if got, next, err = tg.Samples(ctx, "prod", next); err != nil || len(got) != 2 || next != 2 {
		t.Fatalf("after a restart seen as exit 126: %d samples, next %d, %v; want the new ring's 2", len(got), next, err)
	}
	// Another environment's gateway has a ring of its own: a first read
	// there is no restart.
	out.Reset()
	if _, _, err := tg.Samples(ctx, "staging", 3); err != nil || strings.Contains(out.String(), "restarted") {
		t.Fatalf("staging: %v, %q", err, out)
	}
}

// A gateway that restarted during the shadow step runs no mirror: the
// report's error wraps ErrShadowEnded and names the restart.
func TestUnitShadowReportAfterAGatewayRestart(t *testing.T) {
	tg, _, _ := fakeTarget(t)
	_, err := tg.ShadowReport(context.Background(), "prod")
	if !errors.Is(err, ErrShadowEnded) || !strings.Contains(err.Error(), "the gateway restarted") || !strings.Contains(err.Error(), "its process started at") {
		t.Fatalf("shadow report with no mirror: %v", err)
	}
}
