package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/modelship/modelship/suite"
)

// Markdown writes a summary fit for a CI step summary ($GITHUB_STEP_SUMMARY):
// the verdict, a table of every case, then each case that did not pass with
// its assertions and a preview of the answer.
func Markdown(w io.Writer, r *suite.Report) error {
	var b strings.Builder
	icon := map[suite.Verdict]string{suite.Passed: "✅", suite.Failed: "❌", suite.Inconclusive: "⚠️"}[r.Verdict]
	fmt.Fprintf(&b, "## %s Validation %s: %s\n\n", icon, strings.ToUpper(string(r.Verdict)), md(headline(r)))
	fmt.Fprintf(&b, "Suite `%s` against `%s`, model `%s`, %.1fs. %s.\n\n", r.Suite, r.Endpoint, orDash(r.Model), float64(r.Duration), md(r.Reason))
	b.WriteString("| Case | Result | Runs passed | Latency | Why |\n|---|---|---|---|---|\n")
	for _, c := range r.Cases {
		res := map[suite.Status]string{suite.StatusPassed: "✅ passed", suite.StatusFailed: "❌ failed", suite.StatusError: "⚠️ error"}[c.Status]
		var lat float64
		for _, run := range c.Runs {
			lat = max(lat, float64(run.Latency))
		}
		latency := "–"
		if lat > 0 {
			latency = fmt.Sprintf("%.0f ms", lat*1000)
		}
		fmt.Fprintf(&b, "| `%s` (line %d) | %s | %d/%d | %s | %s |\n", c.Name, c.Line, res, c.Passes, c.Repeat, latency, md(c.Reason))
	}
	var problems []suite.CaseResult
	for _, c := range r.Cases {
		if c.Status != suite.StatusPassed {
			problems = append(problems, c)
		}
	}
	if len(problems) > 0 {
		b.WriteString("\n### Cases that did not pass\n")
		for _, c := range problems {
			fmt.Fprintf(&b, "\n**`%s`** — `%s:%d`: %s\n\n", c.Name, c.File, c.Line, md(c.Reason))
			p := c.FirstProblem()
			if p == nil {
				continue
			}
			for _, f := range p.Failures {
				fmt.Fprintf(&b, "- `%s` (line %d): %s\n", strings.ReplaceAll(f.Assertion, "`", "'"), f.Line, md(f.Message))
			}
			out, label := p.Output, "Output"
			if p.Error != "" {
				out, label = p.Body, "Response"
			}
			if out != "" {
				fmt.Fprintf(&b, "\n<details><summary>%s</summary>\n\n```\n%s\n```\n</details>\n", label, strings.ReplaceAll(Preview(out), "```", "'''"))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// md escapes text for a Markdown table cell.
func md(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	return strings.ReplaceAll(s, "\n", " ")
}
