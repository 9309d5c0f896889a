package config

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/analysis"
)

const canaryHead = "model: {path: /m}\nenvironments:\n  staging:\n"

// Every canary and shadow key is read where it is written; what a block
// leaves out takes the documented default.
func TestCanaryKeys(t *testing.T) {
	c, err := Load("testdata/canary.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e := c.Environments["staging"]
	want := &Canary{
		Steps: []CanaryStep{{Percent: 5}, {Percent: 25, Bake: Duration(2 * time.Minute)}, {Percent: 50, Pause: true}, {Percent: 100}},
		Bake:  Duration(90 * time.Second), Interval: Duration(5 * time.Second), StickyHeader: "X-Conversation-Id",
		Traffic: "wait", Deadline: Duration(3 * time.Minute),
		Analysis: Analysis{MinSamples: 30, MaxErrorRate: 0.02, MaxErrorRateDelta: 0.005, TTFTP95: Duration(2 * time.Second),
			ITLP95: Duration(100 * time.Millisecond), TTFTRatio: 1.2, ITLRatio: 1.3, KVCacheUsage: 0.95, RequestsWaiting: 4, Alpha: 0.01},
	}
	if !reflect.DeepEqual(e.Canary, want) {
		t.Errorf("canary =\n%+v\nwant\n%+v", e.Canary, want)
	}
	if s := *e.Shadow; s != (Shadow{Percent: 20, Duration: Duration(3 * time.Minute), MinAgreement: 0.8, MinSamples: 40}) {
		t.Errorf("shadow = %+v", s)
	}
	if err := c.Errorf("environments.staging.canary.steps[1].bake", "x"); !strings.HasPrefix(err.Error(), "testdata/canary.yaml:8:38:") {
		t.Errorf("position of steps[1].bake: %v", err)
	}
}

func TestCanaryDefaults(t *testing.T) {
	c, err := Parse("m.yaml", []byte(canaryHead+"    strategy: canary\n    shadow: {}\n  production:\n    canary: {steps: [50, 100]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	staging, production := c.Environments["staging"], c.Environments["production"]
	if !reflect.DeepEqual(staging.Canary, DefaultCanary()) {
		t.Errorf("strategy canary without a block = %+v, want DefaultCanary %+v", staging.Canary, DefaultCanary())
	}
	d := DefaultCanary()
	if len(d.Steps) != 3 || d.Steps[0].Percent != 10 || d.Steps[2].Percent != 100 || d.Bake != Duration(time.Minute) ||
		d.Interval != Duration(10*time.Second) || d.Traffic != "wait" || d.Deadline != Duration(10*time.Minute) {
		t.Errorf("DefaultCanary = %+v, want steps 10, 50, 100, bake 1m, interval 10s, traffic wait, deadline 10m", d)
	}
	if s := *staging.Shadow; s != (Shadow{Percent: 10, Duration: Duration(2 * time.Minute), MinAgreement: 0.9, MinSamples: 20}) {
		t.Errorf("shadow defaults = %+v", s)
	}
	if p := production.Canary; production.Strategy != "auto" || len(p.Steps) != 2 || p.Bake != Duration(time.Minute) || p.Interval != Duration(10*time.Second) {
		t.Errorf("auto with a canary block: strategy %q, canary %+v", production.Strategy, p)
	}
	if c.Environments["staging"].Shadow == nil || production.Shadow != nil {
		t.Error("a shadow block appeared where none was given, or went missing")
	}
	c, err = Parse("m.yaml", []byte(canaryHead+"    strategy: blue-green\n"))
	if err != nil || c.Environments["staging"].Canary != nil {
		t.Errorf("blue-green got a canary: %v %+v", err, c.Environments["staging"].Canary)
	}
}

// Each bad canary or shadow value is refused at its line with what was
// expected; a block the strategy would not use is refused (no dead
// settings), and so is a canary or shadow on Kubernetes.
func TestCanaryErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"steps descending", "    canary: {steps: [50, 25, 100]}\n", []string{"m.yaml:4:26:", "environments.staging.canary.steps[1]", "ascending order, got 25 after 50"}},
		{"last step not 100", "    canary:\n      steps: [10, 50]\n", []string{"m.yaml:5:19:", "canary.steps[1]", "last step to be 100", "got 50"}},
		{"step above 100", "    canary: {steps: [10, 150]}\n", []string{"canary.steps[1]", "percent above 0 and at most 100, got 150"}},
		{"step zero", "    canary: {steps: [0, 100]}\n", []string{"m.yaml:4:22:", "canary.steps[0]", "got 0"}},
		{"no steps", "    canary: {steps: []}\n", []string{"m.yaml:4:21:", "canary.steps", "at least one step"}},
		{"step a list", "    canary: {steps: [[5], 100]}\n", []string{"canary.steps[0]", "expected a percent like 25 or {percent: 25, bake: 2m, pause: true}, got a list"}},
		{"step not a number", "    canary: {steps: [five, 100]}\n", []string{"canary.steps[0]", `expected a number, got "five"`}},
		{"step unknown key", "    canary: {steps: [{percent: 5, wait: 1m}, 100]}\n", []string{"canary.steps[0].wait", `unknown key "wait"`, "bake, pause, percent"}},
		{"step bake zero", "    canary: {steps: [{percent: 5, bake: 0}, 100]}\n", []string{"m.yaml:4:41:", "canary.steps[0].bake", "duration above 0"}},
		{"bake zero", "    canary: {bake: 0s}\n", []string{"m.yaml:4:20:", "canary.bake", "expected a duration above 0"}},
		{"interval zero", "    canary: {interval: 0}\n", []string{"canary.interval", "above 0"}},
		{"deadline negative", "    canary: {deadline: -1m}\n", []string{"canary.deadline", "zero or more"}},
		{"bad traffic", "    canary: {traffic: replay}\n", []string{"m.yaml:4:23:", "canary.traffic", `expected "wait" or "synthetic", got "replay"`}},
		{"bad sticky header", "    canary: {sticky-header: 'X Conv'}\n", []string{"canary.sticky-header", "HTTP header name"}},
		{"error rate above 1", "    canary: {analysis: {max-error-rate: 2}}\n", []string{"m.yaml:4:41:", "canary.analysis.max-error-rate", "2 is not a ratio between 0 and 1"}},
		{"error rate given 0", "    canary: {analysis: {max-error-rate: 0}}\n", []string{"canary.analysis.max-error-rate", "leave it out for the default 0.01"}},
		{"kv cache above 1", "    canary: {analysis: {kv-cache-usage: 95}}\n", []string{"m.yaml:4:41:", "canary.analysis.kv-cache-usage", "95 is not a ratio between 0 and 1"}},
		{"ratio below 1", "    canary: {analysis: {itl-ratio: 0.5}}\n", []string{"m.yaml:4:36:", "canary.analysis.itl-ratio", "0.5 would fail a canary exactly as fast as stable; expected a ratio of 1 or more"}},
		{"ttft ratio given 0", "    canary: {analysis: {ttft-ratio: 0}}\n", []string{"canary.analysis.ttft-ratio", "default 1.5"}},
		{"min samples negative", "    canary: {analysis: {min-samples: -1}}\n", []string{"canary.analysis.min-samples", "-1 is not a number of requests"}},
		{"alpha 1", "    canary: {analysis: {alpha: 1}}\n", []string{"m.yaml:4:32:", "canary.analysis.alpha", "1 is not a significance level between 0 and 1"}},
		{"requests waiting negative", "    canary: {analysis: {requests-waiting: -2}}\n", []string{"canary.analysis.requests-waiting", "-2 is not a number of requests"}},
		{"latency not a duration", "    canary: {analysis: {ttft-p95: fast}}\n", []string{"canary.analysis.ttft-p95", "expected a duration"}},
		{"unknown analysis key", "    canary: {analysis: {p99: 1}}\n", []string{"canary.analysis.p99", "unknown key", "ttft-p95"}},
		{"shadow percent", "    shadow: {percent: 0}\n", []string{"m.yaml:4:23:", "shadow.percent", "above 0 and at most 100, got 0"}},
		{"shadow agreement", "    shadow: {min-agreement: 1.2}\n", []string{"shadow.min-agreement", "fraction from 0 to 1", "got 1.2"}},
		{"shadow samples", "    shadow: {min-samples: 0}\n", []string{"shadow.min-samples", "1 or more"}},
		{"shadow duration", "    shadow: {duration: 0}\n", []string{"shadow.duration", "above 0"}},
		{"canary with recreate", "    strategy: recreate\n    canary: {steps: [50, 100]}\n", []string{"m.yaml:5:13:", "environments.staging.canary", "strategy recreate does not use it", "strategy canary (or auto)"}},
		{"canary with blue-green", "    strategy: blue-green\n    canary: {}\n", []string{"staging.canary", "strategy blue-green does not use it"}},
		{"shadow with recreate", "    strategy: recreate\n    shadow: {}\n", []string{"m.yaml:5:13:", "staging.shadow", "strategy recreate does not use it", "strategy canary (or auto with a canary block)"}},
		{"shadow with blue-green", "    strategy: blue-green\n    shadow: {}\n", []string{"staging.shadow", "strategy blue-green does not use it"}},
		{"shadow with auto and no canary", "    shadow: {percent: 5}\n", []string{"staging.shadow", "strategy auto does not use it"}},
		{"bake on the 100% step", "    canary: {steps: [10, {percent: 100, bake: 1m}]}\n", []string{"m.yaml:4:26:", "canary.steps[1]", "the 100% step is the promotion", "no bake or pause"}},
		{"pause on the 100% step", "    canary: {steps: [{percent: 100, pause: true}]}\n", []string{"canary.steps[0]", "no bake or pause"}},
		{"canary block with rolling on kubernetes", "    target: kubernetes\n    strategy: rolling\n    canary: {}\n", []string{"staging.canary", "strategy rolling does not use it"}},
		{"unknown strategy", "    strategy: progressive\n", []string{`"rolling" or "canary", got "progressive"`}},
	} {
		t.Run(tc.name, func(t *testing.T) { refused(t, canaryHead+tc.yaml, tc.want) })
	}
}

// Every strategy that can use a canary or shadow block accepts it.
func TestCanaryAccepted(t *testing.T) {
	for _, y := range []string{
		"    strategy: canary\n    canary: {steps: [{percent: 5, bake: 30s, pause: true}, 100]}\n    shadow: {percent: 100}\n",
		"    strategy: auto\n    canary: {steps: [100]}\n",
		"    strategy: auto\n    canary: {}\n    shadow: {percent: 5, min-agreement: 0}\n",
		"    canary: ~\n    shadow: ~\n    strategy: recreate\n",
		"    target: kubernetes\n    strategy: canary\n",
		"    target: kubernetes\n    strategy: canary\n    canary: {steps: [25, 50, 100], traffic: synthetic}\n",
	} {
		if _, err := Parse("m.yaml", []byte(canaryHead+y)); err != nil {
			t.Errorf("%q refused: %v", y, err)
		}
	}
}

// canary.analysis spells each limit as package analysis names it (in its
// errors, which validation places at the key's line).
func TestAnalysisKeysAreTheFieldNames(t *testing.T) {
	var keys []string
	at := reflect.TypeOf(Analysis{})
	for i := range at.NumField() {
		keys = append(keys, at.Field(i).Tag.Get("yaml"))
	}
	if !reflect.DeepEqual(keys, analysis.FieldNames()) {
		t.Errorf("canary.analysis keys %v, analysis.FieldNames %v", keys, analysis.FieldNames())
	}
}
