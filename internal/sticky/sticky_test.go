package sticky

import (
	"fmt"
	"testing"
)

func TestBucketIsFNV1a(t *testing.T) {
	// FNV-1a 32 of "a" is 0xe40c292c = 3826002220; of "" the offset basis
	// 2166136261.
	if Bucket("a") != 3826002220%Buckets || Bucket("") != 2166136261%Buckets {
		t.Fatalf("Bucket(a) = %d, Bucket() = %d", Bucket("a"), Bucket(""))
	}
}

// A value on the canary at one percent stays there at every larger one;
// the share of values on the canary is about the percent; 0 takes none
// and 100 all.
func TestCanaryIsMonotonicAndProportional(t *testing.T) {
	const n = 20000
	for _, pct := range []float64{0, 0.01, 5, 25, 50, 99.99, 100} {
		on := 0
		for i := range n {
			v := fmt.Sprintf("conversation-%d", i)
			c := Canary(v, pct)
			if c {
				on++
			}
			if c && !Canary(v, pct+10) && pct+10 <= 100 {
				t.Fatalf("%s is on the canary at %v%% but not at %v%%", v, pct, pct+10)
			}
		}
		share := 100 * float64(on) / n
		if d := share - pct; d > 1.5 || d < -1.5 || (pct == 0 && on != 0) || (pct == 100 && on != n) {
			t.Errorf("percent %v: %.2f%% of the values on the canary", pct, share)
		}
	}
	if Threshold(12.345) != 1235 || Threshold(100) != Buckets {
		t.Errorf("Threshold(12.345) = %d, Threshold(100) = %d", Threshold(12.345), Threshold(100))
	}
}
