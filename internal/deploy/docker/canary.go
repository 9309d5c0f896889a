package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/modelship/modelship/internal/analysis"
	"github.com/modelship/modelship/internal/clip"
	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/measure"
	"github.com/modelship/modelship/internal/shadow"
	"github.com/modelship/modelship/internal/vllmmetrics"
	"github.com/modelship/modelship/suite"
)

// The gateway answers at most samplesPerPage samples at a time (and keeps
// 65,536); one Samples call reads at most samplesPages answers.
const (
	samplesPerPage = 8192
	samplesPages   = 16
)

// rolloutExec runs a rollout command of the gateway (canary, samples,
// control, shadow). A gateway whose modelship binary predates them
// answers with its own usage: that error wraps deploy.ErrSplitUnsupported.
// A gateway that does not answer (its container restarting, or its
// process not yet listening on the admin socket) is waited for, as a
// switch does (waitGateway), and asked once more: a gateway restarted
// mid-canary comes back with the split, so the rollout goes on.
func (t *Target) rolloutExec(ctx context.Context, env, sub string, args ...string) ([]byte, error) {
	stdout, stderr, code, err := t.gatewayRun(ctx, env, sub, args...)
	// Exit 126 or 137: the exec could not start, or was killed, because
	// the gateway's container was stopping or starting under it.
	if ctx.Err() == nil && (err != nil || code == 126 || code == 137 || strings.Contains(string(stderr), "gateway admin socket")) {
		t.logf("environment %s: the gateway does not answer `gateway %s` (restarting?): waiting for it", env, sub)
		if werr := t.waitGateway(ctx, env); werr == nil {
			stdout, stderr, code, err = t.gatewayRun(ctx, env, sub, args...)
		}
	}
	if err != nil {
		return nil, err
	}
	msg := strings.TrimSpace(string(stderr))
	switch {
	case code == 2 && (strings.Contains(msg, "Usage: modelship gateway [--listen") || strings.Contains(msg, `unexpected argument "`+sub+`"`)):
		return nil, fmt.Errorf("%w: the gateway of %s runs a modelship binary without `gateway %s`; deploy once with blue-green (the gateway then moves to the live release's binary)",
			deploy.ErrSplitUnsupported, env, sub)
	case code != 0:
		return nil, fmt.Errorf("gateway %s (exit %d): %s", sub, code, clip.Line(msg, 600))
	}
	return stdout, nil
}

// SetCanary sends percent of env's new requests to in through the
// gateway (`gateway canary`), which checks in's /ready first; in nil or
// percent 0 sends everything to the active release.
func (t *Target) SetCanary(ctx context.Context, env string, in *deploy.Instance, percent float64, sticky string) error {
	args := []string{"--percent", "0"}
	what := "clearing the canary split"
	if in != nil && percent > 0 {
		args = []string{"--upstream", in.Upstream, "--percent", strconv.FormatFloat(percent, 'f', -1, 64),
			"--ready-timeout", t.opt.SwitchReadyTimeout.String()}
		if sticky != "" {
			args = append(args, "--sticky-header", sticky)
		}
		what = fmt.Sprintf("sending %g%% of the requests to release %s", percent, in.Release)
	}
	if _, err := t.rolloutExec(ctx, env, "canary", args...); err != nil {
		return fmt.Errorf("environment %s: %s: %w", env, what, err)
	}
	return nil
}

// Samples reads the requests the gateway measured after since (`gateway
// samples`), page by page until it has caught up. A gateway that
// restarted since the last call answers from another ring (another boot),
// whose seqs start again from 1: Samples then reads that ring from 0
// rather than wait for it to reach since.
func (t *Target) Samples(ctx context.Context, env string, since uint64) ([]deploy.MeasuredSample, uint64, error) {
	var out []deploy.MeasuredSample
	for range samplesPages {
		b, err := t.rolloutExec(ctx, env, "samples", "--since", strconv.FormatUint(since, 10))
		if err != nil {
			return nil, since, fmt.Errorf("environment %s: reading the gateway's measurements: %w", env, err)
		}
		var page measure.Samples
		if err := json.Unmarshal(b, &page); err != nil {
			return nil, since, fmt.Errorf("environment %s: the gateway's measurements: %v", env, err)
		}
		if last, _ := t.boots.Swap(env, page.Boot); last != nil && last != page.Boot && since > 0 {
			t.logf("environment %s: the gateway restarted: its measurements start over (read from seq 0 of its new ring, not after %d)", env, since)
			since = 0
			continue
		}
		if page.Dropped > 0 && since > 0 {
			t.logf("environment %s: the gateway overwrote %d measurements before they were read (its ring is full); the analysis goes on with the rest", env, page.Dropped)
		}
		for _, s := range page.Samples {
			out = append(out, deploy.MeasuredSample{Upstream: s.Upstream, Sample: s.Analysis()})
		}
		if page.Next > since {
			since = page.Next
		}
		if len(page.Samples) < samplesPerPage {
			break
		}
	}
	return out, since, nil
}

// Control is the operator's action for env's rollout (`gateway control`).
func (t *Target) Control(ctx context.Context, env string) (string, error) {
	b, err := t.rolloutExec(ctx, env, "control")
	if err != nil {
		return "", fmt.Errorf("environment %s: reading the rollout's control: %w", env, err)
	}
	var c struct {
		Action string `json:"action"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return "", fmt.Errorf("environment %s: the rollout's control: %v", env, err)
	}
	return c.Action, nil
}

// SetControl asks env's running rollout for action (promote, abort,
// resume, clear); the gateway refuses it when no rollout is in progress.
func (t *Target) SetControl(ctx context.Context, env, action string) error {
	if _, err := t.rolloutExec(ctx, env, "control", "--set", action); err != nil {
		return fmt.Errorf("environment %s: asking the rollout to %s: %w", env, action, err)
	}
	return nil
}

// SetShadow mirrors percent of env's requests to in (`gateway shadow`);
// in nil or percent 0 stops the mirror.
func (t *Target) SetShadow(ctx context.Context, env string, in *deploy.Instance, percent float64, checks []suite.TextCheck) error {
	args := []string{"--percent", "0"}
	what := "stopping the mirror"
	if in != nil && percent > 0 {
		args = []string{"--upstream", in.Upstream, "--percent", strconv.FormatFloat(percent, 'f', -1, 64)}
		what = fmt.Sprintf("mirroring %g%% of the requests to release %s", percent, in.Release)
		if len(checks) > 0 {
			b, err := json.Marshal(checks)
			if err != nil {
				return fmt.Errorf("environment %s: the validation suite's checks: %v", env, err)
			}
			args = append(args, "--checks", string(b))
		}
	}
	_, err := t.rolloutExec(ctx, env, "shadow", args...)
	if err != nil && in == nil && strings.Contains(err.Error(), "no shadow is running") {
		return nil // nothing to stop
	}
	if err != nil {
		return fmt.Errorf("environment %s: %s: %w", env, what, err)
	}
	return nil
}

// ErrShadowEnded is ShadowReport's error when the gateway runs no mirror
// any more: a gateway restart (or an upgrade in place) ends a running
// mirror, whose counts cannot be kept, so the shadow step cannot be judged.
var ErrShadowEnded = errors.New("the gateway runs no mirror any more")

// ShadowReport is what env's mirror compared so far (`gateway shadow
// --report`); when the gateway has no mirror (it restarted since the
// mirror started), the error wraps ErrShadowEnded and says when the
// gateway started.
func (t *Target) ShadowReport(ctx context.Context, env string) (*shadow.Report, error) {
	b, err := t.rolloutExec(ctx, env, "shadow", "--report")
	if err != nil && strings.Contains(err.Error(), "no shadow is running") {
		why := "it restarted, or the mirror was stopped by hand"
		if st, serr := t.GatewayState(ctx, env); serr == nil && !st.StartedAt.IsZero() {
			why = "its process started at " + st.StartedAt.UTC().Format(time.RFC3339) + ": the gateway restarted (or was upgraded in place) since the mirror started"
		}
		return nil, fmt.Errorf("environment %s: %w (%s); a restart ends a running mirror and its counts, so the shadow step cannot be judged: deploy again", env, ErrShadowEnded, why)
	}
	if err != nil {
		return nil, fmt.Errorf("environment %s: reading the mirror's report: %w", env, err)
	}
	var r shadow.Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("environment %s: the mirror's report: %v", env, err)
	}
	return &r, nil
}

// EngineMetrics reads in's engine metrics from its /metrics (vLLM's, or
// the simulator's): nil, nil when in is not reachable from this process
// (a remote Docker host publishes releases on its own loopback).
func (t *Target) EngineMetrics(ctx context.Context, in *deploy.Instance) (*analysis.Engine, error) {
	if in.URL == "" {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, in.URL+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("release %s: %w", in.Release, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("release %s of environment %s: reading its engine metrics: %w", in.Release, in.Env, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("release %s of environment %s: GET /metrics answered %s", in.Release, in.Env, resp.Status)
	}
	e, err := vllmmetrics.ParseEngine(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("release %s of environment %s: GET /metrics: %w", in.Release, in.Env, err)
	}
	return e, nil
}

var (
	_ deploy.Splitter     = (*Target)(nil)
	_ deploy.EngineReader = (*Target)(nil)
)
