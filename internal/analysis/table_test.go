package analysis

import (
	"testing"

	"github.com/modelship/modelship/serving/stage"
)

func TestTable(t *testing.T) {
	steps := []Step{
		{Name: "shadow", Decision: Decision{
			Verdict: stage.Failed, Decider: "assertions", StableN: 64, CanaryN: 64, Why: "the new release failed ...",
			Checks: []Check{
				{Name: "agreement", Stable: 1, Canary: 0.95, Limit: 0.9, Unit: "ratio", Verdict: stage.Passed},
				{Name: "assertions", Stable: 0, Canary: 3, Limit: 0, Unit: "requests", Verdict: stage.Failed},
			},
		}},
		{Name: "5%", Percent: 5, Decision: Decision{
			Verdict: stage.Passed, StableN: 180, CanaryN: 20,
			Why: "canary passed all 3 checks over 20 canary and 180 stable requests (1 skipped)",
			Checks: []Check{
				{Name: "error-rate", Stable: 0.0055, Canary: 0, Limit: 0.01, Unit: "ratio", Verdict: stage.Passed},
				{Name: "ttft-ratio", Stable: 201.4, Canary: 250.2, Limit: 302.1, MaxRatio: 1.5, Unit: "ms", Verdict: stage.Passed},
				{Name: "ttft-rank", Stable: 150, Canary: 160, Limit: 225, MaxRatio: 1.5, P: 0.0432, Unit: "ms", Verdict: stage.Passed},
				{Name: "kv-cache-usage", Limit: 0.9, Unit: "ratio", Verdict: stage.Skipped},
			},
		}},
		{Name: "a|b", Percent: 25, Decision: Decision{
			Verdict: stage.Failed, Decider: "itl-p95", StableN: 300, CanaryN: 100,
			Why: "failed on itl-p95: canary ITL p95 12 ms is above the 9.5 ms limit (stable's is 8.2 ms)",
			Checks: []Check{
				{Name: "itl-p95", Stable: 8.24, Canary: 12.4, Limit: 9.5, Unit: "ms", Verdict: stage.Failed},
				{Name: "requests-waiting", Stable: 1, Canary: 12, Limit: 0, Unit: "requests", Verdict: stage.Skipped},
				{Name: "ttft-ratio", Stable: 0.5, Canary: 0.25, Limit: 0.75, MaxRatio: 1.5, Unit: "ms", Verdict: stage.Inconclusive},
			},
		}},
	}
	want := `| step | check | stable | canary | limit | verdict |
|---|---|---|---|---|---|
| shadow | agreement | 100.00% | 95.00% | ≥ 90.00% | passed |
| shadow | assertions | 0 | 3 | ≤ stable (0) | failed |
| shadow | **decision** | 64 requests | 64 requests | | **failed**: the new release failed ... |
| 5% | error-rate | 0.55% | 0.00% | ≤ 1.00% | passed |
| 5% | ttft-ratio | 201 ms | 250 ms (1.24×) | ≤ 1.5× stable (302 ms) | passed |
| 5% | ttft-rank | median 150 ms | median 160 ms (1.07×), p = 0.043 | median ≤ 1.5× stable (225 ms) | passed |
| 5% | kv-cache-usage | – | – | ≤ 90.00% | skipped |
| 5% | **decision** | 180 requests | 20 requests | | **passed**: canary passed all 3 checks over 20 canary and 180 stable requests (1 skipped) |
| a\|b | itl-p95 | 8.2 ms | 12 ms | ≤ 9.5 ms | failed |
| a\|b | requests-waiting | – | – | off | skipped |
| a\|b | ttft-ratio | 0.50 ms | 0.25 ms | ≤ 1.5× stable | inconclusive |
| a\|b | **decision** | 300 requests | 100 requests | | **failed** on itl-p95: canary ITL p95 12 ms is above the 9.5 ms limit (stable's is 8.2 ms) |
`
	if got := Table(steps); got != want {
		t.Errorf("Table:\n%s\nwant:\n%s", got, want)
	}
	if got := Table(nil); got != "" {
		t.Errorf("Table(nil) = %q, want empty", got)
	}
}

// The figures of a real decision render, the rank check's p with them.
func TestTableOfAnalysis(t *testing.T) {
	w := Window{Stable: traffic(1, 200, 200e6), Canary: traffic(2, 200, 400e6)}
	got := Table([]Step{{Name: "10%", Decision: Analyse(w, Thresholds{})}})
	mustContain(t, "table", got, "| 10% | ttft-rank | median ", ", p < 0.001 | median ≤ 1.5× stable (", "| failed |\n",
		"| 10% | **decision** | 200 requests | 200 requests | | **failed** on ttft-ratio: canary TTFT p95 ")
}
