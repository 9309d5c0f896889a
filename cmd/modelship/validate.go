package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/modelship/modelship/internal/atomicfile"

	"github.com/modelship/modelship/internal/config"
	"github.com/modelship/modelship/notify"
	"github.com/modelship/modelship/serving/stage"
	"github.com/modelship/modelship/suite"
	"github.com/modelship/modelship/suite/report"
)

func init() {
	register(command{name: "validate", summary: "run a validation suite against an OpenAI-compatible endpoint and gate on the pass rate", run: stageCommand("validate", validateUsage, validateHint, runValidate)})
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

// validateUsage is modelship validate --help, before the flags.
const validateUsage = `Usage: modelship validate --endpoint URL --cases FILE [flags]

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
`

// validateFlags are modelship validate's flags.
type validateFlags struct {
	endpoint, cases, model, reportDir, cfgFile, envName string
	concurrency, retries                                int
	timeout                                             time.Duration
	threshold                                           fractionFlag
}

func (f *validateFlags) flags(fs *flag.FlagSet) {
	fs.StringVar(&f.endpoint, "endpoint", "", "OpenAI-compatible server, with or without /v1 (e.g. http://localhost:8100/v1) (required)")
	fs.StringVar(&f.cases, "cases", "", "suite `FILE`: the article's validation_cases.json or a YAML suite (default: suites.validation of --config)")
	fs.StringVar(&f.model, "model", "", "model `NAME` sent in requests (default: the suite's defaults.model, else model.served-name of --config, else the first of GET /v1/models)")
	fs.StringVar(&f.reportDir, "report-dir", "", "write validation.json, junit.xml and summary.md into `DIR` (created if missing)")
	fs.IntVar(&f.concurrency, "concurrency", suite.DefaultConcurrency, "requests in flight at once")
	fs.DurationVar(&f.timeout, "timeout", suite.DefaultTimeout, "per-request timeout; a request that times out fails its case (not retried)")
	fs.IntVar(&f.retries, "retries", suite.DefaultRetries, "retries after a transport error or a 5xx, with exponential backoff from 250ms (never after a 4xx, a malformed answer or a failed assertion)")
	fs.Var(&f.threshold, "pass-threshold", "fraction of cases that must pass, 0.9 or 90% (default: the suite's pass-threshold, else gates.validate.pass-rate of --config, else 100%)")
	fs.StringVar(&f.cfgFile, "config", "", "modelship.yaml `FILE` to take the suite, model and pass rate from")
	fs.StringVar(&f.envName, "env", "", "with --config: the `environment` the endpoint belongs to; its serving.api-key is sent (default: $OPENAI_API_KEY)")
}

// validateHint is the line after validate's usage errors.
const validateHint = "Run 'modelship validate --help' for usage."

func runValidate(ctx context.Context, f *validateFlags, pos []string, s stdio, sr *stageRun) int {
	if len(pos) > 0 {
		return sr.bad("unexpected argument %q (the suite is given with --cases)", pos[0])
	}
	cfg, code := f.check(s, sr)
	if code != exitOK {
		return code
	}
	st, opt, code := f.options(cfg, s, sr)
	if code != exitOK {
		return code
	}
	return validateStage(ctx, f, st, opt, cfg, s, sr)
}

// check checks the flags and reads --config (nil without it), which gives
// the suite when --cases does not.
func (f *validateFlags) check(s stdio, sr *stageRun) (*config.Config, int) {
	switch {
	case f.concurrency < 1:
		return nil, sr.bad("--concurrency: expected at least 1, got %d", f.concurrency)
	case f.timeout <= 0:
		return nil, sr.bad("--timeout: expected a positive duration like 30s, got %s", f.timeout)
	case f.retries < 0:
		return nil, sr.bad("--retries: expected 0 or more, got %d", f.retries)
	}
	sr.ga.MaskEnv("OPENAI_API_KEY")
	var cfg *config.Config
	if f.cfgFile != "" {
		var ok bool
		if cfg, ok = loadConfig(s, f.cfgFile); !ok {
			return nil, exitUsage
		}
		sr.ga.MaskSecrets(cfg)
		if f.cases == "" && cfg.Suites.Validation != "" {
			f.cases = cfg.Rel(cfg.Suites.Validation)
		}
	}
	if f.endpoint == "" {
		return nil, sr.bad("--endpoint is required (e.g. --endpoint http://localhost:8100/v1)")
	}
	if _, err := suite.APIBase(f.endpoint); err != nil {
		return nil, sr.bad("--%v", err)
	}
	if f.cases == "" {
		return nil, sr.bad("--cases is required (or --config with suites.validation)")
	}
	return cfg, exitOK
}

// options loads the suite and resolves the run's options: the API key, the
// pass threshold and the model from the flags, the suite and cfg.
func (f *validateFlags) options(cfg *config.Config, s stdio, sr *stageRun) (*suite.Suite, suite.Options, int) {
	opt := suite.DefaultOptions(f.endpoint)
	st, err := suite.Load(f.cases)
	if err != nil {
		fmt.Fprintf(s.err, "modelship validate: invalid suite, nothing was sent:\n%v\n", err)
		return nil, opt, exitUsage
	}
	opt.Model = f.model
	opt.Concurrency, opt.Timeout, opt.Retries = f.concurrency, f.timeout, f.retries
	opt.APIKey = os.Getenv("OPENAI_API_KEY")
	if f.envName != "" {
		if f.cfgFile == "" {
			return nil, opt, sr.bad("--env goes with --config (the file that gives the environment's serving.api-key)")
		}
		if opt.APIKey, err = cfg.ServingSecret(f.envName, "api-key", nil); err != nil {
			fmt.Fprintf(s.err, "modelship validate: %v\n", err)
			return nil, opt, exitUsage
		}
	}
	opt.Progress = terminalErr(s.err)
	switch {
	case f.threshold.v > 0:
		opt.PassThreshold = f.threshold.v
	case st.PassThreshold > 0:
	case cfg != nil && cfg.Gates.Validate.PassRate > 0:
		opt.PassThreshold = cfg.Gates.Validate.PassRate
	}
	if opt.Model == "" && st.Defaults.Model == "" && cfg != nil && cfg.Model.ServedName != "" {
		opt.Model = cfg.Model.ServedName
	}
	return st, opt, exitOK
}

// validateStage runs the suite as the validate stage: its events, its
// Actions group, outputs and annotations, the reports and the verdict.
func validateStage(ctx context.Context, f *validateFlags, st *suite.Suite, opt suite.Options, cfg *config.Config, s stdio, sr *stageRun) int {
	ev := sr.events(eventsConfig(cfg, s.err), notify.StageValidate)
	ev.Event.Model = firstSet(opt.Model, st.Defaults.Model, ev.Event.Model)
	sr.start()
	endGroup := sr.group(fmt.Sprintf("validate: %d cases of %s against %s", len(st.Cases), f.cases, redactURL(f.endpoint)))
	r, err := suite.Run(ctx, st, opt)
	endGroup()
	if err != nil {
		return sr.bad("%v", err)
	}
	if err := report.Text(s.out, r); err != nil {
		fmt.Fprintf(s.err, "modelship validate: %v\n", err)
	}
	sr.res.Endpoint = redactURL(f.endpoint)
	sr.figure("cases_passed", float64(r.Passed))
	sr.figure("cases_total", float64(r.Total))
	sr.figure("cases_needed", float64(r.Needed))
	sr.figure("pass_threshold", r.PassThreshold)
	if r.Total > 0 {
		sr.figure("pass_rate", float64(r.Passed)/float64(r.Total))
	}
	why := strings.TrimSuffix(fmt.Sprintf("%d of %d cases passed, %d needed; %s", r.Passed, r.Total, r.Needed, r.Reason), "; ")
	if f.reportDir != "" {
		written, err := writeValidationReports(f.reportDir, r)
		sr.report(written...)
		if err != nil {
			fmt.Fprintf(s.err, "modelship validate: writing reports: %v\n", err)
			if r.Verdict == suite.Passed {
				// A gate whose evidence could not be written does not
				// pass (the event: the stage ended before a verdict).
				sr.record(stage.Failed, why+"; writing reports: "+err.Error())
				return exitFailed
			}
		}
	}
	sr.ga.Validation(r, f.reportDir)
	ev.Event.Figures = &notify.Figures{Validation: notify.ValidationFromReport(*r, r.Verdict == suite.Passed)}
	sr.decide(r.Verdict, string(r.Verdict)+": "+why)
	return sr.res.ExitCode
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
