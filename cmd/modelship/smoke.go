package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/modelship/modelship/internal/gha"
	"github.com/modelship/modelship/internal/smoke"
)

func init() {
	register(command{name: "smoke", summary: "check a deployed endpoint: model listed, one generation, /version digest and image", run: runSmoke})
}

func runSmoke(ctx context.Context, args []string, s stdio) int {
	fs := flag.NewFlagSet("smoke", flag.ContinueOnError)
	fs.SetOutput(s.err)
	endpoint := fs.String("endpoint", "", "base `URL` of the deployment, with or without /v1 (required), e.g. http://host:8000")
	var opt smoke.Options
	fs.StringVar(&opt.Model, "model", "", "served model `name` /v1/models must list (default: the first one listed)")
	fs.StringVar(&opt.ExpectDigest, "expect-digest", "", "model `digest` (sha256:...) GET /version must report")
	fs.StringVar(&opt.ExpectImage, "expect-image", "", "image `reference` GET /version must report")
	fs.DurationVar(&opt.Timeout, "timeout", smoke.DefaultTimeout, "bound on the whole smoke test")
	keyEnv := fs.String("api-key-env", "", "environment `variable` holding an API key to send as a Bearer token (the key is never printed)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: modelship smoke --endpoint URL [--model NAME] [--expect-digest D] [--expect-image REF] [--timeout 60s] [--json]

Checks a deployed endpoint, typically right after a switch:
  models      GET /v1/models lists the served model (--model, else the first)
  generation  one chat completion (temperature 0, max_tokens 8) answers 200
              with non-empty content
  version     GET /version (modelship serve) reports --expect-digest and
              --expect-image; without them it only reports what is serving
Each check is printed with its result and the reason.

Exit codes: 0 every check passed, 1 a check failed, 2 usage, 3 the endpoint
did not answer (inconclusive).

Flags:
`)
		fs.PrintDefaults()
	}
	pos, err := parseFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	if len(pos) > 0 {
		fmt.Fprintf(s.err, "modelship smoke: unexpected argument %q (use --endpoint URL)\n", pos[0])
		return exitUsage
	}
	if *endpoint == "" {
		fmt.Fprintln(s.err, "modelship smoke: --endpoint URL is required")
		return exitUsage
	}
	if _, err := smoke.ParseEndpoint(*endpoint); err != nil {
		fmt.Fprintf(s.err, "modelship smoke: --endpoint: %v\n", err)
		return exitUsage
	}
	if opt.Timeout <= 0 {
		fmt.Fprintln(s.err, "modelship smoke: --timeout must be positive")
		return exitUsage
	}
	if *keyEnv != "" {
		opt.APIKey = os.Getenv(*keyEnv)
		if opt.APIKey == "" {
			fmt.Fprintf(s.err, "modelship smoke: --api-key-env: $%s is empty or not set\n", *keyEnv)
			return exitUsage
		}
	}
	gaOut := s.out // GitHub Actions commands stay off a --json stdout
	if *asJSON {
		gaOut = s.err
	}
	ga := gha.FromEnv(gaOut, s.err)
	ga.Mask(opt.APIKey)
	res, err := smoke.Run(ctx, *endpoint, opt)
	if err != nil {
		fmt.Fprintf(s.err, "modelship smoke: %v\n", err)
		if errors.Is(err, smoke.ErrUnreachable) {
			ga.Smoke(nil)
			if *asJSON {
				gatewayPrintJSON(s.out, map[string]any{"endpoint": *endpoint, "passed": false, "inconclusive": true, "error": err.Error()})
			}
			return exitInconclusive
		}
		return exitUsage
	}
	if *asJSON {
		gatewayPrintJSON(s.out, res)
	} else {
		fmt.Fprintf(s.out, "smoke %s (model %s)\n", res.Endpoint, smokeOrDash(res.Model))
		for _, c := range res.Checks {
			fmt.Fprintf(s.out, "  %-4s  %-10s  %s\n", c.Status, c.Name, c.Detail)
		}
		if res.Passed {
			fmt.Fprintln(s.out, "passed")
		} else {
			fmt.Fprintf(s.out, "FAILED: %d check(s) failed\n", len(res.Failed()))
		}
	}
	ga.Smoke(res)
	if !res.Passed {
		return exitFailed
	}
	return exitOK
}

func smokeOrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
