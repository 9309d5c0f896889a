package config

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/modelship/modelship/internal/analysis"
)

// DefaultCanarySteps are the percents of strategy canary without
// canary.steps.
var DefaultCanarySteps = []float64{10, 50, 100}

// Defaults of environments.NAME.canary and shadow: what strategy canary
// without a canary block runs, and what a block leaves out.
const (
	DefaultCanaryBake     = time.Minute
	DefaultCanaryInterval = 10 * time.Second
	DefaultCanaryDeadline = 10 * time.Minute
	DefaultShadowPercent  = 10
	DefaultShadowDuration = 2 * time.Minute
	DefaultShadowAgree    = 0.9
	DefaultShadowSamples  = 20
)

// DefaultCanary is the canary of strategy canary when the environment has
// no canary block: steps of 10, 50 and 100 percent, each baked 1m and
// analysed every 10s, waiting up to 10m for enough requests.
func DefaultCanary() *Canary {
	c := &Canary{}
	c.defaults(func(string) bool { return false }, "")
	return c
}

// rolloutDefaults fills environment e's canary and shadow blocks (at key
// path p) where the file left a key out; strategy canary without a block
// gets DefaultCanary.
func (e *Environment) rolloutDefaults(given func(string) bool, p string) {
	if e.Canary == nil && e.Strategy == "canary" {
		e.Canary = &Canary{}
	}
	if e.Canary != nil {
		e.Canary.defaults(given, p+".canary")
	}
	s := e.Shadow
	if s == nil {
		return
	}
	p += ".shadow"
	if s.Percent == 0 && !given(p+".percent") {
		s.Percent = DefaultShadowPercent
	}
	if s.Duration == 0 && !given(p+".duration") {
		s.Duration = Duration(DefaultShadowDuration)
	}
	if s.MinAgreement == 0 && !given(p+".min-agreement") {
		s.MinAgreement = DefaultShadowAgree
	}
	if s.MinSamples == 0 && !given(p+".min-samples") {
		s.MinSamples = DefaultShadowSamples
	}
}

func (c *Canary) defaults(given func(string) bool, p string) {
	if len(c.Steps) == 0 && !given(p+".steps") {
		for _, pc := range DefaultCanarySteps {
			c.Steps = append(c.Steps, CanaryStep{Percent: pc})
		}
	}
	for _, d := range []struct {
		key string
		v   *Duration
		def time.Duration
	}{{"bake", &c.Bake, DefaultCanaryBake}, {"interval", &c.Interval, DefaultCanaryInterval}, {"deadline", &c.Deadline, DefaultCanaryDeadline}} {
		if *d.v == 0 && !given(p+"."+d.key) {
			*d.v = Duration(d.def)
		}
	}
	if c.Traffic == "" {
		c.Traffic = "wait"
	}
}

// httpToken is an HTTP header name (RFC 9110 token).
var httpToken = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// validateRollout checks environment e's (at key path p) strategy canary
// and its canary and shadow blocks: each only where the strategy uses it
// (no dead settings), each value in range.
func validateRollout(d *decoder, bad func(path, format string, args ...any), p string, e *Environment) {
	switch e.Strategy {
	case "recreate", "blue-green", "rolling":
		if e.Canary != nil {
			bad(p+".canary", "strategy %s does not use it: strategy canary (or auto) runs the canary steps; remove the block or change the strategy", e.Strategy)
		}
	}
	if e.Shadow != nil && e.Strategy != "canary" && (e.Strategy != "auto" || e.Canary == nil) {
		bad(p+".shadow", "strategy %s does not use it: the shadow step runs before a canary's steps, with strategy canary (or auto with a canary block)", e.Strategy)
	}
	if e.Canary != nil {
		validateCanary(d, bad, p+".canary", e.Canary)
	}
	if s := e.Shadow; s != nil {
		p += ".shadow"
		percent(bad, p+".percent", s.Percent)
		positive(d, bad, p+".duration", s.Duration)
		if s.MinAgreement < 0 || s.MinAgreement > 1 {
			bad(p+".min-agreement", "expected a fraction from 0 to 1 (0.9: nine answers in ten the same), got %g", s.MinAgreement)
		}
		if s.MinSamples < 1 {
			bad(p+".min-samples", "expected 1 or more compared answers, got %d", s.MinSamples)
		}
	}
}

func validateCanary(d *decoder, bad func(path, format string, args ...any), p string, c *Canary) {
	if len(c.Steps) == 0 {
		bad(p+".steps", "expected at least one step, the last 100 (e.g. [10, 50, 100])")
	}
	for i, s := range c.Steps {
		sp := fmt.Sprintf("%s.steps[%d]", p, i)
		percent(bad, sp, s.Percent)
		if i > 0 && s.Percent <= c.Steps[i-1].Percent {
			bad(sp, "expected steps in ascending order, got %g after %g", s.Percent, c.Steps[i-1].Percent)
		}
		if i == len(c.Steps)-1 && s.Percent != 100 {
			bad(sp, "expected the last step to be 100 (all traffic on the new release), got %g", s.Percent)
		}
		positive(d, bad, sp+".bake", s.Bake)
		if s.Percent == 100 && (s.Bake != 0 || s.Pause) {
			bad(sp, "the 100%% step is the promotion (all traffic switched to the new release), so it takes no bake or pause: give them to the step before")
		}
	}
	positive(d, bad, p+".bake", c.Bake)
	positive(d, bad, p+".interval", c.Interval)
	positive(d, bad, p+".deadline", c.Deadline)
	if c.Traffic != "wait" && c.Traffic != "synthetic" {
		bad(p+".traffic", "expected \"wait\" or \"synthetic\", got %q", c.Traffic)
	}
	if h := c.StickyHeader; h != "" && !httpToken.MatchString(h) {
		bad(p+".sticky-header", "expected an HTTP header name such as X-Conversation-Id, got %q", h)
	}
	validateAnalysis(d, bad, p+".analysis", c.Analysis)
}

// Thresholds are the limits as package analysis takes them.
func (a Analysis) Thresholds() analysis.Thresholds {
	return analysis.Thresholds{
		MinSamples: a.MinSamples, MaxErrorRate: a.MaxErrorRate, MaxErrorRateDelta: a.MaxErrorRateDelta,
		MaxTTFTP95: time.Duration(a.TTFTP95), MaxITLP95: time.Duration(a.ITLP95),
		MaxTTFTRatio: a.TTFTRatio, MaxITLRatio: a.ITLRatio,
		MaxKVCacheUsage: a.KVCacheUsage, MaxRequestsWaiting: a.RequestsWaiting, Alpha: a.Alpha,
	}
}

// validateAnalysis checks canary.analysis (at key path p) as
// analysis.Thresholds.Validate does, each problem at its key's line. A
// limit with a default refuses a given 0, which would silently become
// the default.
func validateAnalysis(d *decoder, bad func(path, format string, args ...any), p string, a Analysis) {
	for _, z := range []struct {
		key string
		v   float64
		def any
	}{
		{"min-samples", float64(a.MinSamples), analysis.DefaultMinSamples}, {"max-error-rate", a.MaxErrorRate, analysis.DefaultMaxErrorRate},
		{"max-error-rate-delta", a.MaxErrorRateDelta, analysis.DefaultMaxErrorRateDelta},
		{"ttft-ratio", a.TTFTRatio, analysis.DefaultMaxTTFTRatio}, {"alpha", a.Alpha, analysis.DefaultAlpha},
	} {
		if z.v == 0 && d.given(p+"."+z.key) {
			bad(p+"."+z.key, "expected above 0, got 0 (leave it out for the default %v)", z.def)
		}
	}
	err := a.Thresholds().Validate()
	if err == nil {
		return
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		key, msg, _ := strings.Cut(e.Error(), ": ")
		bad(p+"."+key, "%s", msg)
	}
}

// percent checks a share of requests: (0, 100].
func percent(bad func(path, format string, args ...any), p string, v float64) {
	if v <= 0 || v > 100 {
		bad(p, "expected a percent above 0 and at most 100, got %g", v)
	}
}

// positive refuses a duration given as 0 (the decoder refuses negative
// ones).
func positive(d *decoder, bad func(path, format string, args ...any), p string, v Duration) {
	if v == 0 && d.given(p) {
		bad(p, "expected a duration above 0, like 30s or 2m, got 0")
	}
}
