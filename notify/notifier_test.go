package notify

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// A 500 is retried and the event delivered on the second attempt.
func TestNotifierRetries(t *testing.T) {
	rec := newRecorder(t, 500)
	w := NewWebhook(rec.URL, "retry-secret", nil)
	if ws := notifyOne(t, w, sampleEvent(), fast()); len(ws) != 0 {
		t.Fatalf("warnings %v, want none (delivered on retry)", ws)
	}
	reqs := rec.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2 (500, then 200)", len(reqs))
	}
	// Each attempt is signed afresh and the same event is sent.
	if !bytes.Equal(reqs[0].Body, reqs[1].Body) {
		t.Error("the retry sent another body")
	}
}

// Three 503s: the event is given up with a warning after 3 attempts.
func TestNotifierGivesUp(t *testing.T) {
	rec := newRecorder(t, 503, 503, 503, 200)
	var logs bytes.Buffer
	o := fast()
	o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	ws := notifyOne(t, NewGrafana(rec.URL, "tok-tok-tok", nil), sampleEvent(), o)
	if len(ws) != 1 || ws[0].Attempts != 3 || ws[0].Sink != "grafana" || !strings.Contains(ws[0].Message, "503") {
		t.Fatalf("got %+v, want one grafana warning after 3 attempts", ws)
	}
	if len(rec.requests()) != 3 {
		t.Errorf("%d requests, want 3", len(rec.requests()))
	}
	if !strings.Contains(logs.String(), `"modelship.sink":"grafana"`) || !strings.Contains(logs.String(), "notification not delivered") {
		t.Errorf("no warning logged: %s", logs.String())
	}
}

// A sink that never answers does not hold the caller beyond the budget.
func TestNotifierSlowSink(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(release)
	fastRec := newRecorder(t)

	o := Options{Timeout: 100 * time.Millisecond, Attempts: 2, Backoff: 10 * time.Millisecond}
	n := New([]Sink{NewSlack(hang.URL+"/services/T/B/hangingtoken", nil), NewGrafana(fastRec.URL, "tok-tok-tok", nil)}, o)
	defer n.Close(context.Background())
	start := time.Now()
	ws := n.Notify(context.Background(), sampleEvent())
	took := time.Since(start)
	if len(ws) != 1 || ws[0].Sink != "slack" || ws[0].Attempts != 2 || !strings.Contains(ws[0].Message, "deadline exceeded") {
		t.Fatalf("got %+v, want one slack warning after 2 timed-out attempts", ws)
	}
	if len(fastRec.requests()) != 1 {
		t.Error("the healthy sink did not get the event")
	}
	if took > 30*time.Second { // generous: the budget is 210ms
		t.Errorf("Notify took %s with a budget of %s", took, o.Budget())
	}
	if strings.Contains(ws[0].Message, "hangingtoken") {
		t.Errorf("warning contains the webhook token: %s", ws[0].Message)
	}

	// The caller's own deadline wins over the budget.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	ws = n.Notify(ctx, sampleEvent())
	if len(ws) == 0 || !strings.Contains(ws[0].Message, "caller stopped waiting") {
		t.Errorf("got %+v, want a still-sending warning", ws)
	}
}

// recordingSink keeps the events it receives, in order.
type recordingSink struct {
	mu     sync.Mutex
	events []Event
	block  chan struct{}
}

func (r *recordingSink) Name() string { return "recording" }
func (r *recordingSink) Send(ctx context.Context, e Event) error {
	if r.block != nil {
		select {
		case <-r.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return nil
}

func TestNotifierPostFlushInOrder(t *testing.T) {
	r := &recordingSink{}
	n := New([]Sink{r}, fast())
	for _, st := range Stages {
		e := sampleEvent()
		e.Stage = st
		n.Post(e)
	}
	if ws := n.Close(t.Context()); len(ws) != 0 {
		t.Fatal(ws)
	}
	if len(r.events) != len(Stages) {
		t.Fatalf("%d events delivered, want %d", len(r.events), len(Stages))
	}
	for i, e := range r.events {
		if e.Stage != Stages[i] {
			t.Errorf("event %d is %s, want %s", i, e.Stage, Stages[i])
		}
	}
	n.Post(sampleEvent())
	if ws := n.Warnings(); len(ws) != 1 || ws[0].Message != "notifier closed" {
		t.Errorf("post after close: %+v", ws)
	}
}

// A full queue drops instead of blocking the caller.
func TestNotifierQueueFull(t *testing.T) {
	r := &recordingSink{block: make(chan struct{})}
	n := New([]Sink{r}, Options{Queue: 2, Timeout: 5 * time.Second, Backoff: time.Millisecond})
	for range 5 {
		n.Post(sampleEvent()) // one in flight, two queued, two dropped
	}
	close(r.block)
	ws := n.Close(t.Context())
	dropped := 0
	for _, w := range ws {
		if strings.HasPrefix(w.Message, "dropped") {
			dropped++
		}
	}
	if dropped == 0 || dropped+len(r.events) != 5 {
		t.Errorf("%d dropped, %d delivered, want 5 in all with some dropped", dropped, len(r.events))
	}
}

func TestNotifierRejectsUnknownStage(t *testing.T) {
	r := &recordingSink{}
	n := New([]Sink{r}, fast())
	defer n.Close(t.Context())
	e := sampleEvent()
	e.Stage = "deploi"
	ws := n.Notify(t.Context(), e)
	if len(ws) != 1 || !strings.Contains(ws[0].Message, `unknown stage "deploi"`) || len(r.events) != 0 {
		t.Errorf("got %+v", ws)
	}
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// No secret appears in any warning, log line or error when every sink is
// down, nor when they answer with errors.
func TestSecretsNeverLeak(t *testing.T) {
	const (
		slackToken = "xoxbSLACKTOKENabcdef123456"
		hmacKey    = "HMACKEYdeadbeef0123456789"
		grafToken  = "glsaGRAFANATOKEN0123456789"
		pgwPass    = "PUSHGATEWAYPASSWORD987"
		hookPath   = "HOOKPATHTOKEN5678"
	)
	secrets := []string{slackToken, hmacKey, grafToken, pgwPass, hookPath}
	env := map[string]string{
		"SLACK_URL":  "http://" + closedPort(t) + "/services/T0/B0/" + slackToken,
		"HOOK_KEY":   hmacKey,
		"GRAF_TOKEN": grafToken,
	}
	// Secrets as modelship.yaml's (config.Notifications.Settings) resolve
	// them: from the environment, the error naming the reference.
	getenv := func(k string) string { return env[k] }
	sec := func(name string) Secret {
		return func() (string, error) {
			if v := getenv(name); v != "" {
				return v, nil
			}
			return "", errors.New("secret env:" + name + ": environment variable " + name + " is not set")
		}
	}
	n := Settings{
		Slack:       &SlackSettings{WebhookURL: sec("SLACK_URL")},
		Webhook:     &WebhookSettings{URL: "http://" + closedPort(t) + "/in/" + hookPath + "?token=" + hookPath, Secret: sec("HOOK_KEY")},
		Grafana:     &GrafanaSettings{URL: "http://" + closedPort(t), Token: sec("GRAF_TOKEN")},
		Pushgateway: &PushgatewaySettings{URL: "http://ci:" + pgwPass + "@" + closedPort(t), Job: "modelship"},
	}
	sinks, resolved, err := NewSinks(n)
	if err != nil || len(sinks) != 4 {
		t.Fatalf("NewSinks: %d sinks, %v", len(sinks), err)
	}
	if len(resolved) != 3 {
		t.Errorf("resolved secrets %d, want 3", len(resolved))
	}

	// And servers that answer with errors echoing the request.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte("bad request to " + r.URL.String() + " auth " + r.Header.Get("Authorization")))
	}))
	defer echo.Close()
	sinks = append(sinks,
		NewSlack(echo.URL+"/services/T0/B0/"+slackToken, nil),
		NewGrafana(echo.URL, grafToken, nil),
		NewWebhook(echo.URL+"/in/"+hookPath, hmacKey, nil),
		NewPushgateway("http://ci:"+pgwPass+"@"+strings.TrimPrefix(echo.URL, "http://"), "", nil))

	var logs bytes.Buffer
	o := Options{Timeout: 2 * time.Second, Attempts: 2, Backoff: time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	nt := New(sinks, o)
	ws := nt.Notify(t.Context(), sampleEvent())
	ws = append(ws, nt.Close(t.Context())...)
	if len(ws) < 8 {
		t.Errorf("%d warnings, want one per sink (8) at least: %v", len(ws), ws)
	}
	var all strings.Builder
	for _, w := range ws {
		all.WriteString(w.String() + "\n")
	}
	all.WriteString(logs.String())
	for _, s := range secrets {
		if strings.Contains(all.String(), s) {
			t.Errorf("secret %q leaked:\n%s", s, all.String())
		}
	}
	for _, want := range []string{"slack: Post <redacted webhook URL>", "connection refused", "400 Bad Request"} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("warnings lack %q:\n%s", want, all.String())
		}
	}

	// A missing secret leaves out its own sink only, with the Secret's error
	// (naming the reference, not a value).
	clear(env)
	sinks, _, err = NewSinks(n)
	if err == nil || !strings.Contains(err.Error(), "env:SLACK_URL") || len(sinks) != 1 || sinks[0].Name() != "pushgateway" {
		t.Errorf("got %d sinks, %v", len(sinks), err)
	}
}

func TestNewSinkKinds(t *testing.T) {
	_, _, err := NewSink("teams", Settings{}, nil)
	if err == nil || !strings.Contains(err.Error(), `unknown sink kind "teams"`) {
		t.Errorf("got %v", err)
	}
	_, _, err = NewSink("slack", Settings{}, nil)
	if err == nil || !strings.Contains(err.Error(), "notifications.slack is not configured") {
		t.Errorf("got %v", err)
	}
	_, _, err = NewSink("grafana", Settings{Grafana: &GrafanaSettings{URL: "http://grafana:3000"}}, nil)
	if err == nil || err.Error() != "notifications.grafana.token: no secret given" {
		t.Errorf("grafana without a token: got %v", err)
	}
	s, _, err := NewSink("pushgateway", Settings{Pushgateway: &PushgatewaySettings{URL: "http://pgw:9091"}}, nil)
	if err != nil || s.Name() != "pushgateway" {
		t.Errorf("got %v, %v", s, err)
	}
	s, secrets, err := NewSink("webhook", Settings{Webhook: &WebhookSettings{URL: "http://hooks:8080/in", Secret: Value("k3y")}}, nil)
	if err != nil || s.Name() != "webhook" || len(secrets) != 1 || secrets[0] != "k3y" {
		t.Errorf("webhook with a resolved secret: got %v, %q, %v", s, secrets, err)
	}
	if got := Configured(Settings{Grafana: &GrafanaSettings{}, Slack: &SlackSettings{}}); strings.Join(got, ",") != "slack,grafana" {
		t.Errorf("Configured: %q, want slack,grafana (the order of Kinds)", got)
	}
}

func TestRunURLAndFill(t *testing.T) {
	env := map[string]string{"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/models", "GITHUB_RUN_ID": "99", "GITHUB_RUN_ATTEMPT": "2", "GITHUB_SHA": "f00dcafe"}
	get := func(k string) string { return env[k] }
	if got := RunURL(get); got != "https://github.com/acme/models/actions/runs/99/attempts/2" {
		t.Errorf("RunURL %q", got)
	}
	var e Event
	e.FillFromEnv(get)
	if e.RunURL == "" || e.GitSHA != "f00dcafe" || e.Time.IsZero() {
		t.Errorf("FillFromEnv: %+v", e)
	}
	if got := RunURL(func(string) string { return "" }); got != "" {
		t.Errorf("outside Actions: %q", got)
	}
	if _, err := ParseStatus("rolled-back"); err == nil || !strings.Contains(err.Error(), `"rolled_back"`) {
		t.Errorf("ParseStatus: %v", err)
	}
}

// progress is a status like the others, for a stage that has not ended.
func TestProgressStatus(t *testing.T) {
	s, err := ParseStatus("progress")
	if err != nil || s != StatusProgress || !slices.Contains(Statuses, StatusProgress) {
		t.Fatalf("ParseStatus(progress) = %q, %v; Statuses %q", s, err, Statuses)
	}
	if s.Terminal() || s.Outcome() != "unknown" {
		t.Errorf("progress: Terminal %v, Outcome %q; want false, unknown (the stage goes on)", s.Terminal(), s.Outcome())
	}
	if got := progressEvent().Title(); got != "deploy progress in production" {
		t.Errorf("Title %q", got)
	}
}
