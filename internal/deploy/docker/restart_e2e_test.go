package docker_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/modelship/modelship/internal/analysis"
	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/docker"
	"github.com/modelship/modelship/internal/testenv"
)

// failures are a load's failed requests with when they failed.
type failures struct {
	mu   sync.Mutex
	at   []time.Time
	msgs []string
}

func (f *failures) add(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.at = append(f.at, time.Now())
	if len(f.msgs) < 10 {
		f.msgs = append(f.msgs, err.Error())
	}
}

// A gateway restarted during the first canary step (docker restart, as a
// crash under a restart policy or a host reboot would) comes back from
// its state file with the split; the deployer waits for it, reads its new
// measurement ring from 0, and the good canary goes on to its promotion.
// The only failed requests are those of the restart itself (the only
// proxy is down for a moment), all within it; the report's count of
// canary requests includes those measured after the restart.
func TestCanarySurvivesGatewayRestart(t *testing.T) {
	good, _ := images(t)
	cli, host := testenv.Docker(t)
	e := newEnv(t)
	e.deploy(t, good.Tag)
	// The test's own reader of the gateway's measurements: the deploy's
	// target keeps its own cursor and boot.
	reader, err := docker.New(docker.Options{Host: host})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()

	// Clients that fail back off 20 ms, as a client retrying would,
	// rather than spin on a refused port.
	var failed failures
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	body := `{"model":"current","prompt":"What is the capital of France?","max_tokens":4}`
	l := testenv.StartLoad(8, func(int, int) error {
		resp, err := hc.Post(e.url+"/v1/completions", "application/json", strings.NewReader(body))
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case rerr != nil:
				err = rerr
			case resp.StatusCode != http.StatusOK:
				err = fmt.Errorf("status %d: %.200s", resp.StatusCode, b)
			}
		}
		if err != nil {
			failed.add(err)
			time.Sleep(20 * time.Millisecond)
		}
		return err
	})

	var (
		wg                              sync.WaitGroup
		restartAt, restarted, answering time.Time
		restartErr                      error
		old                             []deploy.MeasuredSample // what the gateway measured before its restart
	)
	gateway := "modelship-" + e.name + "-gateway"
	e.d.Hook = func(step string) {
		if step != "canary-5" {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Second) // into the step's 3 s bake
			if old, _, restartErr = reader.Samples(context.Background(), e.name, 0); restartErr != nil {
				return
			}
			stop := 5
			restartAt = time.Now()
			restartErr = cli.ContainerRestart(context.Background(), gateway, container.StopOptions{Timeout: &stop})
			restarted = time.Now()
			for time.Since(restarted) < 30*time.Second {
				if resp, err := http.Get(e.url + "/-/gateway/health"); err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						answering = time.Now()
						return
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	l.Wait(50)
	t0 := time.Now()
	res, err := e.d.Deploy(context.Background(), e.canaryRequest("modelship-test/good:2"))
	took := time.Since(t0)
	wg.Wait()
	reqs, fails, _ := l.Stop()
	if restartErr != nil {
		t.Fatalf("restarting the gateway: %v", restartErr)
	}
	if restartAt.IsZero() || answering.IsZero() {
		t.Fatalf("the gateway was not restarted during the first step, or did not answer within 30 s of its restart")
	}
	t.Logf("deploy took %s; docker restart of the gateway took %s, the gateway answered again %s after the restart began",
		took.Round(time.Millisecond), restarted.Sub(restartAt).Round(time.Millisecond), answering.Sub(restartAt).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("canary with a gateway restart in its first step: %v", err)
	}
	ro := res.Rollout
	t.Logf("canary: %s\n%s", ro.Decision, analysis.Table(ro.Steps))
	if res.Plan.Strategy != deploy.Canary || len(ro.Steps) != 3 || res.RolledBack {
		t.Errorf("strategy %s, %d steps, rolled back %v; want canary, 3 steps passed", res.Plan.Strategy, len(ro.Steps), res.RolledBack)
	}
	if !restartAt.After(ro.Steps[0].Started) || !restartAt.Before(ro.Steps[0].Ended) {
		t.Errorf("the restart at %s was not within the first step (%s to %s)", restartAt.Format(time.StampMilli),
			ro.Steps[0].Started.Format(time.StampMilli), ro.Steps[0].Ended.Format(time.StampMilli))
	}
	if v := e.version(t); v.Image != "modelship-test/good:2" {
		t.Errorf("/version %+v after the promotion, want modelship-test/good:2", v)
	}

	// Failed requests: only while the gateway was down, and said.
	failed.mu.Lock()
	at, msgs := failed.at, failed.msgs
	failed.mu.Unlock()
	if int64(len(at)) != fails {
		t.Errorf("the load counted %d failures, the test recorded %d", fails, len(at))
	}
	if len(at) > 0 {
		t.Logf("%d of %d requests failed, from %s to %s after the restart began (%s); first: %q", len(at), reqs,
			at[0].Sub(restartAt).Round(time.Millisecond), at[len(at)-1].Sub(restartAt).Round(time.Millisecond),
			at[len(at)-1].Sub(at[0]).Round(time.Millisecond), msgs)
	} else {
		t.Logf("no request of %d failed", reqs)
	}
	for i, a := range at {
		if a.Before(restartAt) || a.After(answering.Add(time.Second)) {
			t.Errorf("request failure %d at %s, outside the restart (%s to %s)", i, a.Format(time.StampMilli),
				restartAt.Format(time.StampMilli), answering.Format(time.StampMilli))
		}
	}

	// The deployer read the restarted gateway's new ring from 0: the
	// canary's requests it measured until the 25% step ended are in the
	// report's count.
	if !strings.Contains(e.log.String(), "the gateway restarted: its measurements start over") {
		t.Errorf("the deploy log does not say the gateway restarted:\n%s", e.log.String())
	}
	samples, _, err := reader.Samples(context.Background(), e.name, 0)
	if err != nil {
		t.Fatal(err)
	}
	canaryURL := fmt.Sprintf("http://modelship-%s-%s:8000", e.name, res.Release.ID)
	before, after := 0, 0
	for _, s := range old {
		if s.Upstream == canaryURL {
			before++
		}
	}
	for _, s := range samples {
		if s.Upstream == canaryURL && s.At.Before(ro.Steps[1].Ended) {
			after++
		}
	}
	t.Logf("the canary answered %d requests measured by the gateway before its restart, %d after it until the 25%% step ended; the report counts %d",
		before, after, ro.CanaryRequests)
	if after == 0 || ro.CanaryRequests < after {
		t.Errorf("canary %s: the report counts %d canary requests, the restarted gateway measured %d until the 25%% step ended: want them counted",
			canaryURL, ro.CanaryRequests, after)
	}
}
