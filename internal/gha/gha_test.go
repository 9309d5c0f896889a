package gha

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelship/modelship/internal/config"
)

// runner is a fake Actions environment: the variables the runner sets and
// the files it reads back.
type runner struct {
	env             map[string]string
	output, summary string
	stdout, stderr  bytes.Buffer
}

func newRunner(t *testing.T) *runner {
	dir := t.TempDir()
	r := &runner{output: filepath.Join(dir, "output"), summary: filepath.Join(dir, "summary")}
	r.env = map[string]string{
		"GITHUB_ACTIONS":      "true",
		"GITHUB_OUTPUT":       r.output,
		"GITHUB_STEP_SUMMARY": r.summary,
		"GITHUB_WORKSPACE":    "/work/repo",
	}
	return r
}

func (r *runner) getenv(k string) string { return r.env[k] }

func (r *runner) actions() *Actions { return New(r.getenv, &r.stdout, &r.stderr) }

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOutputsInRunnerFormat(t *testing.T) {
	r := newRunner(t)
	x := r.actions()
	x.SetOutput("model-digest", "sha256:abc")
	x.SetOutput("notes", "line one\nline two")
	x.SetOutput("skipped", "")
	got := read(t, r.output)
	want := "model-digest<<_GitHubActionsFileCommandDelimeter_\nsha256:abc\n_GitHubActionsFileCommandDelimeter_\n" +
		"notes<<_GitHubActionsFileCommandDelimeter_\nline one\nline two\n_GitHubActionsFileCommandDelimeter_\n"
	if got != want {
		t.Fatalf("GITHUB_OUTPUT:\n%q\nwant\n%q", got, want)
	}
	m, err := ParseOutputs(got)
	if err != nil || len(m) != 2 || m["model-digest"] != "sha256:abc" || m["notes"] != "line one\nline two" {
		t.Fatalf("parsed %v, %v", m, err)
	}
	if r.stdout.Len() != 0 || r.stderr.Len() != 0 {
		t.Errorf("outputs printed something: %q %q", r.stdout.String(), r.stderr.String())
	}
}

func TestOutputInjectionRefused(t *testing.T) {
	r := newRunner(t)
	x := r.actions()
	x.SetOutput("verdict", "x\n_GitHubActionsFileCommandDelimeter_\nverdict<<EOF\npassed\nEOF")
	x.SetOutput("bad name", "v")
	if _, err := os.Stat(r.output); !os.IsNotExist(err) {
		t.Errorf("an unsafe output was written: %s", read(t, r.output))
	}
	if !strings.Contains(r.stderr.String(), "holds the file command delimiter") || !strings.Contains(r.stderr.String(), `output name "bad name" is not valid`) {
		t.Errorf("stderr: %s", r.stderr.String())
	}
}

func TestStepSummaryAppends(t *testing.T) {
	r := newRunner(t)
	x := r.actions()
	x.AddStepSummary("## one\n")
	x.AddStepSummary("| a | b |\n|---|---|\n")
	if got, want := read(t, r.summary), "## one\n\n| a | b |\n|---|---|\n\n"; got != want {
		t.Fatalf("summary %q, want %q", got, want)
	}
}

func TestAnnotationsGroupsMasks(t *testing.T) {
	r := newRunner(t)
	x := r.actions()
	end := x.Group("validate: 6 cases")
	x.Error(Annotation{File: "/work/repo/testdata/suites/validation_cases.json", Line: 2, Title: "case capital-of-france, failed", Message: "missing 'Paris'\nsecond line: 100%"})
	x.Warning(Annotation{File: "/elsewhere/x.yaml", Line: 3, Message: "outside the workspace"})
	x.Notice(Annotation{Message: "plain"})
	end()
	end() // ending twice ends once
	x.Mask("s3cr3t", "s3cr3t", "multi\nline", "")
	want := "::group::validate: 6 cases\n" +
		"::error file=testdata/suites/validation_cases.json,line=2,title=case capital-of-france%2C failed::missing 'Paris'%0Asecond line: 100%25\n" +
		"::warning file=/elsewhere/x.yaml,line=3::outside the workspace\n" +
		"::notice::plain\n" +
		"::endgroup::\n" +
		"::add-mask::s3cr3t\n" +
		"::add-mask::multi%0Aline\n::add-mask::multi\n::add-mask::line\n"
	if got := r.stdout.String(); got != want {
		t.Fatalf("stdout:\n%s\nwant:\n%s", got, want)
	}
}

func TestMaskSecretsOfConfig(t *testing.T) {
	r := newRunner(t)
	r.env["MODELSHIP_WEBHOOK_SECRET"] = "hunter2-value"
	cfg, err := config.Load("../../modelship.yaml")
	if err != nil {
		t.Fatal(err)
	}
	x := r.actions()
	if n := x.MaskSecrets(cfg); n != 1 {
		t.Errorf("masked %d secrets, want 1", n)
	}
	if got := r.stdout.String(); got != "::add-mask::hunter2-value\n" {
		t.Errorf("stdout %q", got)
	}
	// An unset secret is skipped, not an error and not printed.
	delete(r.env, "MODELSHIP_WEBHOOK_SECRET")
	r.stdout.Reset()
	if n := r.actions().MaskSecrets(cfg); n != 0 || r.stdout.Len() != 0 {
		t.Errorf("unset secret: %d, %q", n, r.stdout.String())
	}
}

func TestOutsideActionsEverythingIsANoOp(t *testing.T) {
	for _, v := range []string{"", "false", "1"} {
		r := newRunner(t)
		r.env["GITHUB_ACTIONS"] = v
		r.env["MODELSHIP_WEBHOOK_SECRET"] = "hunter2-value"
		x := r.actions()
		cfg, _ := config.Load("../../modelship.yaml")
		x.SetOutput("a", "b")
		x.AddStepSummary("x")
		x.Error(Annotation{Message: "m"})
		x.Group("g")()
		x.Mask("v")
		x.MaskSecrets(cfg)
		x.Validation(nil, "")
		x.ModelDigest("sha256:x")
		if x.Enabled() || r.stdout.Len()+r.stderr.Len() != 0 {
			t.Errorf("GITHUB_ACTIONS=%q: printed %q %q", v, r.stdout.String(), r.stderr.String())
		}
		for _, f := range []string{r.output, r.summary} {
			if _, err := os.Stat(f); !os.IsNotExist(err) {
				t.Errorf("GITHUB_ACTIONS=%q: %s written", v, f)
			}
		}
	}
	var nilActions *Actions
	nilActions.SetOutput("a", "b")
	nilActions.Group("x")()
}

func TestMissingOrUnwritableFilesWarnOnce(t *testing.T) {
	r := newRunner(t)
	delete(r.env, "GITHUB_OUTPUT")
	r.env["GITHUB_STEP_SUMMARY"] = filepath.Join(t.TempDir(), "no", "such", "dir", "summary")
	x := r.actions()
	x.SetOutput("a", "1")
	x.SetOutput("b", "2")
	x.AddStepSummary("x")
	x.AddStepSummary("y")
	got := r.stderr.String()
	if strings.Count(got, "GITHUB_OUTPUT is not set") != 1 || strings.Count(got, "step summary not written") != 1 {
		t.Fatalf("stderr:\n%s", got)
	}
}

func TestRepoPath(t *testing.T) {
	x := New(func(k string) string {
		return map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": "/w/repo"}[k]
	}, &bytes.Buffer{}, nil)
	for in, want := range map[string]string{
		"/w/repo/suites/a.json": "suites/a.json",
		"/w/repo2/a.json":       "/w/repo2/a.json",
		"/w/a.json":             "/w/a.json",
	} {
		if got := x.RepoPath(in); got != want {
			t.Errorf("RepoPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseOutputs(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]string
		wantErr string
	}{
		{"a=1\n\nb=x=y\n", map[string]string{"a": "1", "b": "x=y"}, ""},
		{"a<<EOF\nl1\nl2\nEOF\na=2\n", map[string]string{"a": "2"}, ""},
		{"a<<EOF\n\nEOF\n", map[string]string{"a": ""}, ""},
		{"k=v<<x\n", map[string]string{"k": "v<<x"}, ""},
		{"a<<EOF\nno end\n", nil, "line 1: output a: no closing delimiter"},
		{"garbage\n", nil, "line 1: expected name=value"},
		{"<<EOF\nEOF\n", nil, "line 1: expected name<<DELIMITER"},
	}
	for _, tt := range tests {
		got, err := ParseOutputs(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: error %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || len(got) != len(tt.want) {
			t.Errorf("%q: %v %v", tt.in, got, err)
			continue
		}
		for k, v := range tt.want {
			if got[k] != v {
				t.Errorf("%q: %s=%q, want %q", tt.in, k, got[k], v)
			}
		}
	}
}

// FuzzOutputsRoundTrip: whatever SetOutput accepts, the runner's reading
// gives back exactly; ParseOutputs never panics.
func FuzzOutputsRoundTrip(f *testing.F) {
	f.Add("verdict", "passed")
	f.Add("notes", "a\nb\nc")
	f.Add("x", "_GitHubActionsFileCommandDelimeter_")
	f.Fuzz(func(t *testing.T, name, value string) {
		ParseOutputs(value)
		if strings.Contains(value, "\r") {
			return // how a lone CR reads back depends on the runner's platform
		}
		dir := t.TempDir()
		env := map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": filepath.Join(dir, "out")}
		x := New(func(k string) string { return env[k] }, &bytes.Buffer{}, nil)
		x.SetOutput(name, value)
		b, err := os.ReadFile(env["GITHUB_OUTPUT"])
		if err != nil {
			return // refused
		}
		m, err := ParseOutputs(string(b))
		if err != nil {
			t.Fatalf("written %q does not parse: %v", b, err)
		}
		if m[name] != value {
			t.Fatalf("%s: read back %q, want %q", name, m[name], value)
		}
	})
}
