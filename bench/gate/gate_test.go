package gate

import (
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/bench/metrics"
)

// summary is a healthy run: 100 requests, 2 failed, p99 TTFT 0.33 s, p99
// E2EL 1.8 s, p99 TPOT 30 ms, 600 output tokens/s.
func summary() *metrics.Summary {
	return &metrics.Summary{
		Conditions: metrics.Conditions{Prompts: "prompts.jsonl", LoadMode: "concurrency", Load: 8, MaxTokens: 128},
		Requests:   100, Succeeded: 98, Failed: 2, ErrorRate: 0.02,
		Failures:           map[string]int{"timeout": 2},
		TTFT:               metrics.Distribution{Count: 98, P99: 0.33},
		E2EL:               metrics.Distribution{Count: 98, P99: 1.8},
		TPOT:               metrics.Distribution{Count: 98, P99: 0.030},
		OutputTokensPerSec: 600,
	}
}

func with(f func(s *metrics.Summary)) *metrics.Summary {
	s := summary()
	f(s)
	return s
}

func TestEvaluate(t *testing.T) {
	all := Limits{MinTokensPerSec: 500, MaxLatencyP99: 2 * time.Second, MaxTTFTP99: 500 * time.Millisecond, MaxTPOTP99: 50 * time.Millisecond, MaxErrorRate: 0.05}
	for _, tc := range []struct {
		name     string
		s        *metrics.Summary
		gate     Gate
		status   Status
		failed   []string // names of failed checks
		messages []string // substrings of some check message, reason or warning
	}{
		{name: "all limits met", s: summary(), gate: Gate{Limits: all}, status: Passed,
			messages: []string{"output throughput 600 tokens/s meets the minimum 500 tokens/s", "p99 end-to-end latency 1.80 s is within the limit 2.00 s", "p99 TPOT 30.0 ms is within the limit 50.0 ms", "error rate 2% (2 of 100 requests failed: 2 timeout) is within the limit 5%"}},
		{name: "no limits passes with enough samples", s: summary(), gate: Gate{Limits: Limits{MaxErrorRate: NoErrorRateLimit}}, status: Passed},
		{name: "too slow", s: with(func(s *metrics.Summary) { s.OutputTokensPerSec = 499.9 }), gate: Gate{Limits: all}, status: Failed,
			failed: []string{"output tokens/s"}, messages: []string{"output throughput 500 tokens/s is below the minimum 500 tokens/s"}},
		{name: "article p99 latency", s: with(func(s *metrics.Summary) { s.E2EL.P99 = 2.31 }), gate: Gate{Limits: Limits{MaxLatencyP99: 2 * time.Second, MaxErrorRate: -1}}, status: Failed,
			failed: []string{"p99 end-to-end latency"}, messages: []string{"p99 end-to-end latency 2.31 s exceeds the limit 2.00 s"}},
		{name: "latency exactly at limit passes", s: with(func(s *metrics.Summary) { s.E2EL.P99 = 2 }), gate: Gate{Limits: Limits{MaxLatencyP99: 2 * time.Second, MaxErrorRate: -1}}, status: Passed},
		{name: "ttft and tpot", s: with(func(s *metrics.Summary) { s.TTFT.P99 = 0.6; s.TPOT.P99 = 0.051 }), gate: Gate{Limits: all}, status: Failed,
			failed: []string{"p99 TTFT", "p99 TPOT"}, messages: []string{"p99 TTFT 0.60 s exceeds the limit 0.50 s", "p99 TPOT 51.0 ms exceeds the limit 50.0 ms"}},
		{name: "zero error rate limit", s: summary(), gate: Gate{Limits: Limits{MaxErrorRate: 0}}, status: Failed,
			failed: []string{"error rate"}, messages: []string{"error rate 2% (2 of 100 requests failed: 2 timeout) exceeds the limit 0%"}},
		{name: "too few samples is inconclusive even if checks fail", s: with(func(s *metrics.Summary) { s.Requests, s.Succeeded, s.Failed = 9, 9, 0; s.E2EL.P99 = 9 }), gate: Gate{Limits: all}, status: Inconclusive,
			failed: []string{"p99 end-to-end latency"}, messages: []string{"only 9 successful requests, fewer than the 10 needed to judge"}},
		{name: "too few samples with passing checks is not a pass", s: with(func(s *metrics.Summary) { s.Requests, s.Succeeded = 5, 5 }), gate: Gate{Limits: Limits{MaxErrorRate: -1}}, status: Inconclusive},
		{name: "min samples configurable", s: with(func(s *metrics.Summary) { s.Requests, s.Succeeded, s.Failed, s.ErrorRate = 5, 5, 0, 0 }), gate: Gate{Limits: Limits{MinSamples: 5, MaxErrorRate: -1}}, status: Passed},
		{name: "all failed", s: with(func(s *metrics.Summary) {
			s.Succeeded, s.Failed, s.ErrorRate, s.Failures = 0, 100, 1, map[string]int{"transport": 100}
			s.ErrorExamples = map[string]string{"transport": "dial tcp 127.0.0.1:1: connect: connection refused"}
		}), gate: Gate{Limits: all, Baseline: summary()}, status: Inconclusive, failed: []string{"error rate"},
			messages: []string{"all 100 requests failed: 100 transport (e.g. dial tcp 127.0.0.1:1: connect: connection refused)"}},
		{name: "nothing measured", s: &metrics.Summary{}, gate: Gate{Limits: Limits{MaxErrorRate: -1}}, status: Inconclusive, messages: []string{"no requests were measured"}},

		{name: "baseline regression", s: with(func(s *metrics.Summary) { s.TTFT.P99 = 0.41 }), gate: Gate{Limits: Limits{MaxErrorRate: -1}, Baseline: summary(), Tolerances: DefaultTolerances}, status: Failed,
			failed: []string{"p99 TTFT vs baseline"}, messages: []string{"p99 TTFT 0.41 s is 24% worse than the baseline's 0.33 s (limit +10%)", "p99 end-to-end latency 1.80 s is the same as the baseline's 1.80 s (limit +10%)"}},
		{name: "baseline within tolerance", s: with(func(s *metrics.Summary) { s.TTFT.P99 = 0.36; s.E2EL.P99 = 1.5; s.OutputTokensPerSec = 545 }), gate: Gate{Limits: Limits{MaxErrorRate: -1}, Baseline: summary(), Tolerances: DefaultTolerances}, status: Passed,
			messages: []string{"p99 TTFT 0.36 s is 9% worse than the baseline's 0.33 s", "p99 end-to-end latency 1.50 s is 17% better than the baseline's 1.80 s", "output throughput 545 tokens/s is 9% worse than the baseline's 600 tokens/s (limit −10%)"}},
		{name: "baseline throughput regression", s: with(func(s *metrics.Summary) { s.OutputTokensPerSec = 450 }), gate: Gate{Limits: Limits{MaxErrorRate: -1}, Baseline: summary(), Tolerances: AllTolerances(0.2)}, status: Failed,
			failed: []string{"output tokens/s vs baseline"}, messages: []string{"output throughput 450 tokens/s is 25% worse than the baseline's 600 tokens/s (limit −20%)"}},
		{name: "baseline with different conditions warns", s: with(func(s *metrics.Summary) { s.Conditions.Load = 16; s.Conditions.MaxTokens = 256 }), gate: Gate{Limits: Limits{MaxErrorRate: -1}, Baseline: summary(), Tolerances: DefaultTolerances}, status: Passed,
			messages: []string{"the baseline was measured with load concurrency 8, this run with concurrency 16", "max_tokens 128, this run with 256"}},
		{name: "baseline too small", s: summary(), gate: Gate{Limits: Limits{MaxErrorRate: -1}, Baseline: &metrics.Summary{Requests: 3, Succeeded: 3}, Tolerances: DefaultTolerances}, status: Inconclusive,
			messages: []string{"the baseline has only 3 successful requests"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.gate.Evaluate(tc.s)
			if v.Status != tc.status {
				t.Errorf("status = %s, want %s; verdict %+v", v.Status, tc.status, v)
			}
			var failed []string
			for _, c := range v.Failed() {
				failed = append(failed, c.Name)
			}
			if strings.Join(failed, ",") != strings.Join(tc.failed, ",") {
				t.Errorf("failed checks = %q, want %q", failed, tc.failed)
			}
			text := strings.Join(v.Reasons, "\n") + "\n" + strings.Join(v.Warnings, "\n")
			for _, c := range v.Checks {
				text += "\n" + c.Message
			}
			for _, m := range tc.messages {
				if !strings.Contains(text, m) {
					t.Errorf("no message contains %q; got:\n%s", m, text)
				}
			}
		})
	}
}

func TestCheckText(t *testing.T) {
	v := Gate{Limits: Limits{MinTokensPerSec: 500, MaxTTFTP99: 250 * time.Millisecond, MaxErrorRate: 0.01}}.Evaluate(summary())
	got := map[string]string{}
	for _, c := range v.Checks {
		got[c.Name] = c.FigureText() + " | " + c.LimitText()
	}
	want := map[string]string{
		"output tokens/s": "600 tokens/s | ≥ 500 tokens/s",
		"p99 TTFT":        "0.33 s | ≤ 0.25 s",
		"error rate":      "2% | ≤ 1%",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{Seconds(2.31), "2.31 s"}, {Seconds(12.345), "12.3 s"}, {Seconds(0.0452), "45.2 ms"},
		{Seconds(0), "0.0 ms"}, {Seconds(0.0000123), "12 µs"},
		{Rate(812.44), "812 tokens/s"}, {Rate(12.34), "12.3 tokens/s"},
		{Percent(0.1), "10%"}, {Percent(0.025), "2.5%"}, {Percent(1), "100%"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
