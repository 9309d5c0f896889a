package analysis

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/serving/stage"
)

// traffic is n answered, streamed requests whose TTFT is log-normal around
// ttft (and ITL a tenth of it), drawn from seed.
func traffic(seed uint64, n int, ttft time.Duration) []Sample {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s := make([]Sample, n)
	for i := range s {
		d := time.Duration(float64(ttft) * math.Exp(0.25*r.NormFloat64()))
		s[i] = Sample{Status: 200, TTFT: d, ITL: d / 10, Total: 20 * d}
	}
	return s
}

// failing marks the first k of s as failed requests.
func failing(s []Sample, k int) []Sample {
	for i := range k {
		s[i] = Sample{Status: 503, Err: true, TTFT: time.Millisecond}
	}
	return s
}

// checkOf is the check of d named name; it fails the test when d has none.
func checkOf(t *testing.T, d Decision, name string) Check {
	t.Helper()
	for _, c := range d.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %s check in %+v", name, d.Checks)
	return Check{}
}

func mustContain(t *testing.T, what, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Errorf("%s %q does not say %q", what, s, p)
		}
	}
}

func TestDoubledTTFTFailsOnRatioAndRank(t *testing.T) {
	w := Window{Stable: traffic(1, 200, 200*time.Millisecond), Canary: traffic(2, 200, 400*time.Millisecond)}
	d := Analyse(w, Thresholds{})
	if d.Verdict != stage.Failed || d.Decider != "ttft-ratio" {
		t.Fatalf("verdict %s decider %q, want failed on ttft-ratio: %s", d.Verdict, d.Decider, d.Why)
	}
	ratio := checkOf(t, d, "ttft-ratio")
	if r := ratio.Canary / ratio.Stable; r < 1.7 || r > 2.3 {
		t.Errorf("p95 ratio %.2f, want about 2", r)
	}
	mustContain(t, "ttft-ratio why", ratio.Why, fmtMS(ratio.Canary), fmtMS(ratio.Stable), fmtTimes(ratio.Canary, ratio.Stable), "above the 1.5× limit")
	rank := checkOf(t, d, "ttft-rank")
	if rank.Verdict != stage.Failed || rank.P >= 0.001 {
		t.Errorf("ttft-rank %s with p %v, want failed with p < 0.001", rank.Verdict, rank.P)
	}
	mustContain(t, "ttft-rank why", rank.Why, "its median "+fmtMS(rank.Canary), "stable's "+fmtMS(rank.Stable), "p < 0.001")
	mustContain(t, "decision why", d.Why, "failed on ttft-ratio: "+ratio.Why, "also failed: ttft-rank")
}

// A canary of the same latency whose few requests include three slow
// ones (a pause of the host) has a p95 far above stable's, but is not
// slower overall: the ratio check passes it and says why.
func TestAFewSlowRequestsDoNotFailTheRatio(t *testing.T) {
	ca := traffic(2, 30, 50*time.Millisecond)
	for i := range 3 {
		ca[i].TTFT = 150 * time.Millisecond
	}
	d := Analyse(Window{Stable: traffic(1, 400, 50*time.Millisecond), Canary: ca}, Thresholds{})
	ratio := checkOf(t, d, "ttft-ratio")
	if ratio.Canary <= ratio.Limit {
		t.Fatalf("canary p95 %s within the %s limit: the test's outliers do not reach it", fmtMS(ratio.Canary), fmtMS(ratio.Limit))
	}
	if d.Verdict != stage.Passed || ratio.Verdict != stage.Passed || ratio.P < 0.01 {
		t.Fatalf("verdict %s, ttft-ratio %s (p %v): want passed: %s", d.Verdict, ratio.Verdict, ratio.P, ratio.Why)
	}
	mustContain(t, "ttft-ratio why", ratio.Why, "above the 1.5× limit", "but the canary is not slower overall", "a few slow requests, not a regression")
}

func TestFivePercentErrorsFail(t *testing.T) {
	w := Window{Stable: traffic(1, 200, 200*time.Millisecond), Canary: failing(traffic(2, 200, 200*time.Millisecond), 10)}
	d := Analyse(w, Thresholds{})
	if d.Verdict != stage.Failed || d.Decider != "error-rate" {
		t.Fatalf("verdict %s decider %q, want failed on error-rate: %s", d.Verdict, d.Decider, d.Why)
	}
	c := checkOf(t, d, "error-rate")
	if c.Canary != 0.05 || c.Stable != 0 || c.Limit != 0.01 {
		t.Errorf("error-rate figures %v/%v limit %v, want 0.05/0 limit 0.01", c.Canary, c.Stable, c.Limit)
	}
	mustContain(t, "decision why", d.Why, "5.00% (10 of 200 requests)", "above the 1.00% limit", "also failed: error-rate-delta")
	// The failed requests are not latencies: the canary's latency checks pass.
	if v := checkOf(t, d, "ttft-ratio").Verdict; v != stage.Passed {
		t.Errorf("ttft-ratio %s, want passed (errors left out of latencies)", v)
	}
}

// A user relies on an unchanged release passing: over 50 windows of one
// distribution, at most 5 may fail (the rank test alone allows 5% at an
// alpha of 0.05, and fails only with a large median as well).
func TestIdenticalDistributionsPass(t *testing.T) {
	failed := 0
	for seed := range uint64(50) {
		w := Window{Stable: traffic(2*seed, 200, 300*time.Millisecond), Canary: traffic(2*seed+1, 200, 300*time.Millisecond)}
		d := Analyse(w, Thresholds{})
		switch d.Verdict {
		case stage.Passed:
		case stage.Failed:
			failed++
			t.Logf("seed %d: %s", seed, d.Why)
		default:
			t.Errorf("seed %d: %s, want passed or failed: %s", seed, d.Verdict, d.Why)
		}
	}
	if failed > 5 {
		t.Errorf("%d of 50 windows of one distribution failed, want at most 5", failed)
	}
}

func TestTooFewRequestsIsInconclusive(t *testing.T) {
	w := Window{Stable: traffic(1, 200, 200*time.Millisecond), Canary: traffic(2, 7, 200*time.Millisecond)}
	d := Analyse(w, Thresholds{})
	if d.Verdict != stage.Inconclusive || d.CanaryN != 7 || d.StableN != 200 {
		t.Fatalf("verdict %s over %d canary and %d stable, want inconclusive over 7 and 200: %s", d.Verdict, d.CanaryN, d.StableN, d.Why)
	}
	mustContain(t, "decision why", d.Why, "canary has 7 requests, fewer than the 20 needed")
	for _, name := range []string{"error-rate", "error-rate-delta", "ttft-ratio", "ttft-rank"} {
		c := checkOf(t, d, name)
		if c.Verdict != stage.Inconclusive {
			t.Errorf("%s: %s, want inconclusive", name, c.Verdict)
		}
		mustContain(t, name+" why", c.Why, "canary has 7 requests")
	}
	// Stable short: named as such.
	d = Analyse(Window{Stable: traffic(1, 12, time.Second), Canary: traffic(2, 100, time.Second)}, Thresholds{MinSamples: 30})
	mustContain(t, "stable-short why", checkOf(t, d, "ttft-rank").Why, "stable has 12 requests, fewer than the 30 needed")
}

func TestErrorsOnFirstRequestsFailAtOnce(t *testing.T) {
	w := Window{Stable: traffic(1, 200, 200*time.Millisecond), Canary: failing(traffic(2, 5, 200*time.Millisecond), 5)}
	d := Analyse(w, Thresholds{})
	if d.Verdict != stage.Failed || d.Decider != "error-rate" {
		t.Fatalf("verdict %s decider %q, want failed on error-rate: %s", d.Verdict, d.Decider, d.Why)
	}
	mustContain(t, "decision why", d.Why, "5 of its first 5 requests", "15 more needed", "25.00%")
	if v := checkOf(t, d, "ttft-rank").Verdict; v != stage.Inconclusive {
		t.Errorf("ttft-rank %s, want inconclusive on no answered requests", v)
	}
}

func TestFewErrorsThatCanStillPassWait(t *testing.T) {
	// 1 error in 5 at a 10% limit: 1 in 20 (5%) is still possible.
	w := Window{Stable: traffic(1, 200, time.Second), Canary: failing(traffic(2, 5, time.Second), 1)}
	d := Analyse(w, Thresholds{MaxErrorRate: 0.1, MaxErrorRateDelta: 0.1})
	c := checkOf(t, d, "error-rate")
	if c.Verdict != stage.Inconclusive || d.Verdict != stage.Inconclusive {
		t.Fatalf("error-rate %s, decision %s, want both inconclusive: %s", c.Verdict, d.Verdict, c.Why)
	}
	mustContain(t, "error-rate why", c.Why, "canary has 5 requests, fewer than the 20 needed (1 failed so far)")
}

func TestErrorRateDelta(t *testing.T) {
	loose := Thresholds{MaxErrorRate: 0.1}
	stable := failing(traffic(1, 200, time.Second), 4) // 2%
	d := Analyse(Window{Stable: stable, Canary: failing(traffic(2, 200, time.Second), 5)}, loose)
	if c := checkOf(t, d, "error-rate-delta"); c.Verdict != stage.Passed {
		t.Errorf("2.5%% against 2%%: %s, want passed: %s", c.Verdict, c.Why)
	}
	d = Analyse(Window{Stable: stable, Canary: failing(traffic(2, 200, time.Second), 8)}, loose)
	if d.Decider != "error-rate-delta" {
		t.Fatalf("4%% against 2%%: decided by %q, want error-rate-delta: %s", d.Decider, d.Why)
	}
	mustContain(t, "why", d.Why, "canary error rate 4.00% is 2.00% above stable's 2.00%, above the 1.00% allowed")
	d = Analyse(Window{Stable: stable, Canary: traffic(2, 200, time.Second)}, loose)
	mustContain(t, "why", checkOf(t, d, "error-rate-delta").Why, "0.00% is no higher than stable's 2.00%")
	// Early: 10 of 10 failing against a stable at 0 of 19 — at best 10 of
	// 20 (50%) against, at worst, 1 of 20 (5%).
	d = Analyse(Window{Stable: traffic(1, 19, time.Second), Canary: failing(traffic(2, 10, time.Second), 10)}, Thresholds{MaxErrorRate: 1})
	if d.Decider != "error-rate-delta" || d.Verdict != stage.Failed {
		t.Fatalf("10 of 10 failing early: %s by %q, want failed by error-rate-delta: %s", d.Verdict, d.Decider, d.Why)
	}
	mustContain(t, "why", d.Why, "at least 50.00% (10 failed of its first 10 requests), more than 1.00% above the highest stable's can reach, 5.00%")
	// One more stable request missing and it could reach 10%: wait.
	d = Analyse(Window{Stable: traffic(1, 18, time.Second), Canary: failing(traffic(2, 10, time.Second), 10)}, Thresholds{MaxErrorRate: 1, MaxErrorRateDelta: 0.42})
	if c := checkOf(t, d, "error-rate-delta"); c.Verdict != stage.Inconclusive {
		t.Errorf("50%% at best against 10%% at worst, 42%% allowed: %s: %s", c.Verdict, c.Why)
	}
}

func TestSmallSignificantSlowdownPasses(t *testing.T) {
	w := Window{Stable: traffic(1, 2000, 200*time.Millisecond), Canary: traffic(2, 2000, 220*time.Millisecond)}
	d := Analyse(w, Thresholds{})
	rank := checkOf(t, d, "ttft-rank")
	if d.Verdict != stage.Passed || rank.Verdict != stage.Passed || rank.P >= 0.05 {
		t.Fatalf("10%% slower: %s, rank %s p %v, want passed with p < 0.05: %s", d.Verdict, rank.Verdict, rank.P, rank.Why)
	}
	mustContain(t, "ttft-rank why", rank.Why, "significantly slower", "but only slightly", "within the 1.5× limit")
	mustContain(t, "decision why", d.Why, "canary passed all 4 checks over 2000 canary and 2000 stable requests (2 skipped)")
}

func TestLatencySLOs(t *testing.T) {
	th := Thresholds{MaxTTFTP95: 250 * time.Millisecond, MaxITLP95: 100 * time.Millisecond, MaxITLRatio: 1.2}
	w := Window{Stable: traffic(1, 200, 100*time.Millisecond), Canary: traffic(2, 200, 200*time.Millisecond)}
	d := Analyse(w, th)
	if d.Decider != "ttft-p95" {
		t.Fatalf("canary TTFT p95 about 300 ms against a 250 ms SLO: decided by %q: %s", d.Decider, d.Why)
	}
	c := checkOf(t, d, "ttft-p95")
	mustContain(t, "ttft-p95 why", c.Why, "canary TTFT p95 "+fmtMS(c.Canary)+" is above the 250 ms limit")
	if v := checkOf(t, d, "itl-p95").Verdict; v != stage.Passed {
		t.Errorf("ITL p95 about 30 ms against 100 ms: %s", v)
	}
	if v := checkOf(t, d, "itl-ratio").Verdict; v != stage.Failed {
		t.Errorf("ITL doubled against a 1.2× limit: %s", v)
	}
	// Off by default: no check at all.
	for _, c := range Analyse(w, Thresholds{}).Checks {
		if c.Name == "ttft-p95" || c.Name == "itl-p95" || c.Name == "itl-ratio" {
			t.Errorf("%s checked with no limit set", c.Name)
		}
	}
}

func TestITLNeedsStreamedAnswers(t *testing.T) {
	canary := traffic(2, 100, time.Second)
	for i := range canary[5:] {
		canary[5+i].ITL = 0 // answered whole
	}
	d := Analyse(Window{Stable: traffic(1, 100, time.Second), Canary: canary}, Thresholds{MaxITLRatio: 2})
	c := checkOf(t, d, "itl-ratio")
	if c.Verdict != stage.Inconclusive {
		t.Fatalf("itl-ratio on 5 streamed answers: %s", c.Verdict)
	}
	mustContain(t, "itl-ratio why", c.Why, "canary has 5 streamed answers (of 100 requests), fewer than the 20 needed")
}

func TestOnlyAnsweredRequestsAreLatencies(t *testing.T) {
	canary := traffic(2, 100, 100*time.Millisecond)
	for i := range 30 { // quick refusals and failures: not latencies
		canary[i] = Sample{Status: 429, TTFT: time.Microsecond}
	}
	canary = append(canary, Sample{Status: 0, Err: true, TTFT: time.Hour})
	d := Analyse(Window{Stable: traffic(1, 100, 100*time.Millisecond), Canary: canary}, Thresholds{MaxErrorRate: 0.05, MaxErrorRateDelta: 0.05})
	c := checkOf(t, d, "ttft-ratio")
	if c.Canary < 100 || c.Canary > 250 {
		t.Errorf("canary TTFT p95 %v ms, want that of its 70 answered requests (about 150)", c.Canary)
	}
	if d.CanaryN != 101 || checkOf(t, d, "error-rate").Canary != 1.0/101 {
		t.Errorf("counted %d canary requests, error rate %v, want 101 and 1/101", d.CanaryN, checkOf(t, d, "error-rate").Canary)
	}
}

func TestEngineChecks(t *testing.T) {
	w := Window{Stable: traffic(1, 200, time.Second), Canary: traffic(2, 200, time.Second)}
	th := Thresholds{MaxKVCacheUsage: 0.9, MaxRequestsWaiting: 10}
	d := Analyse(w, th)
	for _, name := range []string{"kv-cache-usage", "requests-waiting"} {
		c := checkOf(t, d, name)
		if c.Verdict != stage.Skipped {
			t.Errorf("%s without engine metrics: %s", name, c.Verdict)
		}
		mustContain(t, name+" why", c.Why, "engine metrics could not be read")
	}
	mustContain(t, "off why", checkOf(t, Analyse(w, Thresholds{}), "kv-cache-usage").Why, "no kv-cache-usage limit is set")

	w.CanaryEngine = &Engine{KVCacheUsage: 0.95, RequestsWaiting: 3}
	d = Analyse(w, th)
	if d.Decider != "kv-cache-usage" {
		t.Fatalf("KV cache 95%% against 90%%: decided by %q: %s", d.Decider, d.Why)
	}
	mustContain(t, "why", d.Why, "canary KV-cache usage 95.00% is above the 90.00% limit (stable's not read)")
	w.CanaryEngine, w.StableEngine = &Engine{KVCacheUsage: 0.5, RequestsWaiting: 12}, &Engine{RequestsWaiting: 2}
	d = Analyse(w, th)
	mustContain(t, "why", d.Why, "failed on requests-waiting: canary requests waiting 12 is above the 10 limit (stable's is 2)")
}

func TestChecksInFixedOrder(t *testing.T) {
	th := Thresholds{MaxTTFTP95: time.Second, MaxITLP95: time.Second, MaxITLRatio: 2, MaxKVCacheUsage: 1, MaxRequestsWaiting: 1}
	d := Analyse(Window{Stable: traffic(1, 50, time.Second), Canary: traffic(2, 50, time.Second)}, th)
	var names []string
	for _, c := range d.Checks {
		names = append(names, c.Name)
	}
	want := "error-rate error-rate-delta ttft-p95 itl-p95 ttft-ratio itl-ratio ttft-rank kv-cache-usage requests-waiting"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("checks %s, want %s", got, want)
	}
}

// Every decision, even of an empty window or of zero latencies, encodes
// as JSON (no infinity or NaN in its figures).
func TestDecisionsEncode(t *testing.T) {
	zero := []Sample{{Status: 200}, {Status: 200}}
	for i, w := range []Window{
		{},
		{Stable: zero, Canary: zero},
		{Stable: zero, Canary: traffic(1, 2, time.Second)},
	} {
		d := Analyse(w, Thresholds{MinSamples: 1, MaxITLRatio: 2})
		if _, err := json.Marshal(d); err != nil {
			t.Errorf("window %d: %v", i, err)
		}
	}
}

func TestPercentileNearestRank(t *testing.T) {
	ten := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(i + 1)
	}
	for _, tc := range []struct {
		s    []float64
		p    int
		want float64
	}{
		{ten, 50, 5}, {ten, 95, 10}, {ten, 90, 9}, {ten, 100, 10}, {ten, 1, 1},
		{hundred, 95, 95}, {hundred, 50, 50}, {[]float64{7}, 95, 7}, {nil, 95, 0},
	} {
		if got := percentile(tc.s, tc.p); got != tc.want {
			t.Errorf("p%d of %d values: %v, want %v", tc.p, len(tc.s), got, tc.want)
		}
	}
}

func BenchmarkAnalyse(b *testing.B) {
	w := Window{Stable: traffic(1, 10000, 200*time.Millisecond), Canary: traffic(2, 10000, 210*time.Millisecond),
		StableEngine: &Engine{}, CanaryEngine: &Engine{KVCacheUsage: 0.5}}
	th := Thresholds{MaxTTFTP95: time.Second, MaxITLP95: time.Second, MaxITLRatio: 1.5, MaxKVCacheUsage: 0.9, MaxRequestsWaiting: 10}
	for b.Loop() {
		if d := Analyse(w, th); d.Verdict != stage.Passed {
			b.Fatal(fmt.Sprint(d.Why))
		}
	}
}

// Probes (GET /version, /v1/models: millisecond answers) count for errors
// but never in latency: a canary of the same model whose traffic holds
// fewer probes than stable's is not judged slower.
func TestProbesAreLeftOutOfLatency(t *testing.T) {
	probes := func(n int) []Sample {
		s := make([]Sample, n)
		for i := range s {
			s[i] = Sample{Status: 200, TTFT: 3 * time.Millisecond, Total: 3 * time.Millisecond, Probe: true}
		}
		return s
	}
	stable := append(traffic(1, 100, 30*time.Millisecond), probes(150)...)
	canary := append(traffic(2, 100, 30*time.Millisecond), probes(20)...)
	d := Analyse(Window{Stable: stable, Canary: canary}, Thresholds{}.WithDefaults())
	if d.Verdict != stage.Passed {
		t.Fatalf("same model, another mix of probes: %s: %s", d.Verdict, d.Why)
	}
	if c := checkOf(t, d, "ttft-rank"); c.Stable < 20 || c.Canary < 20 {
		t.Errorf("ttft-rank medians %.1f / %.1f ms, want the generations' (about 30 ms)", c.Stable, c.Canary)
	}
	// Failed probes are still errors of the release (2 of 102: 1.96%).
	failed := Sample{Status: 500, Err: true, Probe: true}
	canary = append(traffic(3, 100, 30*time.Millisecond), failed, failed)
	if d := Analyse(Window{Stable: stable, Canary: canary}, Thresholds{}.WithDefaults()); d.Decider != "error-rate" {
		t.Errorf("a failed probe: decided by %q (%s), want error-rate", d.Decider, d.Why)
	}
}
