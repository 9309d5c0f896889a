package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/modelship/modelship/internal/buildinfo"
	"github.com/modelship/modelship/internal/config"
	"github.com/modelship/modelship/internal/logging"
	"github.com/modelship/modelship/notify"
)

func init() {
	register(command{name: "notify", summary: "send one event to every configured sink (Slack, webhook, Grafana, Pushgateway) to try them", run: runNotify})
}

func runNotify(ctx context.Context, args []string, s stdio) int {
	fs := flag.NewFlagSet("notify", flag.ContinueOnError)
	fs.SetOutput(s.err)
	cfgFile := fs.String("config", config.DefaultFile, "modelship.yaml `file` whose notifications section names the sinks")
	stage := fs.String("stage", "", "`stage` of the event (required): "+notifyJoin(notify.Stages))
	status := fs.String("status", "", "`status` of the event (required): "+notifyJoin(notify.Statuses))
	var e notify.Event
	fs.StringVar(&e.Environment, "env", "", "`environment` the event is about (staging, production)")
	fs.StringVar(&e.Message, "message", "", "free `text` added to the event")
	fs.StringVar(&e.Release, "release", "", "release `id` (default: manual-TIMESTAMP)")
	fs.StringVar(&e.ModelDigest, "model-digest", "", "model `digest` (sha256:...)")
	fs.StringVar(&e.Image, "image", "", "image `reference`")
	fs.StringVar(&e.ImageDigest, "image-digest", "", "image `digest` (sha256:...)")
	fs.StringVar(&e.GitSHA, "git-sha", "", "git `SHA` (default $GITHUB_SHA)")
	sinks := fs.String("sink", "", "comma-separated `kinds` to send to (default: every configured one): "+strings.Join(notify.Kinds, ", "))
	timeout := fs.Duration("timeout", 5*time.Second, "bound on each attempt; 3 attempts per sink with backoff")
	strict := fs.Bool("strict", false, "exit 1 when a sink could not be told (default: warn and exit 0, as a release does)")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	logFormat := fs.String("log-format", "", "log `format` on stderr: json or text (default: text on a terminal, JSON elsewhere; or $MODELSHIP_LOG_FORMAT)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: modelship notify --stage STAGE --status STATUS [--config modelship.yaml] [--env ENV] [--message TEXT] [--sink KINDS] [--strict]

Sends one event to the sinks configured under notifications: in modelship.yaml,
the way a release would, to check they are set up: Slack (incoming webhook,
Block Kit), the signed JSON webhook, Grafana annotations and the Prometheus
Pushgateway. Secrets are read from where the file points (env:NAME,
file:PATH) and never printed. Inside GitHub Actions the event links the run.

Each sink gets 3 attempts bounded by --timeout with backoff; a sink that still
fails is a warning, printed with its reason.

Exit codes: 0 sent (or warned, without --strict), 1 a sink failed with
--strict, 2 usage, bad flags or an unusable config.

Flags:
`)
		fs.PrintDefaults()
	}
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(s.err, "modelship notify: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	if *stage == "" || *status == "" {
		fmt.Fprintln(s.err, "modelship notify: --stage and --status are required")
		return exitUsage
	}
	var err error
	if e.Stage, err = notify.ParseStage(*stage); err != nil {
		fmt.Fprintf(s.err, "modelship notify: --stage: %v\n", err)
		return exitUsage
	}
	if e.Status, err = notify.ParseStatus(*status); err != nil {
		fmt.Fprintf(s.err, "modelship notify: --status: %v\n", err)
		return exitUsage
	}
	format, err := logging.ParseFormat(*logFormat)
	if err != nil {
		fmt.Fprintf(s.err, "modelship notify: --log-format: %v\n", err)
		return exitUsage
	}
	if *timeout <= 0 {
		fmt.Fprintln(s.err, "modelship notify: --timeout must be above 0")
		return exitUsage
	}
	cfg, err := config.Load(*cfgFile)
	if err != nil {
		fmt.Fprintf(s.err, "modelship notify: %v\n", err)
		return exitUsage
	}
	kinds := notify.Configured(cfg.Notifications.Settings(nil))
	if *sinks != "" {
		kinds = nil
		for _, k := range strings.Split(*sinks, ",") {
			if k = strings.TrimSpace(k); k == "" {
				continue
			}
			if !slices.Contains(notify.Kinds, k) {
				fmt.Fprintf(s.err, "modelship notify: --sink: unknown sink kind %q: expected %s\n", k, strings.Join(notify.Kinds, ", "))
				return exitUsage
			}
			kinds = append(kinds, k)
		}
	}
	if len(kinds) == 0 {
		fmt.Fprintf(s.err, "modelship notify: %s configures no notifications (slack, webhook, grafana or pushgateway)\n", cfg.File)
		return exitUsage
	}

	log := logging.New(s.err, logging.Options{Format: format, Version: buildinfo.Version})
	var built []notify.Sink
	var warnings []notify.Warning
	for _, k := range kinds {
		sink, secrets, err := notify.NewSink(k, cfg.Notifications.Settings(nil), nil)
		logging.Redact(secrets...)
		if err != nil {
			warnings = append(warnings, notify.Warning{Sink: k, Stage: e.Stage, Status: e.Status, Message: logging.Default.String(err.Error())})
			continue
		}
		built = append(built, sink)
	}

	if e.Model == "" {
		e.Model = cfg.Model.ServedName
	}
	e.FillFromEnv(nil)
	if e.Release == "" {
		e.Release = "manual-" + e.Time.UTC().Format("20060102T150405Z")
	}
	n := notify.New(built, notify.Options{Timeout: *timeout, Logger: log})
	warnings = append(warnings, n.Notify(ctx, e)...)
	n.Close(ctx)

	failed := map[string]string{}
	for _, w := range warnings {
		failed[w.Sink] = w.Message
	}
	if *asJSON {
		type result struct {
			Sink      string `json:"sink"`
			Delivered bool   `json:"delivered"`
			Warning   string `json:"warning,omitempty"`
		}
		out := struct {
			Event   notify.Event `json:"event"`
			Results []result     `json:"results"`
		}{Event: e}
		for _, k := range kinds {
			out.Results = append(out.Results, result{Sink: k, Delivered: failed[k] == "", Warning: failed[k]})
		}
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintln(s.out, logging.Default.String(string(b)))
	} else {
		fmt.Fprintf(s.out, "event: %s (release %s)\n", e.Title(), e.Release)
		for _, k := range kinds {
			if msg, bad := failed[k]; bad {
				fmt.Fprintf(s.out, "  %-12s warning: %s\n", k, logging.Default.String(msg))
			} else {
				fmt.Fprintf(s.out, "  %-12s delivered\n", k)
			}
		}
	}
	if len(warnings) > 0 && *strict {
		return exitFailed
	}
	return exitOK
}

func notifyJoin[T ~string](vs []T) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}
