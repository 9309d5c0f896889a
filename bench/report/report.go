// Package report renders a benchmark's results: a terminal table, JSON (which
// is also the --baseline input format, read back with ReadJSON), Markdown for
// a CI step summary, and one self-contained HTML file with inline SVG charts
// that opens in a browser with no network.
//
// Every renderer takes a *Report: one run's metrics.Summary or a
// metrics.Sweep, plus the gate's verdict.
package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/modelship/modelship/bench/gate"
	"github.com/modelship/modelship/bench/metrics"
)

// FormatVersion is written in every JSON report; ReadJSON accepts it and
// older ones.
const FormatVersion = 1

// Tool names the producer in the JSON report.
const Tool = "modelship bench"

// Report is what a benchmark produced: one run (Summary) or a sweep, and the
// verdict. Exactly one of Summary and Sweep is set.
type Report struct {
	Tool          string `json:"tool"`
	FormatVersion int    `json:"format_version"`

	Summary *metrics.Summary `json:"summary,omitempty"`
	Sweep   *metrics.Sweep   `json:"sweep,omitempty"`
	// SweepVerdicts are the verdicts of each sweep run, in Sweep.Runs order.
	SweepVerdicts []gate.Verdict `json:"sweep_verdicts,omitempty"`

	// Verdict is the gate's overall outcome; nil when nothing was judged.
	Verdict *gate.Verdict `json:"verdict,omitempty"`
	// Baseline is the file the run was compared with, if any.
	Baseline string `json:"baseline,omitempty"`
}

// New returns a report of one run.
func New(s *metrics.Summary, v *gate.Verdict) *Report {
	return &Report{Tool: Tool, FormatVersion: FormatVersion, Summary: s, Verdict: v}
}

// NewSweep returns a report of a sweep with each run's verdict and the
// overall one.
func NewSweep(sw *metrics.Sweep, runs []gate.Verdict, v *gate.Verdict) *Report {
	return &Report{Tool: Tool, FormatVersion: FormatVersion, Sweep: sw, SweepVerdicts: runs, Verdict: v}
}

// Main is the run a report is mostly about: the Summary, or for a sweep the
// run at the highest load that met the SLOs (the first run if none did).
// Nil for an empty sweep.
func (r *Report) Main() *metrics.Summary {
	if r.Summary != nil {
		return r.Summary
	}
	if r.Sweep == nil || len(r.Sweep.Runs) == 0 {
		return nil
	}
	if i := r.maxLoadIndex(); i >= 0 {
		return &r.Sweep.Runs[i]
	}
	return &r.Sweep.Runs[0]
}

func (r *Report) maxLoadIndex() int {
	if r.Sweep == nil || r.Sweep.MaxLoad == 0 {
		return -1
	}
	for i := range r.Sweep.Runs {
		if r.Sweep.Runs[i].Conditions.Load == r.Sweep.MaxLoad {
			return i
		}
	}
	return -1
}

// BaselineFor picks the run of this (baseline) report to compare a run at
// load with: the Summary, or the sweep run at the same load, else the sweep's
// main run.
func (r *Report) BaselineFor(load float64) *metrics.Summary {
	if r.Sweep != nil {
		for i := range r.Sweep.Runs {
			if r.Sweep.Runs[i].Conditions.Load == load {
				return &r.Sweep.Runs[i]
			}
		}
	}
	return r.Main()
}

// RunAt returns this (baseline) report's run measured at exactly load with
// the given load mode, or nil: a sweep compares each of its loads only with
// the same load of the baseline.
func (r *Report) RunAt(mode string, load float64) *metrics.Summary {
	if r.Summary != nil {
		if r.Summary.Conditions.LoadMode == mode && r.Summary.Conditions.Load == load {
			return r.Summary
		}
		return nil
	}
	if r.Sweep != nil {
		for i := range r.Sweep.Runs {
			c := r.Sweep.Runs[i].Conditions
			if c.LoadMode == mode && c.Load == load {
				return &r.Sweep.Runs[i]
			}
		}
	}
	return nil
}

// JSON writes the report as indented JSON.
func JSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadJSON reads a report written by JSON (a baseline). It also accepts a
// bare metrics.Summary object.
func ReadJSON(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse decodes a JSON report; name is used in errors.
func Parse(name string, data []byte) (*Report, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, jsonError(name, data, err)
	}
	r := &Report{}
	_, hasSummary := probe["summary"]
	_, hasSweep := probe["sweep"]
	switch {
	case hasSummary || hasSweep:
		if err := json.Unmarshal(data, r); err != nil {
			return nil, jsonError(name, data, err)
		}
		if r.FormatVersion > FormatVersion {
			return nil, fmt.Errorf("%s: report format_version %d is newer than this modelship understands (%d)", name, r.FormatVersion, FormatVersion)
		}
	case probe["conditions"] != nil && probe["requests"] != nil:
		var s metrics.Summary
		if err := json.Unmarshal(data, &s); err != nil {
			return nil, jsonError(name, data, err)
		}
		r = New(&s, nil)
	default:
		return nil, fmt.Errorf("%s: not a modelship bench report: expected an object with \"summary\" or \"sweep\" (as written by --report-dir's bench.json or --json)", name)
	}
	if r.Summary == nil && (r.Sweep == nil || len(r.Sweep.Runs) == 0) {
		return nil, fmt.Errorf("%s: the report holds no runs", name)
	}
	if r.Summary != nil && r.Sweep != nil {
		return nil, fmt.Errorf("%s: the report has both \"summary\" and \"sweep\"; expected one", name)
	}
	if r.Tool == "" {
		r.Tool = Tool
	}
	oldStatus(r.Verdict)
	for i := range r.SweepVerdicts {
		oldStatus(&r.SweepVerdicts[i])
	}
	return r, nil
}

// oldStatus reads a verdict written before the stages shared one
// vocabulary ("pass" and "fail") in today's words.
func oldStatus(v *gate.Verdict) {
	if v == nil {
		return
	}
	switch v.Status {
	case "pass":
		v.Status = gate.Passed
	case "fail":
		v.Status = gate.Failed
	}
}

// jsonError names the file, line and column of a JSON error.
func jsonError(name string, data []byte, err error) error {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
		if te.Field != "" {
			err = fmt.Errorf("field %q: expected %s, got JSON %s", te.Field, te.Type, te.Value)
		}
	}
	if off < 0 {
		return fmt.Errorf("%s: %v", name, err)
	}
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	line := bytes.Count(data[:off], []byte("\n")) + 1
	// Offset counts the bytes read, up to and including the bad one.
	col := max(off-int64(bytes.LastIndexByte(data[:off], '\n'))-1, 1)
	return fmt.Errorf("%s:%d:%d: %v", name, line, col, err)
}
