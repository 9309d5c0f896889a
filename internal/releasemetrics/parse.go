package releasemetrics

import (
	"fmt"
	"io"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/modelship/modelship/serving"
)

// ParseExposition parses a whole Prometheus text exposition (a GET
// /metrics answer) strictly: a second HELP or TYPE line for a family, or
// a series given twice (the same labels in one family), is an error, as
// they are for a Prometheus scrape.
func ParseExposition(r io.Reader) (map[string]*dto.MetricFamily, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	for name, f := range fams {
		seen := map[string]bool{}
		for _, m := range f.GetMetric() {
			key := labelString(m.GetLabel())
			if seen[key] {
				return nil, fmt.Errorf("metric %s: series {%s} given twice", name, key)
			}
			seen[key] = true
		}
	}
	return fams, nil
}

// Find is the series of family name in fams whose labels include want;
// nil when there is none.
func Find(fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	for _, m := range fams[name].GetMetric() {
		if hasLabels(m.GetLabel(), want) {
			return m
		}
	}
	return nil
}

func hasLabels(have []*dto.LabelPair, want map[string]string) bool {
	n := 0
	for _, l := range have {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			n++
		}
	}
	// A label wanted "" matches its absence too, as in PromQL.
	for k, v := range want {
		if v == "" && !slices.ContainsFunc(have, func(l *dto.LabelPair) bool { return l.GetName() == k }) {
			n++
		}
	}
	return n == len(want)
}

func labelString(ls []*dto.LabelPair) string {
	parts := make([]string, 0, len(ls))
	for _, l := range ls {
		parts = append(parts, l.GetName()+"="+fmt.Sprintf("%q", l.GetValue()))
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// TotalInFlight is the sum of the serving.MetricInFlight series in fams:
// 0 once every request counted has been recorded.
func TotalInFlight(fams map[string]*dto.MetricFamily) float64 {
	n := 0.0
	for _, m := range fams[serving.MetricInFlight].GetMetric() {
		n += m.GetGauge().GetValue()
	}
	return n
}
