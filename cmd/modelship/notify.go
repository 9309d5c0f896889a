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

const notifyUsage = `Usage: modelship notify --stage STAGE --status STATUS [--config modelship.yaml] [--env ENV] [--message TEXT] [--sink KINDS] [--strict]

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
`

// notifyOptions are notify's flags: the event and how to send it.
type notifyOptions struct {
	cfgFile, stage, status, sinks, logFormat string
	e                                        notify.Event
	timeout                                  time.Duration
	strict, asJSON                           bool
}

func (o *notifyOptions) flags(fs *flag.FlagSet) {
	fs.StringVar(&o.cfgFile, "config", config.DefaultFile, "modelship.yaml `file` whose notifications section names the sinks")
	fs.StringVar(&o.stage, "stage", "", "`stage` of the event (required): "+notifyJoin(notify.Stages))
	fs.StringVar(&o.status, "status", "", "`status` of the event (required): "+notifyJoin(notify.Statuses))
	// The event's own fields, all empty by default.
	e := &o.e
	for _, f := range []struct {
		p           *string
		name, usage string
	}{
		{&e.Environment, "env", "`environment` the event is about (staging, production)"},
		{&e.Message, "message", "free `text` added to the event"},
		{&e.Release, "release", "release `id` (default: manual-TIMESTAMP)"},
		{&e.ModelDigest, "model-digest", "model `digest` (sha256:...)"},
		{&e.Image, "image", "image `reference`"},
		{&e.ImageDigest, "image-digest", "image `digest` (sha256:...)"},
		{&e.GitSHA, "git-sha", "git `SHA` (default $GITHUB_SHA)"},
	} {
		fs.StringVar(f.p, f.name, "", f.usage)
	}
	fs.StringVar(&o.sinks, "sink", "", "comma-separated `kinds` to send to (default: every configured one): "+strings.Join(notify.Kinds, ", "))
	fs.DurationVar(&o.timeout, "timeout", 5*time.Second, "bound on each attempt; 3 attempts per sink with backoff")
	fs.BoolVar(&o.strict, "strict", false, "exit 1 when a sink could not be told (default: warn and exit 0, as a release does)")
	fs.BoolVar(&o.asJSON, "json", false, "print the results as JSON")
	fs.StringVar(&o.logFormat, "log-format", "", "log `format` on stderr: json or text (default: text on a terminal, JSON elsewhere; or $MODELSHIP_LOG_FORMAT)")
}

func runNotify(ctx context.Context, args []string, s stdio) int {
	var o notifyOptions
	bad := newUsageErr(s, "notify", "")
	if code, ok := parseOptions(s, "notify", notifyUsage, &o, args, bad); !ok {
		return code
	}
	format, code, ok := o.check(bad)
	if !ok {
		return code
	}
	cfg, err := config.Load(o.cfgFile)
	if err != nil {
		return bad("%v", err)
	}
	kinds, code, ok := o.kinds(cfg, bad)
	if !ok {
		return code
	}
	warnings := o.send(ctx, cfg, kinds, format, s)
	o.print(s, kinds, warnings)
	if len(warnings) > 0 && o.strict {
		return exitFailed
	}
	return exitOK
}

// check parses the event's stage and status and the log format.
func (o *notifyOptions) check(bad usageErr) (logging.Format, int, bool) {
	if o.stage == "" || o.status == "" {
		return "", bad("--stage and --status are required"), false
	}
	var err error
	if o.e.Stage, err = notify.ParseStage(o.stage); err != nil {
		return "", bad("--stage: %v", err), false
	}
	if o.e.Status, err = notify.ParseStatus(o.status); err != nil {
		return "", bad("--status: %v", err), false
	}
	format, err := logging.ParseFormat(o.logFormat)
	if err != nil {
		return "", bad("--log-format: %v", err), false
	}
	if o.timeout <= 0 {
		return "", bad("--timeout must be above 0"), false
	}
	return format, exitOK, true
}

// kinds are the sinks to send to: --sink, else every one cfg configures.
func (o *notifyOptions) kinds(cfg *config.Config, bad usageErr) ([]string, int, bool) {
	kinds := notify.Configured(cfg.Notifications.Settings(nil))
	if o.sinks != "" {
		kinds = nil
		for _, k := range strings.Split(o.sinks, ",") {
			if k = strings.TrimSpace(k); k == "" {
				continue
			}
			if !slices.Contains(notify.Kinds, k) {
				return nil, bad("--sink: unknown sink kind %q: expected %s", k, strings.Join(notify.Kinds, ", ")), false
			}
			kinds = append(kinds, k)
		}
	}
	if len(kinds) == 0 {
		return nil, bad("%s configures no notifications (slack, webhook, grafana or pushgateway)", cfg.File), false
	}
	return kinds, exitOK, true
}

// send completes the event and sends it to the sinks of kinds; a sink that
// could not be built or told is a warning.
func (o *notifyOptions) send(ctx context.Context, cfg *config.Config, kinds []string, format logging.Format, s stdio) []notify.Warning {
	e := &o.e
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
	n := notify.New(built, notify.Options{Timeout: o.timeout, Logger: log})
	warnings = append(warnings, n.Notify(ctx, *e)...)
	n.Close(ctx)
	return warnings
}

// print shows, per sink kind, whether the event was delivered.
func (o *notifyOptions) print(s stdio, kinds []string, warnings []notify.Warning) {
	failed := map[string]string{}
	for _, w := range warnings {
		failed[w.Sink] = w.Message
	}
	if o.asJSON {
		type result struct {
			Sink      string `json:"sink"`
			Delivered bool   `json:"delivered"`
			Warning   string `json:"warning,omitempty"`
		}
		out := struct {
			Event   notify.Event `json:"event"`
			Results []result     `json:"results"`
		}{Event: o.e}
		for _, k := range kinds {
			out.Results = append(out.Results, result{Sink: k, Delivered: failed[k] == "", Warning: failed[k]})
		}
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintln(s.out, logging.Default.String(string(b)))
		return
	}
	fmt.Fprintf(s.out, "event: %s (release %s)\n", o.e.Title(), o.e.Release)
	for _, k := range kinds {
		if msg, bad := failed[k]; bad {
			fmt.Fprintf(s.out, "  %-12s warning: %s\n", k, logging.Default.String(msg))
		} else {
			fmt.Fprintf(s.out, "  %-12s delivered\n", k)
		}
	}
}

func notifyJoin[T ~string](vs []T) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}
