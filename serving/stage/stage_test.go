package stage

import (
	"bytes"
	"strings"
	"testing"
)

func TestExitCodes(t *testing.T) {
	for v, want := range map[Verdict]int{Passed: 0, Skipped: 0, Failed: 1, RolledBack: 1, Invalid: 2, Inconclusive: 3, "": 3} {
		if got := v.ExitCode(); got != want {
			t.Errorf("%q.ExitCode() = %d, want %d", v, got, want)
		}
	}
}

func TestResultRoundTrip(t *testing.T) {
	r := New("validate")
	r.Reports = []string{"reports/validation.json"}
	r.Figures = map[string]float64{"cases_passed": 3, "cases_total": 5}
	r.Finish(Failed, "failed: 3 of 5 cases passed, 5 needed")
	var buf bytes.Buffer
	if err := r.Write(&buf); err != nil {
		t.Fatal(err)
	}
	if strings.Count(buf.String(), "\n") != 1 {
		t.Errorf("not one line: %q", buf.String())
	}
	got, err := Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if got.Verdict != Failed || got.ExitCode != 1 || got.Figures["cases_passed"] != 3 || got.Reports[0] != "reports/validation.json" {
		t.Errorf("round trip: %+v", got)
	}
}

func TestReadRefuses(t *testing.T) {
	for in, want := range map[string]string{
		`{"schema":"other","verdict":"passed"}`:           `schema "other"`,
		`{"schema":"modelship.stage/v1","stage":"smoke"}`: "no verdict",
		`passed`: "stage result",
	} {
		if _, err := Read(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Read(%s): %v, want %q", in, err, want)
		}
	}
}
