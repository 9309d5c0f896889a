package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"gopkg.in/yaml.v3"

	"github.com/modelship/modelship/checkpoint"
	"github.com/modelship/modelship/internal/config"
	"github.com/modelship/modelship/serving"
)

func init() {
	register(command{name: "config", summary: "check modelship.yaml and print it with defaults", run: runConfig})
}

const configUsage = `Usage: modelship config check [FILE]
       modelship config serving [FILE] [--env E]

Reads FILE (default ` + config.DefaultFile + `) strictly: an unknown key, a wrong type or an
out-of-range value is an error naming the file, line and column. Prints the
config with every default filled in. Secrets are shown as their references
(env:NAME, file:PATH), never as values; a reference that cannot be resolved
here is a warning, since CI may provide it later.

` + "`config serving`" + ` prints, as JSON, what the serving contract makes of the
serving: section (with environment E's override): the engine, its image, the
container environment that carries the settings, and the engine's command line.

Exit codes: 0 valid, 2 invalid or unreadable.
`

func runConfig(ctx context.Context, args []string, s stdio) int {
	fs := newFlagSet("config check", s, configUsage)
	if len(args) > 0 && args[0] == "serving" {
		return runConfigServing(args[1:], s)
	}
	if len(args) == 0 || args[0] != "check" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fs.Usage()
			return exitOK
		}
		fs.Usage()
		return exitUsage
	}
	if err := fs.Parse(args[1:]); err != nil {
		if err == flag.ErrHelp {
			return exitOK
		}
		return exitUsage
	}
	file := config.DefaultFile
	switch fs.NArg() {
	case 0:
	case 1:
		file = fs.Arg(0)
	default:
		fmt.Fprintln(s.err, "modelship config check: expected at most one FILE")
		return exitUsage
	}
	return configCheck(ctx, file, s)
}

// configCheck reads file strictly, checks its serving settings against the
// checkpoint, warns of secrets it cannot resolve here, and prints it with
// the defaults filled in.
func configCheck(ctx context.Context, file string, s stdio) int {
	c, ok := loadConfig(s, file)
	if !ok {
		return exitUsage
	}
	if _, err := os.Stat(c.ModelPath()); err != nil {
		fmt.Fprintf(s.err, "%s: model.path: %s does not exist (relative paths are read from the config file's folder)\n", file, c.ModelPath())
		return exitUsage
	}
	if errs := checkServingAgainstModel(ctx, c); len(errs) > 0 {
		for _, err := range errs {
			fmt.Fprintln(s.err, err)
		}
		return exitUsage
	}
	secrets := c.Secrets()
	paths := make([]string, 0, len(secrets))
	for p := range secrets {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if _, err := secrets[p].Resolve(nil); err != nil {
			fmt.Fprintf(s.err, "warning: %s: %s: %v\n", file, p, err)
		}
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		fmt.Fprintln(s.err, err)
		return exitFailed
	}
	fmt.Fprintf(s.out, "# %s is valid; defaults filled in\n%s", file, out)
	return exitOK
}

// checkServingAgainstModel applies vLLM's startup rules that need the
// checkpoint (max-model-len above its context, tensor-parallel-size not
// dividing its attention heads) to the file's serving settings and each
// environment's, and a chat template that is not in the checkpoint. Each
// error names the key that gave the value, with its line and column.
func checkServingAgainstModel(ctx context.Context, c *config.Config) []error {
	info, err := checkpoint.Inspect(ctx, c.ModelPath(), checkpoint.Options{})
	if err != nil {
		return []error{c.Errorf("model.path", "%v", err)}
	}
	if c.Serving.Engine == serving.EngineOllama && info.Format != checkpoint.FormatGGUF {
		return []error{c.Errorf("model.path", "engine ollama serves a GGUF file; %s is a %s checkpoint (serve it with engine vllm, or convert it to GGUF)", c.ModelPath(), info.Format)}
	}
	rules := serving.VLLM()
	keyOf := map[string]string{serving.RuleMaxModelLen: "max-model-len", serving.RuleTensorParallel: "tensor-parallel-size", serving.RuleQuantization: "quantization"}
	envs := []string{""}
	for name := range c.Environments {
		envs = append(envs, name)
	}
	sort.Strings(envs)
	seen := map[string]bool{}
	var errs []error
	for _, env := range envs {
		s := c.Serving.Settings
		if env != "" {
			s = c.ServingFor(env)
		}
		for _, r := range rules.CheckModel(s, modelFacts(info)) {
			path := c.ServingKey(env, keyOf[r.Rule])
			if !seen[path] {
				seen[path] = true
				errs = append(errs, c.Errorf(path, "vLLM %s would refuse to start: %s", rules.Version, r.Msg))
			}
		}
		if t := s.ChatTemplate; t != "" {
			path := c.ServingKey(env, "chat-template")
			if _, err := os.Stat(filepath.Join(c.ModelPath(), t)); err != nil && !seen[path] {
				seen[path] = true
				errs = append(errs, c.Errorf(path, "%s is not in the checkpoint directory %s", t, c.ModelPath()))
			}
		}
	}
	return errs
}

func runConfigServing(args []string, s stdio) int {
	fs := flag.NewFlagSet("config serving", flag.ContinueOnError)
	fs.SetOutput(s.err)
	env := fs.String("env", "", "apply this environment's serving override")
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	file := config.DefaultFile
	if len(pos) == 1 {
		file = pos[0]
	} else if len(pos) > 1 {
		fmt.Fprintln(s.err, "modelship config serving: expected at most one FILE")
		return exitUsage
	}
	c, ok := loadConfig(s, file)
	if !ok {
		return exitUsage
	}
	settings := c.Serving.Settings
	if *env != "" {
		if _, err := c.Environment(*env); err != nil {
			fmt.Fprintln(s.err, err)
			return exitUsage
		}
		settings = c.ServingFor(*env)
	}
	out := serving.Contract{Engine: c.Serving.Engine, Image: c.Serving.Image, ServedName: c.Model.ServedName, Aliases: c.Model.Aliases,
		Settings: settings, Env: settings.Env(), VLLM: serving.VLLM().Version,
		Argv: settings.Argv(serving.ModelDir, append([]string{c.Model.ServedName}, c.Model.Aliases...), "127.0.0.1", serving.EnginePort)}
	if out.Env == nil {
		out.Env = []string{}
	}
	enc := json.NewEncoder(s.out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(s.err, err)
		return exitFailed
	}
	return exitOK
}
