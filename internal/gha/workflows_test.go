package gha

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
	"gopkg.in/yaml.v3"

	"github.com/modelship/modelship/serving"
)

// lint runs actionlint (as a library) on files with the repository's
// .github/actionlint.yaml, and returns its findings, one per line.
func lint(t *testing.T, files ...string) []string {
	t.Helper()
	var out bytes.Buffer
	// shellcheck checks the run: scripts when it is installed (Debian's
	// shellcheck package); without it the rest is still checked.
	shellcheck, _ := exec.LookPath("shellcheck")
	l, err := actionlint.NewLinter(&out, &actionlint.LinterOptions{
		ConfigFile: "../../.github/actionlint.yaml",
		Color:      actionlint.ColorOptionKindNever,
		Oneline:    true,
		Shellcheck: shellcheck,
	})
	if err != nil {
		t.Fatal(err)
	}
	errs, err := l.LintFiles(files, nil)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	return msgs
}

func TestWorkflowsPassActionlint(t *testing.T) {
	files, _ := filepath.Glob("../../.github/workflows/*.yml")
	if len(files) < 2 {
		t.Fatalf("workflows: %v, want ci.yml and deploy-model.yml", files)
	}
	if errs := lint(t, files...); len(errs) > 0 {
		t.Errorf("actionlint:\n%s", strings.Join(errs, "\n"))
	}
}

func TestActionlintCatchesABrokenWorkflow(t *testing.T) {
	src, err := os.ReadFile("../../.github/workflows/deploy-model.yml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, old, new, want string }{
		{"unknown job in needs", "needs: validate", "needs: validaet", `job "build" needs job "validaet" which does not exist`},
		{"undefined input", "inputs.environment == 'production'", "inputs.enviroment == 'production'", `property "enviroment" is not defined`},
		{"unknown runner label", "[self-hosted, gpu]", "[self-hosted, tpu]", `label "tpu" is unknown`},
		{"bad expression", "${{ needs.build.outputs.image }} check\n", "${{ needs.build.outputs.image } check\n", "while lexing end marker }}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !bytes.Contains(src, []byte(tt.old)) {
				t.Fatalf("deploy-model.yml no longer holds %q", tt.old)
			}
			broken := filepath.Join(t.TempDir(), "deploy-model.yml")
			os.WriteFile(broken, bytes.Replace(src, []byte(tt.old), []byte(tt.new), 1), 0o644)
			errs := lint(t, broken)
			if !strings.Contains(strings.Join(errs, "\n"), tt.want) {
				t.Errorf("actionlint did not report %q:\n%s", tt.want, strings.Join(errs, "\n"))
			}
		})
	}
}

// TestDeployWorkflowShape checks what actionlint cannot: the triggers, the
// jobs and their order, the runners, the production environment, and that
// every stage is a `dagger call` through the official action pinned to a
// release tag with the engine's version.
func TestDeployWorkflowShape(t *testing.T) {
	b, err := os.ReadFile("../../.github/workflows/deploy-model.yml")
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		Env map[string]string `yaml:"env"`
		On  struct {
			Push struct {
				Branches []string `yaml:"branches"`
				Paths    []string `yaml:"paths"`
			} `yaml:"push"`
			Dispatch struct {
				Inputs map[string]any `yaml:"inputs"`
			} `yaml:"workflow_dispatch"`
		} `yaml:"on"`
		Jobs map[string]struct {
			RunsOn      any               `yaml:"runs-on"`
			Needs       any               `yaml:"needs"`
			Environment any               `yaml:"environment"`
			Env         map[string]string `yaml:"env"`
			Steps       []struct {
				Uses string            `yaml:"uses"`
				With map[string]string `yaml:"with"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(b, &wf); err != nil {
		t.Fatal(err)
	}
	if strings.Join(wf.On.Push.Branches, ",") != "main" || strings.Join(wf.On.Push.Paths, ",") != "models/**,serving/**" {
		t.Errorf("push trigger: %+v", wf.On.Push)
	}
	for _, in := range []string{"model", "environment", "source"} {
		if _, ok := wf.On.Dispatch.Inputs[in]; !ok {
			t.Errorf("workflow_dispatch lacks input %q (modelship trigger sends it)", in)
		}
	}
	want := map[string]string{"validate": "", "build": "validate", "deploy-staging": "build", "deploy-production": "[build deploy-staging]"}
	if len(wf.Jobs) != len(want) {
		t.Errorf("jobs: %d, want %d", len(wf.Jobs), len(want))
	}
	for name, needs := range want {
		j, ok := wf.Jobs[name]
		if !ok {
			t.Errorf("no job %s", name)
			continue
		}
		if got := fmtAny(j.Needs); got != needs {
			t.Errorf("%s needs %q, want %q", name, got, needs)
		}
		calls := 0
		for _, s := range j.Steps {
			if !strings.HasPrefix(s.Uses, "dagger/") {
				continue
			}
			calls++
			if !strings.HasPrefix(s.Uses, "dagger/dagger-for-github@v8.") || s.With["version"] != "0.19.10" || s.With["verb"] != "call" || s.With["args"] == "" {
				t.Errorf("%s: %s with %v: want dagger/dagger-for-github pinned to a tag, version 0.19.10, verb call", name, s.Uses, s.With)
			}
			// The stage containers learn who runs and which run it is
			// only from the constructor's --ci-env.
			if !strings.HasPrefix(s.With["args"], `--ci-env="${{ env.CI_ENV }}" `) {
				t.Errorf("%s: dagger call %q does not pass --ci-env", name, s.With["args"])
			}
		}
		if calls == 0 {
			t.Errorf("%s makes no dagger call", name)
		}
		// Checkpoints live in Git LFS: a checkout without it gives the
		// stages pointer files instead of weights.
		for _, s := range j.Steps {
			if strings.HasPrefix(s.Uses, "actions/checkout@") && s.With["lfs"] != "true" {
				t.Errorf("%s: %s without lfs: true", name, s.Uses)
			}
		}
	}
	// CI_ENV is what the module's constructor accepts, with who and which
	// run (deployed by, the run's link).
	ciEnv := regexp.MustCompile(`\$\{\{[^}]*\}\}`).ReplaceAllString(wf.Env["CI_ENV"], "x")
	if _, err := serving.StageEnv(strings.Split(ciEnv, ",")); err != nil {
		t.Errorf("env CI_ENV %q: %v", wf.Env["CI_ENV"], err)
	}
	for _, v := range []string{"GITHUB_ACTOR=", "GITHUB_WORKFLOW=", "GITHUB_RUN_ID=", "GITHUB_SERVER_URL=", "GITHUB_REPOSITORY="} {
		if !strings.Contains(ciEnv, v) {
			t.Errorf("env CI_ENV lacks %s", v)
		}
	}
	// The validate job serves the model on the GPU runner's GPUs: its
	// Dagger engine must be started with GPU support.
	if wf.Jobs["validate"].Env["_EXPERIMENTAL_DAGGER_GPU_SUPPORT"] == "" {
		t.Error("validate: the Dagger engine is not started with GPU support (_EXPERIMENTAL_DAGGER_GPU_SUPPORT)")
	}
	if got := fmtAny(wf.Jobs["validate"].RunsOn); got != "[self-hosted gpu]" {
		t.Errorf("validate runs on %s, want the self-hosted GPU runner", got)
	}
	if env, _ := wf.Jobs["deploy-production"].Environment.(map[string]any); env["name"] != "production" {
		t.Errorf("deploy-production environment: %v", wf.Jobs["deploy-production"].Environment)
	}
	if strings.Contains(string(b), "password=${{") || strings.Contains(string(b), "key=${{") {
		t.Error("a secret is passed as a value on the command line; pass env:NAME")
	}
}

func fmtAny(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case []any:
		s := make([]string, len(v))
		for i, e := range v {
			s[i] = fmtAny(e)
		}
		return "[" + strings.Join(s, " ") + "]"
	}
	return "?"
}
