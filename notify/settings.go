package notify

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Kinds are the sink kinds Settings can configure, in the order NewSinks
// builds them.
var Kinds = []string{"slack", "webhook", "grafana", "pushgateway"}

// Settings say which sinks to build and how to reach them; a nil field is a
// kind that is not configured. modelship fills them in from modelship.yaml's
// notifications section (whose keys the errors below name); a program of its
// own fills them in directly.
type Settings struct {
	Slack       *SlackSettings
	Webhook     *WebhookSettings
	Grafana     *GrafanaSettings
	Pushgateway *PushgatewaySettings
}

// SlackSettings are an incoming webhook; its URL is itself a secret.
type SlackSettings struct {
	WebhookURL Secret
}

// WebhookSettings are a generic JSON webhook signed with HMAC-SHA256, keyed
// with Secret.
type WebhookSettings struct {
	URL    string
	Secret Secret
}

// GrafanaSettings are where annotations go, and the API token they carry.
type GrafanaSettings struct {
	URL   string
	Token Secret
}

// PushgatewaySettings are where deploy and gate metrics are pushed, and the
// job they are grouped under.
type PushgatewaySettings struct {
	URL string
	Job string
}

// Secret yields a credential (a webhook URL, a token, an HMAC key) when its
// sink is built, so that one that does not resolve leaves out only its own
// sink. Its error names where the credential comes from, never the
// credential. Value makes one from a credential already in hand.
type Secret func() (string, error)

// Value is a Secret that is already resolved.
func Value(v string) Secret { return func() (string, error) { return v, nil } }

// NewSink builds the sink of kind from s. It returns the secret values it
// resolved, for the caller to redact from logs and mask in CI. An unknown
// kind, or one s does not configure, is an error; so is a secret that does
// not resolve (its error as the Secret gave it). client nil is a client of
// its own (the Notifier bounds each attempt).
func NewSink(kind string, s Settings, client *http.Client) (Sink, []string, error) {
	if client == nil {
		client = &http.Client{}
	}
	var (
		secret Secret
		field  string
		build  func(secret string) Sink
	)
	switch {
	case kind == "slack" && s.Slack != nil:
		secret, field = s.Slack.WebhookURL, "webhook-url"
		build = func(u string) Sink { return NewSlack(u, client) }
	case kind == "webhook" && s.Webhook != nil:
		secret, field = s.Webhook.Secret, "secret"
		build = func(k string) Sink { return NewWebhook(s.Webhook.URL, k, client) }
	case kind == "grafana" && s.Grafana != nil:
		secret, field = s.Grafana.Token, "token"
		build = func(t string) Sink { return NewGrafana(s.Grafana.URL, t, client) }
	case kind == "pushgateway" && s.Pushgateway != nil:
		return NewPushgateway(s.Pushgateway.URL, s.Pushgateway.Job, client), nil, nil
	case slices.Contains(Kinds, kind):
		return nil, nil, fmt.Errorf("notifications.%s is not configured in modelship.yaml", kind)
	default:
		return nil, nil, fmt.Errorf("unknown sink kind %q: expected %s", kind, strings.Join(Kinds, ", "))
	}
	if secret == nil {
		return nil, nil, fmt.Errorf("notifications.%s.%s: no secret given", kind, field)
	}
	v, err := secret()
	if err != nil {
		return nil, nil, err
	}
	return build(v), []string{v}, nil
}

// Configured lists the kinds s configures, in the order of Kinds.
func Configured(s Settings) []string {
	var out []string
	if s.Slack != nil {
		out = append(out, "slack")
	}
	if s.Webhook != nil {
		out = append(out, "webhook")
	}
	if s.Grafana != nil {
		out = append(out, "grafana")
	}
	if s.Pushgateway != nil {
		out = append(out, "pushgateway")
	}
	return out
}

// NewSinks builds every sink s configures (see NewSink). A sink that cannot
// be built is left out and its error joined into err, so the caller can warn
// and go on with the others: notifications never stop a release.
func NewSinks(s Settings) (sinks []Sink, secrets []string, err error) {
	var errs []error
	client := &http.Client{}
	for _, kind := range Configured(s) {
		sink, sec, err := NewSink(kind, s, client)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sinks = append(sinks, sink)
		secrets = append(secrets, sec...)
	}
	return sinks, secrets, errors.Join(errs...)
}
