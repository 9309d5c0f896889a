package main

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/modelship/modelship/internal/config"
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

// parseArgs is parseFlags for a command's run: when ok is false the
// command returns code at once, exitOK after --help (fs printed its usage)
// and exitUsage on a bad flag (fs printed what is wrong).
func parseArgs(fs *flag.FlagSet, args []string) (positional []string, code int, ok bool) {
	positional, err := parseFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil, exitOK, false
	}
	if err != nil {
		return nil, exitUsage, false
	}
	return positional, exitOK, true
}

// loadConfig reads the modelship.yaml file. When it cannot, the error
// (naming the file, field and line) is printed and ok is false: the command
// returns exitUsage.
func loadConfig(s stdio, file string) (cfg *config.Config, ok bool) {
	cfg, err := config.Load(file)
	if err != nil {
		fmt.Fprintln(s.err, err)
		return nil, false
	}
	return cfg, true
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

// seconds is a flag holding a duration written as seconds ("2.0", as the
// article's --max-latency-p99) or as a Go duration ("500ms").
type seconds struct{ d time.Duration }

func (s *seconds) String() string {
	if s == nil || s.d == 0 {
		return ""
	}
	return strconv.FormatFloat(s.d.Seconds(), 'f', -1, 64)
}

func (s *seconds) Set(v string) error {
	d, err := parseSeconds(v)
	if err != nil {
		return err
	}
	s.d = d
	return nil
}

func parseSeconds(v string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if !(f >= 0) || f > 1e9 {
			return 0, fmt.Errorf("expected seconds of 0 or more, got %q", v)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("expected seconds (2.0) or a duration (500ms), got %q", v)
	}
	return d, nil
}

// newFlagSet is the flag set of the command name: its errors go to s.err,
// and --help prints usage (the command's help text, ending in "Flags:\n")
// followed by the flags.
func newFlagSet(name string, s stdio, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(s.err)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	return fs
}

// usageErr is how a command refuses a bad flag, argument or input: it
// prints the message and returns exitUsage, so `return bad("...")` ends
// the command.
type usageErr func(format string, a ...any) int

// newUsageErr is the usageErr of the command name: it prints
// "modelship NAME: MESSAGE" to s.err, then hint on its own line when hint
// is not empty, and returns exitUsage.
func newUsageErr(s stdio, name, hint string) usageErr {
	return func(format string, a ...any) int {
		fmt.Fprintf(s.err, "modelship "+name+": "+format+"\n", a...)
		if hint != "" {
			fmt.Fprintln(s.err, hint)
		}
		return exitUsage
	}
}

// parseNoArgs is parseArgs for a command that takes flags only: a
// positional argument is refused through bad as "unexpected argument".
func parseNoArgs(fs *flag.FlagSet, args []string, bad usageErr) (code int, ok bool) {
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code, false
	}
	if len(pos) > 0 {
		return bad("unexpected argument %q", pos[0]), false
	}
	return exitOK, true
}

// parseOneArg is parseArgs for a command that takes exactly one positional
// argument: another count is refused through bad (format gets the count),
// followed by the command's usage.
func parseOneArg(fs *flag.FlagSet, args []string, bad usageErr, format string) (arg string, code int, ok bool) {
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return "", code, false
	}
	if len(pos) != 1 {
		code := bad(format, len(pos))
		fs.Usage()
		return "", code, false
	}
	return pos[0], exitOK, true
}

// options are a command's flags gathered in a struct, whose flags method
// defines them on the command's flag set.
type options interface{ flags(fs *flag.FlagSet) }

// parseOptions is how a command that takes flags only starts: o's flags on
// the flag set of the command name (usage is its help text), args parsed
// into them, and a positional argument refused through bad.
func parseOptions(s stdio, name, usage string, o options, args []string, bad usageErr) (code int, ok bool) {
	fs := newFlagSet(name, s, usage)
	o.flags(fs)
	return parseNoArgs(fs, args, bad)
}

// parseOptionsArgs is parseOptions for a command that takes positional
// arguments too: it returns them, as parseArgs does.
func parseOptionsArgs(s stdio, name, usage string, o options, args []string) (positional []string, code int, ok bool) {
	fs := newFlagSet(name, s, usage)
	o.flags(fs)
	return parseArgs(fs, args)
}
