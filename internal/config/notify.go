package config

import (
	"fmt"

	"github.com/modelship/modelship/notify"
)

// Settings are the notifications section as notify builds sinks from it. Each
// secret resolves (getenv, os.Getenv when nil) only when its sink is built,
// so one that does not resolve leaves out only its own sink; its error names
// the key and the reference, e.g. "notifications.slack.webhook-url: secret
// env:SLACK_URL: environment variable SLACK_URL is not set", never the value.
func (n Notifications) Settings(getenv func(string) string) notify.Settings {
	secret := func(key string, s Secret) notify.Secret {
		return func() (string, error) {
			v, err := s.Resolve(getenv)
			if err != nil {
				return "", fmt.Errorf("notifications.%s: %w", key, err)
			}
			return v, nil
		}
	}
	var out notify.Settings
	if n.Slack != nil {
		out.Slack = &notify.SlackSettings{WebhookURL: secret("slack.webhook-url", n.Slack.WebhookURL)}
	}
	if n.Webhook != nil {
		out.Webhook = &notify.WebhookSettings{URL: n.Webhook.URL, Secret: secret("webhook.secret", n.Webhook.Secret)}
	}
	if n.Grafana != nil {
		out.Grafana = &notify.GrafanaSettings{URL: n.Grafana.URL, Token: secret("grafana.token", n.Grafana.Token)}
	}
	if n.Pushgateway != nil {
		out.Pushgateway = &notify.PushgatewaySettings{URL: n.Pushgateway.URL, Job: n.Pushgateway.Job}
	}
	return out
}
