package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"

	"gopkg.in/yaml.v3"

	"github.com/modelship/modelship/internal/config"
)

func init() {
	register(command{name: "config", summary: "check modelship.yaml and print it with defaults", run: runConfig})
}

func runConfig(ctx context.Context, args []string, s stdio) int {
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	fs.SetOutput(s.err)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: modelship config check [FILE]

Reads FILE (default %s) strictly: an unknown key, a wrong type or an
out-of-range value is an error naming the file, line and column. Prints the
config with every default filled in. Secrets are shown as their references
(env:NAME, file:PATH), never as values; a reference that cannot be resolved
here is a warning, since CI may provide it later.

Exit codes: 0 valid, 2 invalid or unreadable.
`, config.DefaultFile)
		fs.PrintDefaults()
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
	c, ok := loadConfig(s, file)
	if !ok {
		return exitUsage
	}
	if _, err := os.Stat(c.ModelPath()); err != nil {
		fmt.Fprintf(s.err, "%s: model.path: %s does not exist (relative paths are read from the config file's folder)\n", file, c.ModelPath())
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
