package shadow

import (
	"testing"
	"time"
)

func TestLatencyKeepsTheLatest(t *testing.T) {
	var w window
	// KeepLatencies answers of 1s, then as many of 1..KeepLatencies ms:
	// the 1s ones are all gone.
	for range KeepLatencies {
		w.add([2]int64{int64(time.Second), int64(time.Second)})
	}
	for i := 1; i <= KeepLatencies; i++ {
		w.add([2]int64{int64(i) * int64(time.Millisecond), int64(2*i) * int64(time.Millisecond)})
	}
	l := w.summary()
	// numpy's linear percentile of 1..10000: p50 5000.5, p99 9900.01.
	if l.N != KeepLatencies || l.TTFBP50Ms != 5000.5 || l.TTFBP99Ms != 9900.01 || l.TotalP50Ms != 10001 {
		t.Errorf("summary %+v, want n %d, ttfb p50 5000.5 p99 9900.01, total p50 10001", l, KeepLatencies)
	}
}
