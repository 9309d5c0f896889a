package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/modelship/modelship/internal/atomicfile"

	"github.com/modelship/modelship/internal/config"
	"github.com/modelship/modelship/internal/gha"
	"github.com/modelship/modelship/notify"
	"github.com/modelship/modelship/serving/stage"
	"github.com/modelship/modelship/suite"
	"github.com/modelship/modelship/suite/report"
)

func init() {
	register(command{name: "validate", summary: "run a validation suite against an OpenAI-compatible endpoint and gate on the pass rate", run: stageCommand("validate", runValidate)})
}

// fractionFlag accepts 0.9 or 90%.
type fractionFlag struct{ v float64 }

func (f *fractionFlag) String() string {
	if f == nil || f.v == 0 {
		return ""
	}
	return fmt.Sprint(f.v)
}

func (f *fractionFlag) Set(s string) error {
	v, err := suite.ParseFraction(s)
	if err != nil {
		return err
	}
	f.v = v
	return nil
}

func runValidate(ctx context.Context, args []string, s stdio, sr *stageRun) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(s.err)
	endpoint := fs.String("endpoint", "", "OpenAI-compatible server, with or without /v1 (e.g. http://localhost:8100/v1) (required)")
	cases := fs.String("cases", "", "suite `FILE`: the article's validation_cases.json or a YAML suite (default: suites.validation of --config)")
	model := fs.String("model", "", "model `NAME` sent in requests (default: the suite's defaults.model, else model.served-name of --config, else the first of GET /v1/models)")
	reportDir := fs.String("report-dir", "", "write validation.json, junit.xml and summary.md into `DIR` (created if missing)")
	concurrency := fs.Int("concurrency", suite.DefaultConcurrency, "requests in flight at once")
	timeout := fs.Duration("timeout", suite.DefaultTimeout, "per-request timeout; a request that times out fails its case (not retried)")
	retries := fs.Int("retries", suite.DefaultRetries, "retries after a transport error or a 5xx, with exponential backoff from 250ms (never after a 4xx, a malformed answer or a failed assertion)")
	var threshold fractionFlag
	fs.Var(&threshold, "pass-threshold", "fraction of cases that must pass, 0.9 or 90% (default: the suite's pass-threshold, else gates.validate.pass-rate of --config, else 100%)")
	cfgFile := fs.String("config", "", "modelship.yaml `FILE` to take the suite, model and pass rate from")
	envName := fs.String("env", "", "with --config: the `environment` the endpoint belongs to; its serving.api-key is sent (default: $OPENAI_API_KEY)")
	asJSON := fs.Bool("json", false, "print the stage result (docs/STAGE-RESULT.md) as one line of JSON on stdout; the summary goes to stderr")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: modelship validate --endpoint URL --cases FILE [flags]

Sends every case of a validation suite to an OpenAI-compatible endpoint
(chat or plain completions, temperature 0 and seed 1234 unless the suite says
otherwise), checks each answer against the case's assertions and decides
whether the model may go further.

FILE is either the article's tests/validation_cases.json, unchanged (a JSON
list of {name, messages, max_tokens?, expected_keywords?}; a keyword matches
case-insensitively), or a YAML suite with richer assertions (contains,
icontains, contains-all, contains-any, not-contains, regex, equals,
starts-with, is-json, json-schema, finish-reason, max-latency, min-tokens,
max-tokens), repeats with a pass rate, and defaults; see
testdata/suites/example.yaml and the suite package documentation. The file is
checked completely before any request is sent.

A server that answers with something other than an OpenAI response (not
JSON, a wrong shape, no choices), a 4xx, or nothing within --timeout fails
the case with that reason. Transport errors and 5xx are retried; a case
still without an answer could not run. The API key, if the server needs
one, is read from OPENAI_API_KEY.

The terminal summary lists each case that did not pass, the assertion and a
preview of the answer. --report-dir adds validation.json (everything),
junit.xml (one testcase per case, with file and line) and summary.md (for a
CI step summary).

Exit codes:
  0  passed: at least the pass threshold of cases passed
  1  gate failed: too many cases failed
  2  usage or input error: bad flags, unreadable or invalid suite or config
  3  inconclusive: the endpoint was unreachable after retries, or too few
     cases ran to decide

Flags:
`)
		fs.PrintDefaults()
	}
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	s = sr.output(s, *asJSON)
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(s.err, "modelship validate: "+format+"\n", a...)
		fmt.Fprintln(s.err, "Run 'modelship validate --help' for usage.")
		return exitUsage
	}
	if len(pos) > 0 {
		return usageErr("unexpected argument %q (the suite is given with --cases)", pos[0])
	}
	if *concurrency < 1 {
		return usageErr("--concurrency: expected at least 1, got %d", *concurrency)
	}
	if *timeout <= 0 {
		return usageErr("--timeout: expected a positive duration like 30s, got %s", *timeout)
	}
	if *retries < 0 {
		return usageErr("--retries: expected 0 or more, got %d", *retries)
	}

	ga := gha.FromEnv(s.out, s.err) // GitHub Actions: no-op elsewhere
	ga.MaskEnv("OPENAI_API_KEY")
	var cfg *config.Config
	if *cfgFile != "" {
		if cfg, ok = loadConfig(s, *cfgFile); !ok {
			return exitUsage
		}
		ga.MaskSecrets(cfg)
		if *cases == "" && cfg.Suites.Validation != "" {
			*cases = cfg.Suites.Validation
			if !filepath.IsAbs(*cases) {
				*cases = filepath.Join(filepath.Dir(cfg.File), *cases)
			}
		}
	}
	if *endpoint == "" {
		return usageErr("--endpoint is required (e.g. --endpoint http://localhost:8100/v1)")
	}
	if _, err := suite.APIBase(*endpoint); err != nil {
		return usageErr("--%v", err)
	}
	if *cases == "" {
		return usageErr("--cases is required (or --config with suites.validation)")
	}

	st, err := suite.Load(*cases)
	if err != nil {
		fmt.Fprintf(s.err, "modelship validate: invalid suite, nothing was sent:\n%v\n", err)
		return exitUsage
	}

	opt := suite.DefaultOptions(*endpoint)
	opt.Model = *model
	opt.Concurrency, opt.Timeout, opt.Retries = *concurrency, *timeout, *retries
	opt.APIKey = os.Getenv("OPENAI_API_KEY")
	if *envName != "" {
		if *cfgFile == "" {
			return usageErr("--env goes with --config (the file that gives the environment's serving.api-key)")
		}
		if opt.APIKey, err = cfg.ServingSecret(*envName, "api-key", nil); err != nil {
			fmt.Fprintf(s.err, "modelship validate: %v\n", err)
			return exitUsage
		}
	}
	opt.Progress = s.err
	switch {
	case threshold.v > 0:
		opt.PassThreshold = threshold.v
	case st.PassThreshold > 0:
	case cfg != nil && cfg.Gates.Validate.PassRate > 0:
		opt.PassThreshold = cfg.Gates.Validate.PassRate
	}
	if opt.Model == "" && st.Defaults.Model == "" && cfg != nil && cfg.Model.ServedName != "" {
		opt.Model = cfg.Model.ServedName
	}

	ev := stageEvents(eventsConfig(cfg, s.err), notify.StageValidate, ga, s.err)
	defer ev.Close(ctx)
	ev.Event.Model = firstSet(opt.Model, st.Defaults.Model, ev.Event.Model)
	ev.Start()
	endGroup := ga.Group(fmt.Sprintf("validate: %d cases of %s against %s", len(st.Cases), *cases, redactURL(*endpoint)))
	r, err := suite.Run(ctx, st, opt)
	endGroup()
	if err != nil {
		return usageErr("%v", err)
	}
	if err := report.Text(s.out, r); err != nil {
		fmt.Fprintf(s.err, "modelship validate: %v\n", err)
	}
	if *reportDir != "" {
		written, err := writeValidationReports(*reportDir, r)
		sr.report(written...)
		if err != nil {
			fmt.Fprintf(s.err, "modelship validate: writing reports: %v\n", err)
			if r.Verdict == suite.Passed {
				return exitFailed // a gate whose evidence could not be written does not pass
			}
		}
	}
	ga.Validation(r, *reportDir)
	ev.Event.Figures = &notify.Figures{Validation: notify.ValidationFromReport(*r, r.Verdict == suite.Passed)}
	msg := strings.TrimSuffix(fmt.Sprintf("%s: %d of %d cases passed, %d needed; %s", r.Verdict, r.Passed, r.Total, r.Needed, r.Reason), "; ")
	ev.Finish(gateStatus(r.Verdict == suite.Passed), msg)
	sr.res.Endpoint = redactURL(*endpoint)
	sr.figure("cases_passed", float64(r.Passed))
	sr.figure("cases_total", float64(r.Total))
	sr.figure("cases_needed", float64(r.Needed))
	sr.figure("pass_threshold", r.PassThreshold)
	if r.Total > 0 {
		sr.figure("pass_rate", float64(r.Passed)/float64(r.Total))
	}
	sr.decide(stage.Verdict(r.Verdict), msg)
	return r.Verdict.ExitCode()
}

// writeValidationReports writes the three report files into dir, each
// atomically (a temporary file renamed into place), and returns the ones
// written.
func writeValidationReports(dir string, r *suite.Report) (written []string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	files := []struct {
		name string
		rep  report.Reporter
	}{
		{"validation.json", report.JSON},
		{"junit.xml", report.JUnit},
		{"summary.md", report.Markdown},
	}
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		if err := writeReportFile(path, f.rep, r); err != nil {
			return written, err
		}
		written = append(written, path)
	}
	return written, nil
}

func writeReportFile(path string, rep report.Reporter, r *suite.Report) error {
	return atomicfile.Write(path, func(w io.Writer) error { return rep(w, r) })
}
