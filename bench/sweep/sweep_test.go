package sweep

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/bench/gate"
	"github.com/modelship/modelship/bench/metrics"
)

// model is a fake server: p99 TTFT grows with load; errors appear above
// errAbove.
func model(errAbove float64) RunFunc {
	return func(ctx context.Context, load float64) (*metrics.Summary, error) {
		s := &metrics.Summary{Conditions: metrics.Conditions{LoadMode: "concurrency", Load: load}, Requests: 100, Succeeded: 100}
		s.TTFT.P99 = 0.05 * load
		s.OutputTokensPerSec = 100 * load
		if load > errAbove {
			s.Failed, s.Succeeded, s.ErrorRate = 50, 50, 0.5
		}
		return s, nil
	}
}

func judgeTTFT(limit time.Duration) JudgeFunc {
	g := gate.Gate{Limits: gate.Limits{MaxTTFTP99: limit, MaxErrorRate: gate.NoErrorRateLimit}}
	return func(s *metrics.Summary) gate.Verdict { return g.Evaluate(s) }
}

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opt      Options
		run      RunFunc
		judge    JudgeFunc
		measured []float64
		maxLoad  float64
		stopped  string
		overall  gate.Status
	}{
		{name: "auto stops at the first failing load", run: model(1e9), judge: judgeTTFT(300 * time.Millisecond),
			measured: []float64{1, 2, 4, 8}, maxLoad: 4, stopped: "load 8 did not meet the SLOs (p99 TTFT 0.40 s exceeds the limit 0.30 s)", overall: gate.Passed},
		{name: "list is sorted and run to the end", opt: Options{Loads: []float64{3, 1, 2}}, run: model(1e9), judge: judgeTTFT(time.Second),
			measured: []float64{1, 2, 3}, maxLoad: 3, overall: gate.Passed},
		{name: "first load fails", opt: Options{Loads: []float64{10, 20}}, run: model(1e9), judge: judgeTTFT(100 * time.Millisecond),
			measured: []float64{10}, maxLoad: 0, stopped: "load 10 did not meet", overall: gate.Failed},
		{name: "error rate rises without an error gate", opt: Options{Start: 2, Max: 64}, run: model(8), judge: judgeTTFT(10 * time.Second),
			measured: []float64{2, 4, 8, 16}, maxLoad: 8, stopped: "load 16 failed 50% of its requests, above the sweep's stop rate 10%", overall: gate.Passed},
		{name: "stop rate disabled", opt: Options{Loads: []float64{8, 16}, StopErrorRate: -1}, run: model(8), judge: judgeTTFT(10 * time.Second),
			measured: []float64{8, 16}, maxLoad: 16, overall: gate.Passed},
		{name: "auto reaches max", opt: Options{Max: 4}, run: model(1e9), judge: judgeTTFT(10 * time.Second),
			measured: []float64{1, 2, 4}, maxLoad: 4, overall: gate.Passed},
		{name: "inconclusive first load", opt: Options{Loads: []float64{1, 2}}, run: func(ctx context.Context, load float64) (*metrics.Summary, error) {
			return &metrics.Summary{Conditions: metrics.Conditions{Load: load}, Requests: 10, Failed: 10, ErrorRate: 1, Failures: map[string]int{"transport": 10}}, nil
		}, judge: judgeTTFT(time.Second), measured: []float64{1}, stopped: "inconclusive: all 10 requests failed: 10 transport", overall: gate.Inconclusive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var each []float64
			tc.opt.Each = func(i int, load float64, s *metrics.Summary, v gate.Verdict) { each = append(each, load) }
			res, err := Run(context.Background(), tc.opt, tc.run, tc.judge)
			if err != nil {
				t.Fatal(err)
			}
			var got []float64
			for _, s := range res.Sweep.Runs {
				got = append(got, s.Conditions.Load)
			}
			if !reflect.DeepEqual(got, tc.measured) || !reflect.DeepEqual(each, tc.measured) {
				t.Errorf("measured %v (Each saw %v), want %v", got, each, tc.measured)
			}
			if res.Sweep.MaxLoad != tc.maxLoad {
				t.Errorf("MaxLoad %g, want %g", res.Sweep.MaxLoad, tc.maxLoad)
			}
			if len(res.Verdicts) != len(res.Sweep.Runs) {
				t.Errorf("%d verdicts for %d runs", len(res.Verdicts), len(res.Sweep.Runs))
			}
			if tc.stopped == "" && res.Stopped != "" || !strings.Contains(res.Stopped, tc.stopped) {
				t.Errorf("Stopped = %q, want %q", res.Stopped, tc.stopped)
			}
			if o := Overall(res); o.Status != tc.overall {
				t.Errorf("overall %s, want %s", o.Status, tc.overall)
			}
		})
	}
}

func TestOverallUsesMaxLoadChecks(t *testing.T) {
	res, err := Run(context.Background(), Options{Loads: []float64{1, 2, 4}}, model(1e9), judgeTTFT(150*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	o := Overall(res)
	if len(o.Checks) != 1 || o.Checks[0].Figure != 0.1 {
		t.Errorf("overall checks %+v, want the p99 TTFT check of load 2 (0.1 s)", o.Checks)
	}
}

func TestErrors(t *testing.T) {
	for _, opt := range []Options{{Loads: []float64{1, 0}}, {Loads: []float64{2, 2}}, {Start: 8, Max: 4}, {Start: -1}} {
		if _, err := Run(context.Background(), opt, model(1), judgeTTFT(time.Second)); err == nil {
			t.Errorf("%+v: no error", opt)
		}
	}
	boom := errors.New("endpoint vanished")
	res, err := Run(context.Background(), Options{Loads: []float64{1, 2}}, func(ctx context.Context, load float64) (*metrics.Summary, error) {
		if load == 2 {
			return nil, boom
		}
		return model(1e9)(ctx, load)
	}, judgeTTFT(time.Second))
	if !errors.Is(err, boom) || len(res.Sweep.Runs) != 1 || !strings.Contains(fmt.Sprint(err), "load 2") {
		t.Errorf("run error: %v, %d runs", err, len(res.Sweep.Runs))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, Options{}, model(1), judgeTTFT(time.Second)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
