package httpbench

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var out []time.Duration
		for _, n := range ns {
			out = append(out, time.Duration(n)*time.Millisecond)
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(100-i) * time.Millisecond // reversed: Percentile must sort
	}
	for _, tc := range []struct {
		name string
		ds   []time.Duration
		p    int
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"p50 of 1..100", hundred, 50, 50 * time.Millisecond},
		{"p99 of 1..100", hundred, 99, 99 * time.Millisecond},
		{"p100", hundred, 100, 100 * time.Millisecond},
		{"p0 is the minimum", ms(3, 1, 2), 0, 1 * time.Millisecond},
	} {
		if got := Percentile(tc.ds, tc.p); got != tc.want {
			t.Errorf("%s: Percentile(p%d) = %v, want %v", tc.name, tc.p, got, tc.want)
		}
	}
}

// BenchmarkStubDirect measures the stub engine against itself: the added
// figures show the noise floor of the method (they should be near 0).
func BenchmarkStubDirect(b *testing.B) {
	eng := StubEngine(b)
	AddedTTFB(b, eng.URL, eng.URL, Options{Label: "same"})
}
