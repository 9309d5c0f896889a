package main

import (
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/modelship/modelship/bench"
	"github.com/modelship/modelship/internal/atomicfile"

	"github.com/modelship/modelship/bench/gate"
	"github.com/modelship/modelship/bench/report"
	"github.com/modelship/modelship/notify"
)

// writeReports writes the four report files, each atomically.
func (r *benchRun) writeReports(rep *report.Report) error {
	if r.results != nil {
		if r.resErr == nil {
			r.resErr = r.resW.Flush()
		}
		if r.resErr != nil {
			return fmt.Errorf("writing results.jsonl: %w", r.resErr)
		}
		if err := r.results.Commit(); err != nil {
			return err
		}
	}
	for name, render := range map[string]func(io.Writer, *report.Report) error{
		"bench.json": report.JSON, "bench.md": report.Markdown, "bench.html": report.HTML,
	} {
		if err := atomicfile.Write(filepath.Join(r.reportDir, name), func(w io.Writer) error { return render(w, rep) }); err != nil {
			return err
		}
	}
	return nil
}

// finishEvents posts the benchmark's outcome with its figures (the main
// run's: the highest load meeting the limits in a sweep).
func (r *benchRun) finishEvents(rep *report.Report) {
	v := rep.Verdict
	if v == nil {
		r.ev.Finish(notify.StatusFailed, "no verdict")
		return
	}
	passed := v.Status == gate.Pass
	if sum := rep.Main(); sum != nil {
		r.ev.Event.Figures = &notify.Figures{Bench: notify.BenchFromSummary(*sum, passed)}
	}
	msg := string(v.Status)
	if len(v.Reasons) > 0 {
		msg += ": " + strings.Join(v.Reasons, "; ")
	}
	r.ev.Finish(gateStatus(passed), msg)
}

// truncate shortens s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func loadLabel(m bench.Mode, level float64) string {
	switch m {
	case bench.Rate:
		return fmt.Sprintf("rate %g/s", level)
	case bench.Poisson:
		return fmt.Sprintf("poisson %g/s", level)
	}
	return fmt.Sprintf("concurrency %g", level)
}

// redactURL drops a password and the query (which may hold a key) from a
// URL recorded in reports.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	u.RawQuery = ""
	u.Fragment = ""
	return u.Redacted()
}
