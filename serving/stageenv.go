package serving

import (
	"fmt"
	"slices"
	"strings"
)

// StageVars are the CI run's variables a Dagger stage container may be
// given (the module's --ci-env): who deploys and which run did it, for
// the release records ("deployed by") and the notifications' run links.
// A Dagger function cannot read its caller's environment, so the workflow
// passes them.
var StageVars = []string{
	"GITHUB_ACTOR", "GITHUB_WORKFLOW", "GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT",
	"GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_SHA", "GITHUB_REF",
	"GITHUB_JOB", "GITHUB_EVENT_NAME",
}

// refusedStageVars say why a variable is not passed into a stage container.
var refusedStageVars = map[string]string{
	"GITHUB_ACTIONS": "it turns on workflow commands, which the runner does not read from a stage container's output (Dagger prefixes each line): an ::add-mask:: would print the value it means to hide",
	"GITHUB_TOKEN":   "it is a secret: pass it with --secrets env:GITHUB_TOKEN",
}

// StageEnv checks NAME=VALUE pairs for a stage container's environment:
// only StageVars, each once, with a value on one line. The error names
// the pair and what was expected; it never repeats a value.
func StageEnv(pairs []string) ([]string, error) {
	seen := map[string]bool{}
	out := make([]string, 0, len(pairs))
	for i, p := range pairs {
		name, value, ok := strings.Cut(p, "=")
		switch {
		case !ok || name == "":
			return nil, fmt.Errorf("ci-env[%d]: expected NAME=VALUE", i)
		case refusedStageVars[name] != "":
			return nil, fmt.Errorf("ci-env[%d]: %s is not passed to stage containers: %s", i, name, refusedStageVars[name])
		case !slices.Contains(StageVars, name):
			return nil, fmt.Errorf("ci-env[%d]: %s is not a CI run variable a stage uses (expected one of %s)", i, name, strings.Join(StageVars, ", "))
		case seen[name]:
			return nil, fmt.Errorf("ci-env[%d]: %s given twice", i, name)
		case strings.ContainsAny(value, "\r\n"):
			return nil, fmt.Errorf("ci-env[%d]: %s: expected a value on one line", i, name)
		}
		seen[name] = true
		out = append(out, p)
	}
	return out, nil
}
