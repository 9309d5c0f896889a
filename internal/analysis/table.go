package analysis

import (
	"fmt"
	"strings"

	"github.com/modelship/modelship/serving/stage"
)

// Table is the Markdown table of steps the deploy report prints: a row
// per check of each step (step, check, stable's and the canary's figures,
// the limit, the verdict), then a row with the step's decision and why.
// No steps give "".
func Table(steps []Step) string {
	if len(steps) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("| step | check | stable | canary | limit | verdict |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, s := range steps {
		name := cell(s.Name)
		for _, c := range s.Decision.Checks {
			stable, canary, limit := figures(c)
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", name, cell(c.Name), stable, canary, limit, c.Verdict)
		}
		d := s.Decision
		why := ": " + d.Why // "**failed** on ttft-ratio: ...", not "**failed**: failed on ..."
		if rest, ok := strings.CutPrefix(d.Why, string(d.Verdict)+" "); ok {
			why = " " + rest
		}
		fmt.Fprintf(&b, "| %s | **decision** | %d requests | %d requests | | **%s**%s |\n",
			name, d.StableN, d.CanaryN, d.Verdict, cell(why))
	}
	return b.String()
}

// cell escapes s for a Markdown table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// figures are a check's stable, canary and limit cells.
func figures(c Check) (stable, canary, limit string) {
	f := fmtCount
	switch c.Unit {
	case "ms":
		f = fmtMS
	case "ratio":
		f = fmtRate
	}
	limit = "≤ " + f(c.Limit)
	switch {
	case c.Limit == 0 && c.MaxRatio == 0 && c.Name != "assertions":
		limit = "off"
	case c.MaxRatio != 0:
		limit = "≤ " + fmtLimit(c.MaxRatio) + " stable"
	case c.Name == "error-rate-delta":
		limit = "stable + " + f(c.Limit)
	case c.Name == "agreement": // the shadow's: a floor
		limit = "≥ " + f(c.Limit)
	case c.Name == "assertions": // the shadow's: no more failures than stable
		limit = "≤ stable (" + f(c.Limit) + ")"
	}
	if c.Verdict == stage.Skipped {
		return "–", "–", limit
	}
	stable, canary = f(c.Stable), f(c.Canary)
	if c.MaxRatio != 0 && c.Verdict != stage.Inconclusive {
		canary += " (" + fmtTimes(c.Canary, c.Stable) + ")"
		limit += " (" + f(c.Limit) + ")"
	}
	if strings.HasSuffix(c.Name, "-rank") {
		stable, canary, limit = "median "+stable, "median "+canary, "median "+limit
		if c.Verdict != stage.Inconclusive {
			canary += ", " + fmtP(c.P)
		}
	}
	return stable, canary, limit
}
