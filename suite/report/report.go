// Package report writes a validation suite's suite.Report for people and
// machines: a terminal summary, JSON, JUnit XML and a Markdown summary for a
// CI step summary. Reporters only format; they never run anything. Each is
// a Reporter, so callers pick them by name:
//
//	report.Text(os.Stdout, r)
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/modelship/modelship/internal/clip"

	"github.com/modelship/modelship/suite"
)

// Reporter writes a report to w.
type Reporter func(w io.Writer, r *suite.Report) error

// JSON writes the whole report, every run of every case included, as
// indented JSON (the shape of suite.Report).
func JSON(w io.Writer, r *suite.Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Text writes the terminal summary: the verdict line, as the article prints
// it ("PASSED: 6 validation cases"), then each case that did not pass with
// the assertion it failed, where it is written, and a preview of the answer.
func Text(w io.Writer, r *suite.Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s\n", strings.ToUpper(string(r.Verdict)), headline(r))
	for _, c := range r.Cases {
		if c.Status == suite.StatusPassed {
			continue
		}
		fmt.Fprintf(&b, "  - %s: %s\n", c.Name, c.Reason)
		p := c.FirstProblem()
		if p == nil {
			continue
		}
		for _, f := range p.Failures {
			fmt.Fprintf(&b, "      assertion: %s  (%s:%d)\n", f.Assertion, c.File, f.Line)
		}
		if len(p.Failures) == 0 {
			fmt.Fprintf(&b, "      case at %s:%d\n", c.File, c.Line)
		}
		switch {
		case p.Error != "" && p.Body != "":
			fmt.Fprintf(&b, "      response: %s\n", Preview(p.Body))
		case p.Error == "":
			fmt.Fprintf(&b, "      output: %q\n", Preview(p.Output))
		}
	}
	fmt.Fprintf(&b, "endpoint %s, model %s, %s in %.1fs\n", r.Endpoint, orDash(r.Model), r.Suite, float64(r.Duration))
	_, err := io.WriteString(w, b.String())
	return err
}

// headline is the verdict's one-line explanation.
func headline(r *suite.Report) string {
	switch r.Verdict {
	case suite.Passed:
		if r.Passed == r.Total {
			return fmt.Sprintf("%d validation cases", r.Total)
		}
		return fmt.Sprintf("%d of %d validation cases passed (threshold %s)", r.Passed, r.Total, pct(r.PassThreshold))
	case suite.Failed:
		return fmt.Sprintf("%d of %d validation cases did not pass (%d passed, %d needed, threshold %s)", r.Total-r.Passed, r.Total, r.Passed, r.Needed, pct(r.PassThreshold))
	}
	return r.Reason
}

func pct(f float64) string { return fmt.Sprintf("%g%%", float64(int(f*1000+0.5))/10) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Preview shortens text to one line of at most suite.PreviewLen characters.
func Preview(s string) string { return clip.Line(s, suite.PreviewLen) }
