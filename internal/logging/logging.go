// Package logging makes modelship's structured loggers (log/slog):
// human-readable text on a terminal, JSON elsewhere, and every registered
// secret replaced by "[REDACTED]".
//
// # Format
//
// New picks the format from, in order: Options.Format (the --log-format
// flag), the MODELSHIP_LOG_FORMAT environment variable ("json" or "text"),
// and whether the writer is a terminal (text) or not (JSON: CI logs, files,
// pipes, containers).
//
// # Log fields
//
// JSON lines use Elastic Common Schema (ECS) names, which Elasticsearch,
// Filebeat/Elastic Agent and Loki (`| json`, where dots become underscores:
// log_level, event_action) take without a mapping:
//
//	@timestamp              RFC 3339 with nanoseconds, UTC
//	log.level               debug, info, warn, error
//	message                 the message
//	ecs.version             "8.11.0"
//	service.name            "modelship"
//	service.version         modelship's version, when set
//	event.action            the stage: preflight, validate, benchmark, build, publish, deploy, verify, rollback, release
//	event.outcome           success, failure or unknown
//	error.message           an error's text
//	modelship.status        started, passed, failed, skipped, rolled_back, progress
//	modelship.environment   the deploy target (staging, production)
//	modelship.release.id    the release
//	modelship.model.name    the served model name
//	modelship.model.digest  the checkpoint digest (sha256:...)
//	modelship.image.ref     the serving image reference
//	modelship.image.digest  the image's manifest digest
//	modelship.git.sha       the commit
//	modelship.run.url       the CI run
//	modelship.*             anything else of modelship's
//
// Every other field a command logs is under modelship.* as well; names never
// give one key both a value and sub-keys (Elasticsearch would refuse the
// second), hence model.name next to model.digest.
//
// The serving containers (`modelship serve`) and the gateway log the same
// way with service.name "modelship-serve" and "modelship-gateway"
// (Options.Service), the release's fields on every line (Options.Attrs, and
// Options.Fields for a model digest hashed after startup), and their short
// keys renamed (Options.Namespace): err and error to error.message, method
// to http.request.method, path to url.path, pid to process.pid, any other
// KEY to modelship.serve.KEY or modelship.gateway.KEY. Package ecsref holds
// ECS's field reference the tests check real lines against.
//
// On a terminal the same fields come as `time=15:04:05.000 level=INFO
// msg=... key=value` (slog's text format, short time).
//
// # Secrets
//
// Register every secret value as soon as it is resolved, with Redact (the
// process-wide Default redactor) or a Redactor in Options: every logger New
// made replaces it in messages, attribute keys and values, errors and
// groups, including attributes added with With before the value was
// registered. Values shorter than 4 characters are not registered (they
// would mangle every line); GitHub Actions masks them with ::add-mask::.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// EnvFormat names the environment variable that forces the format.
const EnvFormat = "MODELSHIP_LOG_FORMAT"

// ECSVersion is the Elastic Common Schema version the field names follow.
const ECSVersion = "8.11.0"

// Format is how log lines are written.
type Format string

// The formats; FormatAuto chooses (see the package doc).
const (
	FormatAuto Format = ""
	FormatJSON Format = "json"
	FormatText Format = "text"
)

// ParseFormat reads a --log-format or MODELSHIP_LOG_FORMAT value: "json",
// "text", or "" / "auto".
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return FormatAuto, nil
	case "json":
		return FormatJSON, nil
	case "text":
		return FormatText, nil
	}
	return "", fmt.Errorf("unknown log format %q: expected json, text or auto", s)
}

// Field names (see the package doc).
const (
	KeyStage       = "event.action"
	KeyOutcome     = "event.outcome"
	KeyError       = "error.message"
	KeyStatus      = "modelship.status"
	KeyEnvironment = "modelship.environment"
	KeyRelease     = "modelship.release.id"
	KeyModel       = "modelship.model.name"
	KeyModelDigest = "modelship.model.digest"
	KeyImage       = "modelship.image.ref"
	KeyImageDigest = "modelship.image.digest"
	KeyGitSHA      = "modelship.git.sha"
	KeyRunURL      = "modelship.run.url"
)

// ReleaseAttrs are a release's fields for the lines about it (release id,
// model digest, image and its digest), leaving out those not known ("").
func ReleaseAttrs(release, modelDigest, image, imageDigest string) []slog.Attr {
	var attrs []slog.Attr
	for _, f := range [][2]string{{KeyRelease, release}, {KeyModelDigest, modelDigest}, {KeyImage, image}, {KeyImageDigest, imageDigest}} {
		if f[1] != "" {
			attrs = append(attrs, slog.String(f[0], f[1]))
		}
	}
	return attrs
}

// Err is an error as error.message ("" for nil).
func Err(err error) slog.Attr {
	if err == nil {
		return slog.String(KeyError, "")
	}
	return slog.String(KeyError, err.Error())
}

// Options configure New.
type Options struct {
	// Format: FormatAuto chooses (see the package doc).
	Format Format
	// Level is the minimum level (default info).
	Level slog.Leveler
	// Redactor holds the secrets to hide (default Default).
	Redactor *Redactor
	// Version is service.version (omitted when "").
	Version string
	// Service is service.name (default "modelship"; the serving proxy logs
	// as "modelship-serve", the gateway as "modelship-gateway").
	Service string
	// Attrs are on every JSON line, after service.name and service.version
	// (a serving container's release id, model digest and image).
	Attrs []slog.Attr
	// Fields are on every JSON line from when they are set (see Fields).
	Fields *Fields
	// Namespace, when set, renames the bare keys (without a dot) of JSON
	// lines: err and error become error.message, method
	// http.request.method, path url.path, pid process.pid, and any other
	// KEY becomes Namespace.KEY (group names are not renamed: name them
	// under modelship.* yourself). The serving proxy and the gateway log
	// short keys; their namespaces ("modelship.serve", "modelship.gateway")
	// keep them from colliding with the CLI's modelship.* fields.
	Namespace string
	// Getenv reads MODELSHIP_LOG_FORMAT (default os.Getenv).
	Getenv func(string) string
}

// Resolve is the format New would use for w.
func (o Options) Resolve(w io.Writer) (Format, error) {
	if o.Format != FormatAuto {
		return ParseFormat(string(o.Format))
	}
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if v := getenv(EnvFormat); v != "" {
		f, err := ParseFormat(v)
		if err != nil {
			return "", fmt.Errorf("%s: %w", EnvFormat, err)
		}
		if f != FormatAuto {
			return f, nil
		}
	}
	if f, ok := w.(interface{ Fd() uintptr }); ok && term.IsTerminal(int(f.Fd())) {
		return FormatText, nil
	}
	return FormatJSON, nil
}

// New makes a logger writing to w (see the package doc). A bad format (from
// Options or the environment) falls back to JSON, with one warning line
// saying so.
func New(w io.Writer, o Options) *slog.Logger {
	format, err := o.Resolve(w)
	if err != nil {
		format = FormatJSON
	}
	level := o.Level
	if level == nil {
		level = slog.LevelInfo
	}
	red := o.Redactor
	if red == nil {
		red = Default
	}
	var l *slog.Logger
	if format == FormatText {
		h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: textAttr})
		l = slog.New(NewHandler(h, red))
	} else {
		l = slog.New(newHandler(o.jsonHandler(w, level), red, o.Fields))
	}
	if err != nil {
		l.Warn("log format: using json", Err(err))
	}
	return l
}

// jsonHandler is the ECS JSON handler with the attributes of every line.
func (o Options) jsonHandler(w io.Writer, level slog.Leveler) slog.Handler {
	service := o.Service
	if service == "" {
		service = "modelship"
	}
	attrs := []slog.Attr{slog.String("ecs.version", ECSVersion), slog.String("service.name", service)}
	if o.Version != "" {
		attrs = append(attrs, slog.String("service.version", o.Version))
	}
	attrs = append(attrs, o.Attrs...)
	replace := ecsAttr
	if o.Namespace != "" {
		replace = namespaced(o.Namespace)
	}
	return slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: replace}).WithAttrs(attrs)
}

// ecsAttr renames slog's built-in keys to ECS's.
func ecsAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.TimeKey:
		if a.Value.Kind() == slog.KindTime {
			return slog.String("@timestamp", a.Value.Time().UTC().Format(time.RFC3339Nano))
		}
		a.Key = "@timestamp"
	case slog.LevelKey:
		return slog.String("log.level", strings.ToLower(a.Value.String()))
	case slog.MessageKey:
		a.Key = "message"
	}
	return a
}

// textAttr shortens the time on a terminal.
func textAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey && a.Value.Kind() == slog.KindTime {
		return slog.String(slog.TimeKey, a.Value.Time().Format("15:04:05.000"))
	}
	return a
}
