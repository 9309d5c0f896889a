package deploy

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/modelship/modelship/serving"
)

// ReleaseEnv is the environment a release's serving container gets
// (KEY=VALUE): the image, its digest, the git SHA and deploy time for
// /version, the served name and aliases, then every serving setting's
// variable (empty when unset, clearing what the image baked). No
// MODELSHIP_MODEL_DIGEST: the release hashes its own weights, so /version
// proves which model it serves.
func ReleaseEnv(rel *Release, served []string, settings serving.Settings) []string {
	env := []string{
		serving.EnvImage + "=" + rel.Image, serving.EnvImageDigest + "=" + rel.ImageID,
		serving.EnvDeployedAt + "=" + rel.DeployedAt.Format(time.RFC3339),
	}
	if rel.ID != "" {
		env = append(env, serving.EnvReleaseID+"="+rel.ID)
	}
	if rel.GitSHA != "" {
		env = append(env, serving.EnvGitSHA+"="+rel.GitSHA)
	}
	if len(served) > 0 && served[0] != "" {
		env = append(env, serving.EnvServedName+"="+served[0])
	}
	var aliases []string
	if len(served) > 1 {
		aliases = served[1:]
	}
	env = append(env, serving.EnvServedAliases+"="+serving.JoinWords(aliases))
	// The environment's settings replace whatever the image baked in; a
	// setting the environment leaves out is cleared, so the release runs
	// exactly the settings modelship.yaml gives for it.
	set := map[string]string{}
	for _, kv := range settings.Env() {
		k, v, _ := strings.Cut(kv, "=")
		set[k] = v
	}
	names := make([]string, 0, len(serving.EnvNames()))
	for name := range serving.EnvNames() {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		env = append(env, name+"="+set[name])
	}
	return env
}

// SecretEnv is secrets as KEY=VALUE, sorted by name: a Docker container's
// share of Spec.Secrets.
func SecretEnv(secrets map[string]string) []string {
	env := make([]string, 0, len(secrets))
	for _, k := range slices.Sorted(maps.Keys(secrets)) {
		env = append(env, k+"="+secrets[k])
	}
	return env
}
