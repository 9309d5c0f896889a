package main

import (
	"flag"
	"strings"
)

// parseFlags parses args with fs, allowing flags to come before, between or
// after positional arguments (`modelship inspect PATH --json`). It returns
// the positional arguments in order. A lone "--" ends flag parsing: every
// argument after it is positional. --help/-h returns flag.ErrHelp after fs has
// printed its usage.
func parseFlags(fs *flag.FlagSet, args []string) (positional []string, err error) {
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		// fs.Parse stops at the first non-flag argument, or after "--".
		// Distinguish the two: if the argument just before rest is "--",
		// everything left is positional.
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
		if len(args) > 0 && args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		if len(args) == 0 || !anyFlag(args) {
			return append(positional, args...), nil
		}
	}
}

// anyFlag reports whether some argument looks like a flag.
func anyFlag(args []string) bool {
	for _, a := range args {
		if len(a) > 1 && strings.HasPrefix(a, "-") {
			return true
		}
	}
	return false
}
