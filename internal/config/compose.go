package config

import (
	"fmt"
	"regexp"
)

// ComposeTarget is environments.NAME.compose: the docker compose project
// and the service of it that a compose target deploys new releases of.
// The engine is reached as environments.NAME.docker says.
type ComposeTarget struct {
	// Files are the project's compose files, in the order `docker compose
	// -f` takes them (later ones override earlier ones), relative to the
	// config file. The first one's directory is the project's working
	// directory (relative paths and .env in the files are read from there).
	Files []string `yaml:"files"`
	// Service is the service of the project whose new releases are
	// deployed (the article's vllm-server). The release image replaces
	// the service's image.
	Service string `yaml:"service"`
	// Project is the compose project name; default as docker compose
	// does: the files' name:, else the working directory's name.
	Project string `yaml:"project"`
	// ProjectDirectory is the project's working directory (`docker compose
	// --project-directory`), relative to the config file: the relative
	// paths of the files (bind mounts, env_file) and the default .env
	// resolve against it; default the first file's directory. Where the
	// deploy runs elsewhere than the files' home (modelship host-run
	// copies the config bundle into a container), give the directory the
	// project has on the Docker host, so bind mounts name host paths.
	ProjectDirectory string `yaml:"project-directory"`
	// EnvFile are the files variables are read from for interpolation
	// (`docker compose --env-file`), relative to the config file; default
	// the working directory's .env when there is one.
	EnvFile []string `yaml:"env-file"`
}

// composeProject is what docker compose accepts as a project name.
var composeProject = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// validateCompose checks environment e's compose block at path p: the
// files and service a compose target needs, and no block on other targets.
func validateCompose(bad func(path, format string, args ...any), p string, e *Environment) {
	c := e.Compose
	if e.Target != "compose" {
		if len(c.Files) > 0 || c.Service != "" || c.Project != "" || c.ProjectDirectory != "" || len(c.EnvFile) > 0 {
			bad(p+".compose", "applies to target compose only; this environment's target is %s", e.Target)
		}
		return
	}
	if len(c.Files) == 0 {
		bad(p+".compose.files", "required for target compose: the project's compose file(s), e.g. [docker-compose.staging.yml]")
	}
	for i, f := range c.Files {
		if f == "" {
			bad(fmt.Sprintf("%s.compose.files[%d]", p, i), "expected a compose file's path, got nothing")
		}
	}
	for i, f := range c.EnvFile {
		if f == "" {
			bad(fmt.Sprintf("%s.compose.env-file[%d]", p, i), "expected an env file's path, got nothing")
		}
	}
	if c.Service == "" {
		bad(p+".compose.service", "required for target compose: the service to deploy, e.g. vllm-server")
	}
	if c.Project != "" && !composeProject.MatchString(c.Project) {
		bad(p+".compose.project", "expected a compose project name (lower-case letters, digits, - and _, starting with a letter or digit), got %q", c.Project)
	}
}

// ComposePaths are environment e's compose files, env files and project
// directory ("" when not given) resolved against the config file's
// directory.
func (c *Config) ComposePaths(e *Environment) (files, envFiles []string, projectDir string) {
	rel := c.Rel
	for _, f := range e.Compose.Files {
		files = append(files, rel(f))
	}
	for _, f := range e.Compose.EnvFile {
		envFiles = append(envFiles, rel(f))
	}
	if d := e.Compose.ProjectDirectory; d != "" {
		projectDir = rel(d)
	}
	return files, envFiles, projectDir
}
