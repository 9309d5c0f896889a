package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/modelship/modelship/internal/smoke"
	"github.com/modelship/modelship/suite"
)

// Expect is what verify checks a release against.
type Expect struct {
	Release     string
	Model       string // served name
	ModelDigest string // "" checks nothing
	Image       string // the reference /version must report
}

// Verifier checks an endpoint after a switch. Implementations: Checks
// (smoke + a suite); tests may pass their own.
type Verifier interface {
	Verify(ctx context.Context, endpoint string, want Expect) error
}

// Checks is the verify step: internal/smoke (the served name in /v1/models,
// a generation, /version reporting the expected digest and image), then,
// when Suite is set, the suite (the smoke suite, or the validation cases)
// whose verdict must be passed.
type Checks struct {
	Suite *suite.Suite
	// DigestWait bounds how long to wait for the release to finish hashing
	// its weights before /version can report a digest.
	DigestWait time.Duration
	Timeout    time.Duration
	// APIKey is sent on /v1/ routes when the endpoint requires one.
	APIKey string
}

// Verify runs the checks; the error says which failed and why.
func (c *Checks) Verify(ctx context.Context, endpoint string, want Expect) error {
	if want.ModelDigest != "" {
		waitDigest(ctx, endpoint, c.DigestWait)
	}
	res, err := smoke.Run(ctx, endpoint, smoke.Options{Model: want.Model, ExpectDigest: want.ModelDigest, ExpectImage: want.Image, Timeout: c.Timeout, APIKey: c.APIKey})
	if err != nil {
		return fmt.Errorf("smoke: %w", err)
	}
	if !res.Passed {
		var parts []string
		for _, f := range res.Failed() {
			parts = append(parts, f.Name+": "+f.Detail)
		}
		return fmt.Errorf("smoke failed: %s", strings.Join(parts, "; "))
	}
	if c.Suite == nil {
		return nil
	}
	opt := suite.DefaultOptions(endpoint)
	opt.Model = want.Model
	opt.APIKey = c.APIKey
	rep, err := suite.Run(ctx, c.Suite, opt)
	if err != nil {
		return fmt.Errorf("suite %s: %w", c.Suite.File, err)
	}
	if rep.Verdict != suite.Passed {
		msg := fmt.Sprintf("suite %s %s: %s", c.Suite.File, rep.Verdict, rep.Reason)
		n := 0
		for _, cr := range rep.Cases {
			if cr.Status != suite.StatusPassed && n < 3 {
				msg += fmt.Sprintf("; %s: %s", cr.Name, cr.Reason)
				n++
			}
		}
		return fmt.Errorf("%s", msg)
	}
	return nil
}

// waitDigest polls GET /version until digest_status is no longer
// "computing" (a large checkpoint is hashed after start), up to d.
func waitDigest(ctx context.Context, endpoint string, d time.Duration) {
	if d <= 0 {
		d = 2 * time.Minute
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(endpoint, "/")+"/version", nil)
		resp, err := hc.Do(req)
		if err == nil {
			var v struct {
				Status string `json:"digest_status"`
			}
			err = json.NewDecoder(resp.Body).Decode(&v)
			resp.Body.Close()
			if err == nil && v.Status != "computing" && v.Status != "pending" {
				return
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}
