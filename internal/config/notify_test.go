package config

import (
	"strings"
	"testing"

	"github.com/modelship/modelship/notify"
)

// The notifications section builds notify's sinks; a secret that does not
// resolve leaves out its own sink, with an error that names the key and the
// reference and never a value.
func TestNotificationsSettings(t *testing.T) {
	c, err := Parse("m.yaml", []byte("model: {path: /m}\nnotifications:\n"+
		"  slack: {webhook-url: env:SLACK_URL}\n"+
		"  webhook: {url: 'http://w', secret: env:HOOK_KEY}\n"+
		"  grafana: {url: 'http://g', token: env:GRAF_TOKEN}\n"+
		"  pushgateway: {url: 'http://p:9091'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SLACK_URL": "http://slack/services/T0/B0/SLACKVALUE", "HOOK_KEY": "HOOKVALUE", "GRAF_TOKEN": "GRAFVALUE"}
	s := c.Notifications.Settings(func(k string) string { return env[k] })
	if got := strings.Join(notify.Configured(s), ","); got != "slack,webhook,grafana,pushgateway" {
		t.Errorf("Configured: %s", got)
	}
	sinks, secrets, err := notify.NewSinks(s)
	if err != nil || len(sinks) != 4 {
		t.Fatalf("NewSinks: %d sinks, %v", len(sinks), err)
	}
	if got := strings.Join(secrets, ","); got != env["SLACK_URL"]+",HOOKVALUE,GRAFVALUE" {
		t.Errorf("resolved secrets %q", got)
	}

	delete(env, "SLACK_URL")
	env["GRAF_TOKEN"] = ""
	sinks, _, err = notify.NewSinks(s)
	if len(sinks) != 2 {
		t.Errorf("%d sinks built, want 2 (webhook, pushgateway)", len(sinks))
	}
	for _, want := range []string{
		"notifications.slack.webhook-url: secret env:SLACK_URL: environment variable SLACK_URL is not set",
		"notifications.grafana.token: secret env:GRAF_TOKEN: environment variable GRAF_TOKEN is not set",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if err != nil && strings.Contains(err.Error(), "VALUE") {
		t.Errorf("error repeats a secret: %v", err)
	}
}
