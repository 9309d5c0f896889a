// Command modelship takes a model checkpoint to a production OpenAI-compatible
// inference endpoint: inspect, fit, simulate, serve, validate, benchmark,
// deploy, verify and roll back. Run `modelship help` for the commands.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/modelship/modelship/internal/buildinfo"
)

// Exit codes shared by every command.
const (
	exitOK           = 0 // the command did what was asked and any gate passed
	exitFailed       = 1 // a gate failed, the model does not fit, or the operation failed
	exitUsage        = 2 // bad flags, bad input file, unusable config
	exitInconclusive = 3 // could not decide: endpoint unreachable, too little data
	exitNoGPU        = 4 // NVML (the NVIDIA driver library) is not available on this machine
)

// stdio is what a command reads and writes; tests pass buffers.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// command is one `modelship NAME` subcommand. Each lives in its own file and
// registers itself from init.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, io stdio) int
}

var commands = map[string]command{}

func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("modelship: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	s := stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}
	var code int
	if args, serveForm, ok := vllmMode(os.Args[0], os.Args[1:]); ok {
		code = runVLLM(ctx, args, serveForm, os.Getenv, s)
	} else {
		code = run(ctx, os.Args[1:], s)
	}
	stop()
	os.Exit(code)
}

// run dispatches to a subcommand and returns the process exit code.
func run(ctx context.Context, args []string, s stdio) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				return c.run(ctx, []string{"--help"}, s)
			}
		}
		usage(s.out)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] == "version" || args[0] == "--version" {
		fmt.Fprintf(s.out, "modelship %s\n", buildinfo.String())
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(s.err, "modelship: unknown command %q\n\n", args[0])
		usage(s.err)
		return exitUsage
	}
	return c.run(ctx, args[1:], s)
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "modelship takes a model checkpoint to a production OpenAI-compatible endpoint.\n\nUsage: modelship COMMAND [flags]\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, "  %-10s %s\n", "version", "print the modelship version")
	fmt.Fprintf(w, "\nRun `modelship COMMAND --help` for a command's flags.\nExit codes: 0 ok, 1 failed (gate failed / does not fit), 2 usage or input error, 3 inconclusive, 4 no NVML.\n")
}

// printJSON prints v to s.out as indented JSON; when it cannot, it reports
// why as "modelship NAME: ..." and returns exitFailed.
func printJSON(s stdio, name string, v any) int {
	enc := json.NewEncoder(s.out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(s.err, "modelship %s: %v\n", name, err)
		return exitFailed
	}
	return exitOK
}
