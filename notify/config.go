package notify

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/modelship/modelship/internal/config"
)

// Kinds are the sink kinds modelship.yaml's notifications section can
// configure, in the order FromConfig builds them.
var Kinds = []string{"slack", "webhook", "grafana", "pushgateway"}

// NewSink builds the sink of kind from the notifications section, resolving
// its secrets with getenv (os.Getenv when nil). It returns the secret values
// it resolved, for the caller to redact from logs and mask in CI. An unknown
// kind, or one the section does not configure, is an error; so is a secret
// that does not resolve (the error names its reference, never its value).
// client nil is a client of its own (the Notifier bounds each attempt).
func NewSink(kind string, n config.Notifications, getenv func(string) string, client *http.Client) (Sink, []string, error) {
	if client == nil {
		client = &http.Client{}
	}
	notSet := func() error {
		return fmt.Errorf("notifications.%s is not configured in modelship.yaml", kind)
	}
	switch kind {
	case "slack":
		if n.Slack == nil {
			return nil, nil, notSet()
		}
		u, err := n.Slack.WebhookURL.Resolve(getenv)
		if err != nil {
			return nil, nil, fmt.Errorf("notifications.slack.webhook-url: %w", err)
		}
		return NewSlack(u, client), []string{u}, nil
	case "webhook":
		if n.Webhook == nil {
			return nil, nil, notSet()
		}
		k, err := n.Webhook.Secret.Resolve(getenv)
		if err != nil {
			return nil, nil, fmt.Errorf("notifications.webhook.secret: %w", err)
		}
		return NewWebhook(n.Webhook.URL, k, client), []string{k}, nil
	case "grafana":
		if n.Grafana == nil {
			return nil, nil, notSet()
		}
		t, err := n.Grafana.Token.Resolve(getenv)
		if err != nil {
			return nil, nil, fmt.Errorf("notifications.grafana.token: %w", err)
		}
		return NewGrafana(n.Grafana.URL, t, client), []string{t}, nil
	case "pushgateway":
		if n.Pushgateway == nil {
			return nil, nil, notSet()
		}
		return NewPushgateway(n.Pushgateway.URL, n.Pushgateway.Job, client), nil, nil
	}
	return nil, nil, fmt.Errorf("unknown sink kind %q: expected %s", kind, strings.Join(Kinds, ", "))
}

// Configured lists the kinds the notifications section configures.
func Configured(n config.Notifications) []string {
	var out []string
	if n.Slack != nil {
		out = append(out, "slack")
	}
	if n.Webhook != nil {
		out = append(out, "webhook")
	}
	if n.Grafana != nil {
		out = append(out, "grafana")
	}
	if n.Pushgateway != nil {
		out = append(out, "pushgateway")
	}
	return out
}

// FromConfig builds every configured sink (see NewSink). A sink that cannot
// be built is left out and its error joined into err, so the caller can warn
// and go on with the others: notifications never stop a release.
func FromConfig(n config.Notifications, getenv func(string) string) (sinks []Sink, secrets []string, err error) {
	var errs []error
	client := &http.Client{}
	for _, kind := range Configured(n) {
		s, sec, err := NewSink(kind, n, getenv, client)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sinks = append(sinks, s)
		secrets = append(secrets, sec...)
	}
	return sinks, secrets, errors.Join(errs...)
}
