package analysis

import (
	"errors"
	"fmt"
	"math"
)

// Defaults WithDefaults gives a zero field.
const (
	DefaultMinSamples        = 20
	DefaultMaxErrorRate      = 0.01
	DefaultMaxErrorRateDelta = 0.01
	DefaultMaxTTFTRatio      = 1.5
	DefaultAlpha             = 0.05
)

// FieldNames are the names of the Thresholds fields as a configuration
// spells them (and as Validate's errors name them), in declaration order.
func FieldNames() []string {
	return []string{
		"min-samples", "max-error-rate", "max-error-rate-delta",
		"ttft-p95", "itl-p95", "ttft-ratio", "itl-ratio",
		"kv-cache-usage", "requests-waiting", "alpha",
	}
}

// WithDefaults returns t with each zero field that has a default set to it
// (MinSamples 20, MaxErrorRate 0.01, MaxErrorRateDelta 0.01, MaxTTFTRatio
// 1.5, Alpha 0.05); the other limits stay off.
func (t Thresholds) WithDefaults() Thresholds {
	if t.MinSamples == 0 {
		t.MinSamples = DefaultMinSamples
	}
	if t.MaxErrorRate == 0 {
		t.MaxErrorRate = DefaultMaxErrorRate
	}
	if t.MaxErrorRateDelta == 0 {
		t.MaxErrorRateDelta = DefaultMaxErrorRateDelta
	}
	if t.MaxTTFTRatio == 0 {
		t.MaxTTFTRatio = DefaultMaxTTFTRatio
	}
	if t.Alpha == 0 {
		t.Alpha = DefaultAlpha
	}
	return t
}

// Validate reports every field of t that cannot be a limit, in field
// order, each error naming the field as FieldNames spells it, the value
// and what is expected. Zero fields are valid (off, or their default).
func (t Thresholds) Validate() error {
	const ratio = "is not a ratio between 0 and 1"
	const slowdown = "would fail a canary exactly as fast as stable; expected a ratio of 1 or more, such as 1.5"
	const duration = "is negative; expected a duration such as 500ms (0: no limit)"
	var errs []error
	for _, f := range []struct {
		name  string
		v     float64
		shown string // v as the user wrote it, where %v would not say so
		ok    func(float64) bool
		wants string
	}{
		{"min-samples", float64(t.MinSamples), "", nonNegative, fmt.Sprintf("is not a number of requests; expected 1 or more (0: the default %d)", DefaultMinSamples)},
		{"max-error-rate", t.MaxErrorRate, "", isRatio, ratio + " (0.01 is 1%)"},
		{"max-error-rate-delta", t.MaxErrorRateDelta, "", isRatio, ratio + " (0.01 is 1%)"},
		{"ttft-p95", float64(t.MaxTTFTP95), t.MaxTTFTP95.String(), nonNegative, duration},
		{"itl-p95", float64(t.MaxITLP95), t.MaxITLP95.String(), nonNegative, duration},
		{"ttft-ratio", t.MaxTTFTRatio, "", isSlowdown, slowdown},
		{"itl-ratio", t.MaxITLRatio, "", isSlowdown, slowdown + " (0: no limit)"},
		{"kv-cache-usage", t.MaxKVCacheUsage, "", isRatio, ratio + " (0.9 is 90% of the KV cache)"},
		{"requests-waiting", t.MaxRequestsWaiting, "", nonNegative, "is not a number of requests; expected 0 or more (0: no limit)"},
		{"alpha", t.Alpha, "", func(v float64) bool { return v >= 0 && v < 1 }, "is not a significance level between 0 and 1, such as 0.05"},
	} {
		if f.shown == "" {
			f.shown = fmt.Sprint(f.v)
		}
		switch {
		case math.IsNaN(f.v) || math.IsInf(f.v, 0):
			errs = append(errs, fmt.Errorf("%s: %s is not a number", f.name, f.shown))
		case !f.ok(f.v):
			errs = append(errs, fmt.Errorf("%s: %s %s", f.name, f.shown, f.wants))
		}
	}
	return errors.Join(errs...)
}

func nonNegative(v float64) bool { return v >= 0 }
func isRatio(v float64) bool     { return v >= 0 && v <= 1 }
func isSlowdown(v float64) bool  { return v == 0 || v >= 1 }
