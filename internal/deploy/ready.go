package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Load budget: how long a release may take to become ready before the deploy
// gives up on it. Large checkpoints take minutes to read and warm up, so the
// budget grows with the weights; never shorter than BaseLoadBudget.
const (
	BaseLoadBudget   = 60 * time.Second
	LoadBudgetPerGiB = 30 * time.Second
)

// LoadBudget is BaseLoadBudget + LoadBudgetPerGiB per GiB of weights, or
// override when it is positive (the environment's ready-timeout).
func LoadBudget(weightBytes int64, override time.Duration) time.Duration {
	if override > 0 {
		return override
	}
	gib := float64(weightBytes) / (1 << 30)
	return BaseLoadBudget + time.Duration(gib*float64(LoadBudgetPerGiB))
}

// NotReadyError says a release did not become ready in its budget, with the
// last reason /ready gave.
type NotReadyError struct {
	Release string
	Budget  time.Duration
	Reason  string
}

func (e *NotReadyError) Error() string {
	return fmt.Sprintf("release %s did not become ready within its load budget of %s; last /ready answer: %s (raise environments.<env>.ready-timeout if the model needs longer)",
		e.Release, e.Budget, e.Reason)
}

// ExitedError says a release's process stopped while the deploy waited for it.
type ExitedError struct {
	Release  string
	ExitCode int
	Logs     []string
}

func (e *ExitedError) Error() string {
	return fmt.Sprintf("release %s exited with status %d before it was ready", e.Release, e.ExitCode) + indented("; its last log lines:", e.Logs)
}

// StalledError says a release will not become ready although its process
// did not simply exit: the target gave up on it (a Kubernetes rollout past
// its progress deadline), with the reason and what explains it.
type StalledError struct {
	Release string
	Reason  string
	Logs    []string
}

func (e *StalledError) Error() string {
	return fmt.Sprintf("release %s will not become ready: %s", e.Release, e.Reason) + indented("", e.Logs)
}

// indented is intro followed by lines, each on a line of its own, indented;
// "" when there are no lines.
func indented(intro string, lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return intro + "\n    " + strings.Join(lines, "\n    ")
}

// readyAnswer is GET /ready's JSON.
type readyAnswer struct {
	Ready  bool   `json:"ready"`
	Check  string `json:"check"`
	Reason string `json:"reason"`
}

// WaitReady asks the target whether in is ready (Readiness) until it is, the instance exits
// (ExitedError with its last log lines), the budget runs out (NotReadyError
// with the last reason) or ctx ends. It prints progress to w every
// progressEvery. It never stops the instance: deciding that is the caller's.
func WaitReady(ctx context.Context, t interface {
	Starter
	Readiness
}, in *Instance, budget time.Duration, w io.Writer, progressEvery time.Duration) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(budget)
	last := "no answer yet"
	nextProgress := start.Add(progressEvery)
	nextStatus := start
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if now := time.Now(); !now.Before(nextStatus) {
			st, err := t.Status(ctx, in)
			if err != nil {
				if ctx.Err() != nil {
					return 0, ctx.Err()
				}
				return 0, fmt.Errorf("release %s: checking its state: %w", in.Release, err)
			}
			if !st.Running && st.Reason != "" {
				return 0, &StalledError{Release: in.Release, Reason: st.Reason, Logs: st.Logs}
			}
			if !st.Running {
				return 0, &ExitedError{Release: in.Release, ExitCode: st.ExitCode, Logs: st.Logs}
			}
			nextStatus = now.Add(time.Second)
		}
		ok, reason := t.Ready(ctx, in)
		if ok {
			return time.Since(start), nil
		}
		if reason != "" {
			last = reason
		}
		now := time.Now()
		if !now.Before(deadline) {
			return 0, &NotReadyError{Release: in.Release, Budget: budget, Reason: last}
		}
		if w != nil && !now.Before(nextProgress) {
			fmt.Fprintf(w, "  waiting for %s to be ready: %s of %s budget; /ready: %s\n",
				in.Release, now.Sub(start).Round(time.Second), budget, last)
			nextProgress = now.Add(progressEvery)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// readyClient asks /ready; an answer takes longer than its timeout only
// when the engine hangs.
var readyClient = &http.Client{Timeout: 10 * time.Second}

// ProbeReady asks GET base/ready once: true on 200, else the reason the
// answer gives ("503 generate: ...") or why there was none.
func ProbeReady(ctx context.Context, base string) (bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/ready", nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := readyClient.Do(req)
	if err != nil {
		return false, "not answering (" + shortErr(err) + ")"
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		return true, ""
	}
	var a readyAnswer
	if json.Unmarshal(body, &a) == nil && (a.Reason != "" || a.Check != "") {
		if a.Check != "" {
			return false, fmt.Sprintf("%d %s: %s", resp.StatusCode, a.Check, a.Reason)
		}
		return false, fmt.Sprintf("%d %s", resp.StatusCode, a.Reason)
	}
	return false, fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && i+2 < len(s) {
		return s[i+2:]
	}
	return s
}
