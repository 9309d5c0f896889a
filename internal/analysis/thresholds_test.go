package analysis

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestWithDefaultsFillsOnlyZeroFields(t *testing.T) {
	got := Thresholds{}.WithDefaults()
	want := Thresholds{MinSamples: 20, MaxErrorRate: 0.01, MaxErrorRateDelta: 0.01, MaxTTFTRatio: 1.5, Alpha: 0.05}
	if got != want {
		t.Fatalf("defaults: got %+v, want %+v", got, want)
	}
	set := Thresholds{MinSamples: 50, MaxErrorRate: 0.02, MaxErrorRateDelta: 0.005, MaxTTFTP95: time.Second,
		MaxITLP95: 50 * time.Millisecond, MaxTTFTRatio: 1.2, MaxITLRatio: 1.3, MaxKVCacheUsage: 0.9,
		MaxRequestsWaiting: 10, Alpha: 0.01}
	if got := set.WithDefaults(); got != set {
		t.Fatalf("set fields changed: got %+v, want %+v", got, set)
	}
}

func TestValidateNamesFieldValueAndExpectation(t *testing.T) {
	for _, tc := range []struct {
		th   Thresholds
		want string
	}{
		{Thresholds{MinSamples: -3}, "min-samples: -3 is not a number of requests"},
		{Thresholds{MaxErrorRate: 1.5}, "max-error-rate: 1.5 is not a ratio between 0 and 1"},
		{Thresholds{MaxErrorRate: -0.1}, "max-error-rate: -0.1 is not a ratio between 0 and 1"},
		{Thresholds{MaxErrorRateDelta: 2}, "max-error-rate-delta: 2 is not a ratio between 0 and 1"},
		{Thresholds{MaxTTFTP95: -time.Second}, "ttft-p95: -1s is negative"},
		{Thresholds{MaxITLP95: -time.Millisecond}, "itl-p95: -1ms is negative"},
		{Thresholds{MaxTTFTRatio: 0.8}, "ttft-ratio: 0.8 would fail a canary exactly as fast as stable"},
		{Thresholds{MaxITLRatio: -1}, "itl-ratio: -1 would fail a canary exactly as fast as stable"},
		{Thresholds{MaxKVCacheUsage: 90}, "kv-cache-usage: 90 is not a ratio between 0 and 1"},
		{Thresholds{MaxRequestsWaiting: -1}, "requests-waiting: -1 is not a number of requests"},
		{Thresholds{Alpha: 1}, "alpha: 1 is not a significance level between 0 and 1"},
		{Thresholds{Alpha: math.NaN()}, "alpha: NaN is not a number"},
		{Thresholds{MaxTTFTRatio: math.Inf(1)}, "ttft-ratio: +Inf is not a number"},
	} {
		err := tc.th.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want it to say %q", tc.th, err, tc.want)
		}
	}
}

func TestValidateReportsEveryBadField(t *testing.T) {
	err := Thresholds{MinSamples: -1, MaxErrorRate: 2, Alpha: 3}.Validate()
	if err == nil {
		t.Fatal("three bad fields passed")
	}
	for _, f := range []string{"min-samples", "max-error-rate", "alpha"} {
		if !strings.Contains(err.Error(), f+":") {
			t.Errorf("error %q does not name %s", err, f)
		}
	}
}

func TestValidateAcceptsZeroDefaultsAndLimits(t *testing.T) {
	for _, th := range []Thresholds{
		{},
		Thresholds{}.WithDefaults(),
		{MinSamples: 1, MaxErrorRate: 1, MaxErrorRateDelta: 1, MaxTTFTP95: time.Second, MaxITLP95: time.Millisecond,
			MaxTTFTRatio: 1, MaxITLRatio: 3, MaxKVCacheUsage: 1, MaxRequestsWaiting: 100, Alpha: 0.001},
	} {
		if err := th.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v, want nil", th, err)
		}
	}
}

func TestFieldNamesAreTheOnesErrorsUse(t *testing.T) {
	names := FieldNames()
	if len(names) != 10 || len(slices.Compact(slices.Sorted(slices.Values(names)))) != 10 {
		t.Fatalf("FieldNames() = %v, want 10 distinct names", names)
	}
	// Every field at once out of range: each error starts with a listed name.
	all := Thresholds{MinSamples: -1, MaxErrorRate: 2, MaxErrorRateDelta: 2, MaxTTFTP95: -1, MaxITLP95: -1,
		MaxTTFTRatio: 0.5, MaxITLRatio: 0.5, MaxKVCacheUsage: 2, MaxRequestsWaiting: -1, Alpha: 2}
	lines := strings.Split(all.Validate().Error(), "\n")
	if len(lines) != len(names) {
		t.Fatalf("%d errors for %d fields: %q", len(lines), len(names), lines)
	}
	for i, line := range lines {
		if !strings.HasPrefix(line, names[i]+": ") {
			t.Errorf("error %d %q does not start with %q", i, line, names[i]+": ")
		}
	}
}
