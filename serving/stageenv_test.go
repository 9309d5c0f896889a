package serving

import (
	"strings"
	"testing"
)

func TestStageEnv(t *testing.T) {
	ok := []string{"GITHUB_ACTOR=octocat", "GITHUB_RUN_ID=42", "GITHUB_SERVER_URL=https://github.example", "GITHUB_WORKFLOW=deploy model"}
	got, err := StageEnv(ok)
	if err != nil || strings.Join(got, "|") != strings.Join(ok, "|") {
		t.Fatalf("StageEnv(%q) = %q, %v", ok, got, err)
	}
	for _, tc := range []struct {
		pairs []string
		want  string
	}{
		{[]string{"GITHUB_ACTOR"}, "ci-env[0]: expected NAME=VALUE"},
		{[]string{"GITHUB_RUN_ID=1", "GITHUB_ACTIONS=true"}, "ci-env[1]: GITHUB_ACTIONS is not passed to stage containers"},
		{[]string{"GITHUB_TOKEN=ghs_secret"}, "pass it with --secrets env:GITHUB_TOKEN"},
		{[]string{"GITHUB_STEP_SUMMARY=/home/runner/x"}, "GITHUB_STEP_SUMMARY is not a CI run variable a stage uses"},
		{[]string{"GITHUB_ACTOR=a", "GITHUB_ACTOR=b"}, "ci-env[1]: GITHUB_ACTOR given twice"},
		{[]string{"GITHUB_REF=a\nb"}, "expected a value on one line"},
	} {
		_, err := StageEnv(tc.pairs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("StageEnv(%q): %v, want %q", tc.pairs, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "ghs_secret") {
			t.Errorf("the error repeats a value: %v", err)
		}
	}
}
