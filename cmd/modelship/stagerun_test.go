package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/modelship/modelship/serving/stage"
)

// stageResult decodes what `modelship STAGE --json` printed on stdout:
// exactly one line, a stage.Result of stage whose verdict is want and whose
// exit code is the process's.
func stageResult(t *testing.T, name string, code int, stdout string, want stage.Verdict) *stage.Result {
	t.Helper()
	if strings.Count(stdout, "\n") != 1 || !strings.HasSuffix(stdout, "\n") {
		t.Fatalf("%s --json: stdout is not one line:\n%s", name, stdout)
	}
	r, err := stage.Read(strings.NewReader(stdout))
	if err != nil {
		t.Fatalf("%s --json: %v\n%s", name, err, stdout)
	}
	if r.Stage != name || r.Verdict != want || r.ExitCode != code || code != want.ExitCode() {
		t.Fatalf("%s --json: stage %q, verdict %q, exit_code %d, process exit %d; want %s, verdict %q, exit %d\n%s",
			name, r.Stage, r.Verdict, r.ExitCode, code, name, want, want.ExitCode(), stdout)
	}
	if !strings.HasPrefix(r.Message, string(want)+": ") {
		t.Errorf("%s --json: message %q does not start with the verdict", name, r.Message)
	}
	if r.Started.IsZero() || r.Finished.Before(r.Started) {
		t.Errorf("%s --json: started %v, finished %v", name, r.Started, r.Finished)
	}
	return r
}

// wantReports checks that r lists exactly the files paths.
func wantReports(t *testing.T, r *stage.Result, paths ...string) {
	t.Helper()
	got := slices.Sorted(slices.Values(r.Reports))
	if want := slices.Sorted(slices.Values(paths)); !slices.Equal(got, want) {
		t.Errorf("%s --json: reports %q, want %q", r.Stage, got, want)
	}
}

// A usage error with --json is a result too: verdict invalid, exit 2, and
// the error as its message.
func TestStageJSONUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"validate", "--json", "--cases", "x.json"}, "--endpoint is required"},
		{[]string{"bench", "--json"}, "--endpoint is required"},
		{[]string{"smoke", "--json"}, "--endpoint URL or --env NAME is required"},
		{[]string{"deploy", "--json", "--image", "x"}, "--env NAME is required"},
		{[]string{"rollback", "--json"}, "--env NAME is required"},
		{[]string{"preflight", "--json", "a.yaml", "b.yaml"}, "want at most one config FILE"},
		{[]string{"smoke", "--no-such-flag", "--json"}, "flag provided but not defined"},
	} {
		code, out, _ := runCLI(t, tc.args...)
		r := stageResult(t, tc.args[0], code, out, stage.Invalid)
		if !strings.Contains(r.Message, tc.want) || len(r.Reports) != 0 {
			t.Errorf("%v: message %q, want %q; reports %q", tc.args, r.Message, tc.want, r.Reports)
		}
	}
	// --help prints no result, only the usage (which names the flag).
	if code, out, errs := runCLI(t, "bench", "--help", "--json"); code != exitOK || out != "" || !strings.Contains(errs, "STAGE-RESULT.md") {
		t.Errorf("bench --help --json: exit %d, stdout %q", code, out)
	}
}

// A stage command writes its errors through the runner (which keeps the
// first as a usage error's message) but its progress to the process's own
// stderr: only that one can say whether it is a terminal (progress bars,
// text or JSON log lines).
func TestStageStderr(t *testing.T) {
	var out, errb bytes.Buffer
	var progressTo io.Writer
	code := stageCommand("bench", "", "", func(_ context.Context, _ *noFlags, _ []string, s stdio, sr *stageRun) int {
		progressTo = terminalErr(s.err)
		fmt.Fprintln(s.err, "progress line")
		return sr.bad("--endpoint is required")
	})(context.Background(), []string{"--json"}, stdio{out: &out, err: &errb})
	if progressTo != &errb {
		t.Errorf("terminalErr is %T, want the process's stderr", progressTo)
	}
	r := stageResult(t, "bench", code, out.String(), stage.Invalid)
	if r.Message != "invalid: --endpoint is required" || !strings.Contains(errb.String(), "progress line\nmodelship bench: --endpoint is required\n") {
		t.Errorf("message %q, stderr %q", r.Message, errb.String())
	}
}

// noFlags are the options of a test's stage command: --json alone.
type noFlags struct{}

func (*noFlags) flags(*flag.FlagSet) {}
