package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

func noEnv(string) string { return "" }

func TestJSONFieldsAreECS(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, Options{Redactor: NewRedactor(), Version: "1.2.3", Getenv: noEnv})
	l.Info("deploy passed", slog.String(KeyStage, "deploy"), slog.String(KeyOutcome, "success"),
		slog.String(KeyModelDigest, "sha256:abc"), slog.String(KeyEnvironment, "production"), Err(errors.New("boom")))
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, buf.String())
	}
	want := map[string]any{
		"log.level": "info", "message": "deploy passed", "service.name": "modelship", "service.version": "1.2.3",
		"ecs.version": ECSVersion, "event.action": "deploy", "event.outcome": "success",
		"modelship.model.digest": "sha256:abc", "modelship.environment": "production", "error.message": "boom",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	for _, k := range []string{"time", "level", "msg"} {
		if _, ok := m[k]; ok {
			t.Errorf("slog's own key %q left in: %s", k, buf.String())
		}
	}
	ts, err := time.Parse(time.RFC3339Nano, m["@timestamp"].(string))
	if err != nil || ts.Location() != time.UTC || time.Since(ts) > time.Hour {
		t.Errorf("@timestamp %v: %v", m["@timestamp"], err)
	}
}

func TestFormatChoice(t *testing.T) {
	for _, tc := range []struct {
		name   string
		format Format
		env    string
		want   Format
		bad    bool
	}{
		{"not a terminal", FormatAuto, "", FormatJSON, false},
		{"flag wins over env", FormatText, "json", FormatText, false},
		{"env text", FormatAuto, "text", FormatText, false},
		{"env JSON any case", FormatAuto, "JSON", FormatJSON, false},
		{"env auto", FormatAuto, "auto", FormatJSON, false},
		{"env bad", FormatAuto, "yaml", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Format: tc.format, Getenv: func(k string) string {
				if k == EnvFormat {
					return tc.env
				}
				return ""
			}}
			got, err := o.Resolve(&bytes.Buffer{})
			if tc.bad {
				if err == nil || !strings.Contains(err.Error(), EnvFormat) || !strings.Contains(err.Error(), `"yaml"`) {
					t.Fatalf("got %v, want an error naming %s and the value", err, EnvFormat)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	// A file (here /dev/null) is not a terminal.
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, _ := (Options{Getenv: noEnv}).Resolve(f); got != FormatJSON {
		t.Errorf("a file: %q, want json", got)
	}
	if _, err := ParseFormat("xml"); err == nil {
		t.Error("ParseFormat accepted xml")
	}
}

func TestTextFormat(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, Options{Format: FormatText, Redactor: NewRedactor()})
	l.Warn("slack not delivered", slog.String(KeyStage, "deploy"))
	line := buf.String()
	for _, want := range []string{"level=WARN", `msg="slack not delivered"`, "event.action=deploy"} {
		if !strings.Contains(line, want) {
			t.Errorf("%q lacks %q", line, want)
		}
	}
	if !strings.HasPrefix(line, "time=") || len(strings.Fields(line)[0]) != len("time=15:04:05.000") {
		t.Errorf("time not short: %q", line)
	}
	if strings.HasPrefix(line, "{") {
		t.Errorf("text format wrote JSON: %q", line)
	}
}

type creds struct{ User, Password string }

func TestRedaction(t *testing.T) {
	const token = "ghp_TOKENabcdef0123456789"
	const hook = "https://hooks.slack.com/services/T0/B0/XyZsecretTOKEN"
	for _, format := range []Format{FormatJSON, FormatText} {
		t.Run(string(format), func(t *testing.T) {
			var buf bytes.Buffer
			r := NewRedactor(token)
			l := New(&buf, Options{Format: format, Redactor: r})
			// Attributes added before the URL is registered.
			early := l.With("modelship.sink.url", hook).WithGroup("req")
			r.Add(hook, "abc") // "abc" is too short to register
			l.Info("pushing with "+token, "header", "Bearer "+token)
			early.Info("posting", "body", map[string]string{"url": hook})
			l.Error("failed", Err(errors.New("Post "+hook+": refused")), slog.Group("registry", "password", token))
			l.Info("struct", "creds", creds{"ci", token}, "escaped", "https://x/?u="+strings.ReplaceAll(hook, "/", "%2F"))
			l.Info("short values stay", "v", "abc")
			out := buf.String()
			for _, s := range []string{token, hook, "XyZsecretTOKEN"} {
				if strings.Contains(out, s) {
					t.Errorf("%q leaked:\n%s", s, out)
				}
			}
			if n := strings.Count(out, Redacted); n < 7 {
				t.Errorf("%d redactions, want at least 7:\n%s", n, out)
			}
			if !strings.Contains(out, "abc") {
				t.Errorf("a short value was redacted:\n%s", out)
			}
		})
	}
}

func TestDefaultRedactor(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, Options{Format: FormatJSON})
	Redact("process-wide-secret-value")
	l.Info("value process-wide-secret-value")
	if strings.Contains(buf.String(), "process-wide-secret-value") {
		t.Errorf("leaked: %s", buf.String())
	}
	if !strings.Contains(strings.Join(Default.Values(), ","), "process-wide-secret-value") {
		t.Error("Values does not list it")
	}
}
