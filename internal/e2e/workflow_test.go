package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/modelship/modelship/internal/trigger"
)

// daggerCall is one `dagger call` a workflow step makes: the constructor's
// flags, the function and the flags given to it (the chained calls after
// it are the core API's).
type daggerCall struct {
	where, fn string
	flags     []string
	// ctorFlags are the constructor's arguments, given before fn.
	ctorFlags []string
	// args are the call's words; jobTimeout the job's timeout-minutes.
	args       []string
	jobTimeout int
}

// workflowCalls lists the dagger calls of the repository's workflows
// (steps using dagger/dagger-for-github with verb call).
func workflowCalls(t *testing.T, root string) []daggerCall {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(root, ".github/workflows/*.yml"))
	actions, _ := filepath.Glob(filepath.Join(root, ".github/actions/*/action.yml"))
	files = append(files, actions...)
	expr := regexp.MustCompile(`\$\{\{[^}]*\}\}`)
	var calls []daggerCall
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var wf struct {
			Jobs map[string]struct {
				TimeoutMinutes int `yaml:"timeout-minutes"`
				Steps          []struct {
					Name string            `yaml:"name"`
					Uses string            `yaml:"uses"`
					With map[string]string `yaml:"with"`
				} `yaml:"steps"`
			} `yaml:"jobs"`
			// A composite action's steps, read as one job.
			Runs struct {
				Steps []struct {
					Name string            `yaml:"name"`
					Uses string            `yaml:"uses"`
					With map[string]string `yaml:"with"`
				} `yaml:"steps"`
			} `yaml:"runs"`
		}
		if err := yaml.Unmarshal(b, &wf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(wf.Runs.Steps) > 0 {
			if wf.Jobs == nil {
				wf.Jobs = map[string]struct {
					TimeoutMinutes int `yaml:"timeout-minutes"`
					Steps          []struct {
						Name string            `yaml:"name"`
						Uses string            `yaml:"uses"`
						With map[string]string `yaml:"with"`
					} `yaml:"steps"`
				}{}
			}
			j := wf.Jobs["composite"]
			for _, st := range wf.Runs.Steps {
				j.Steps = append(j.Steps, st)
			}
			wf.Jobs["composite"] = j
		}
		for job, j := range wf.Jobs {
			for _, st := range j.Steps {
				if !strings.HasPrefix(st.Uses, "dagger/dagger-for-github@") || st.With["verb"] != "call" {
					continue
				}
				words := strings.Fields(expr.ReplaceAllString(st.With["args"], "X"))
				if len(words) == 0 {
					t.Errorf("%s: job %s step %q calls no function", filepath.Base(f), job, st.Name)
					continue
				}
				c := daggerCall{where: filepath.Base(f) + ": job " + job + ", step " + st.Name, args: words, jobTimeout: j.TimeoutMinutes}
				// flags reads --flag[=value] words from i on: the
				// constructor's before the function, the function's after.
				flags := func(i int) ([]string, int) {
					var names []string
					for ; i < len(words) && strings.HasPrefix(words[i], "--"); i++ {
						name, _, hasValue := strings.Cut(strings.TrimPrefix(words[i], "--"), "=")
						names = append(names, name)
						if !hasValue && i+1 < len(words) && !strings.HasPrefix(words[i+1], "--") {
							i++ // --flag value
						}
					}
					return names, i
				}
				var i int
				c.ctorFlags, i = flags(0)
				if i >= len(words) {
					t.Errorf("%s calls no function", c.where)
					continue
				}
				c.fn = words[i]
				c.flags, _ = flags(i + 1) // then a chained call (export, file, ...)
				calls = append(calls, c)
			}
		}
	}
	sort.Slice(calls, func(i, j int) bool { return calls[i].where < calls[j].where })
	return calls
}

// Every `dagger call` in the workflows names a function of this module and
// only arguments it has: actionlint checks a workflow's syntax, not that
// the pipeline it calls takes what it is given.
func TestWorkflowCallsMatchTheModule(t *testing.T) {
	engine(t)
	dir := clone(t)
	calls := workflowCalls(t, dir)
	if len(calls) < 5 {
		t.Fatalf("found %d dagger calls in the workflows, want the deploy workflow's (at least 5)", len(calls))
	}
	args := map[string]map[string]bool{}
	flagLine := regexp.MustCompile(`(?m)^\s+--([a-z0-9-]+)\s`)
	// The constructor's arguments are listed by `dagger call --help`.
	r := call(t, dir, "--help")
	if r.err != nil {
		t.Fatalf("dagger call --help: %v\n%s", r.err, tail(r.stderr))
	}
	ctor := map[string]bool{}
	for _, m := range flagLine.FindAllStringSubmatch(r.stdout+r.stderr, -1) {
		ctor[m[1]] = true
	}
	for _, c := range calls {
		for _, f := range c.ctorFlags {
			if !ctor[f] {
				t.Errorf("%s: the module's constructor has no argument --%s", c.where, f)
			}
		}
	}
	for _, c := range calls {
		known, ok := args[c.fn]
		if !ok {
			r := call(t, dir, c.fn, "--help")
			if r.err != nil {
				t.Errorf("%s: dagger call %s --help: %v\n%s", c.where, c.fn, r.err, tail(r.stderr))
				args[c.fn] = nil
				continue
			}
			known = map[string]bool{}
			for _, m := range flagLine.FindAllStringSubmatch(r.stdout+r.stderr, -1) {
				known[m[1]] = true
			}
			if !known["help"] && len(known) == 0 {
				t.Fatalf("dagger call %s --help lists no arguments:\n%s", c.fn, r.stdout)
			}
			args[c.fn] = known
		}
		if known == nil {
			continue
		}
		for _, f := range c.flags {
			if !known[f] {
				t.Errorf("%s: dagger call %s has no argument --%s", c.where, c.fn, f)
			}
		}
	}
}

// A job that runs a deploy stage outlasts the stage's own bound (which the
// deploy in it keeps, its undo included): otherwise GitHub kills the job,
// and the deploy with it, before it can undo a failed release.
func TestDeployJobsOutlastTheirStages(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	// The module's default stage bounds (ci/deploy.go).
	defaults := map[string]time.Duration{"deploy": 30 * time.Minute, "rollback": 30 * time.Minute}
	n := 0
	for _, c := range workflowCalls(t, root) {
		stage, ok := defaults[c.fn]
		if !ok {
			continue
		}
		n++
		for _, w := range c.args {
			if v, ok := strings.CutPrefix(w, "--timeout="); ok {
				if stage, err = time.ParseDuration(v); err != nil {
					t.Errorf("%s: --timeout=%s: %v", c.where, v, err)
				}
			}
		}
		if job := time.Duration(c.jobTimeout) * time.Minute; job < stage+5*time.Minute {
			t.Errorf("%s: the job's timeout-minutes %d does not outlast the %s stage's bound %s by 5 minutes", c.where, c.jobTimeout, c.fn, stage)
		}
	}
	if n == 0 {
		t.Fatal("no deploy or rollback call found in the workflows")
	}
}

// What `modelship trigger --github-repo` dispatches, the deploy workflow
// declares: GitHub refuses a dispatch with an undeclared input (422), and
// one the workflow ignored would release models/current, not the revision.
func TestTriggerDispatchMatchesTheWorkflow(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, ".github/workflows/deploy-model.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		On struct {
			Dispatch struct {
				Inputs map[string]any `yaml:"inputs"`
			} `yaml:"workflow_dispatch"`
		} `yaml:"on"`
	}
	if err := yaml.Unmarshal(b, &wf); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	gh := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Inputs map[string]any `json:"inputs"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		got = body.Inputs
		w.WriteHeader(http.StatusNoContent)
	}))
	defer gh.Close()
	d := &trigger.Dispatch{API: gh.URL, Owner: "acme", Repo: "models", Workflow: "deploy-model.yml", Ref: "main", Token: "t",
		Inputs: map[string]string{"environment": "staging"}}
	ev := trigger.Event{Source: "mlflow", Repo: "tiny-chat", Revision: "3", Digest: "sha256:" + strings.Repeat("ab", 32)}
	if _, err := d.Start(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if got["source"] != ev.Key() || got["digest"] != ev.Digest {
		t.Errorf("dispatched inputs %v, want the revision's source and digest", got)
	}
	for k := range got {
		if _, ok := wf.On.Dispatch.Inputs[k]; !ok {
			t.Errorf("the trigger sends input %q, which deploy-model.yml does not declare", k)
		}
	}
}
