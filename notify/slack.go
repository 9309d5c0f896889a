package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Slack posts to a Slack incoming webhook with Block Kit.
//
// Incoming webhooks cannot edit a message or answer in its thread (they do
// not return the message's ts), so a release is told as one full message
// and compact follow-ups:
//
//   - the first event this process sees for a release (by Event.Release),
//     and every event that decides it (any failed or rolled_back event, and
//     the release stage's final passed) get the full message: a header with
//     the verdict, fields for model digest, image, git SHA, environment and
//     the gate figures, the message, and a context line linking the run;
//   - other finished stages (passed, skipped) get a one-line follow-up with
//     the stage's key figures and the run link, and so does each step of a
//     stage under way (progress: a canary step, a shadow step), its message
//     naming the step and what it found;
//   - "started" events after the first are not posted: they would double
//     the noise without telling anything a follow-up does not.
//
// Each CI job is its own process, so each job's first event opens with the
// full message; that keeps every job's messages readable on their own.
type Slack struct {
	url    string
	client *http.Client
	red    redactor

	mu   sync.Mutex
	seen map[string]bool
}

// NewSlack makes a Slack sink posting to the incoming webhook URL webhookURL,
// which is a credential: it never appears in errors. client nil is
// http.DefaultClient (the Notifier bounds each attempt).
func NewSlack(webhookURL string, client *http.Client) *Slack {
	r := newRedactor("slack", webhookURL, "<redacted webhook URL>", webhookURL)
	r.addPath(webhookURL)
	// The last path segment is the webhook's token: alone it is still a secret.
	if i := strings.LastIndex(webhookURL, "/"); i >= 0 {
		r.add(webhookURL[i+1:])
	}
	return &Slack{url: webhookURL, client: client, red: r, seen: map[string]bool{}}
}

// Name is "slack".
func (s *Slack) Name() string { return "slack" }

// Send posts the event's message, full or compact (see Slack).
func (s *Slack) Send(ctx context.Context, e Event) error {
	s.mu.Lock()
	key := e.releaseKey()
	first := !s.seen[key]
	s.mu.Unlock()

	var msg SlackMessage
	switch {
	case first || e.Status == StatusFailed || e.Status == StatusRolledBack || (e.Stage == StageRelease && e.Status.Terminal()):
		msg = SlackFull(e)
	case e.Status == StatusStarted:
		return nil
	default:
		msg = SlackFollowUp(e)
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return s.red.err(err)
	}
	if err := postJSON(ctx, s.client, s.red, s.url, body, nil); err != nil {
		return err
	}
	s.mu.Lock()
	s.seen[key] = true
	s.mu.Unlock()
	return nil
}

// SlackMessage is the body of an incoming-webhook post: Text is the
// notification fallback, Blocks the Block Kit layout.
type SlackMessage struct {
	Text   string       `json:"text"`
	Blocks []SlackBlock `json:"blocks"`
}

// SlackBlock is one Block Kit block (header, section or context).
type SlackBlock struct {
	Type     string      `json:"type"`
	Text     *SlackText  `json:"text,omitempty"`
	Fields   []SlackText `json:"fields,omitempty"`
	Elements []SlackText `json:"elements,omitempty"`
}

// SlackText is a Block Kit text object: plain_text or mrkdwn.
type SlackText struct {
	Type  string `json:"type"`
	Text  string `json:"text"`
	Emoji bool   `json:"emoji,omitempty"`
}

// Block Kit limits.
const (
	slackHeaderMax  = 150
	slackFieldMax   = 2000
	slackSectionMax = 3000
	slackFieldsMax  = 10
)

func statusEmoji(s Status) string {
	switch s {
	case StatusPassed:
		return "✅"
	case StatusFailed:
		return "❌"
	case StatusRolledBack:
		return "↩️"
	case StatusSkipped:
		return "⏭️"
	}
	return "⏳"
}

// slackEscape escapes the three characters mrkdwn reserves.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func truncate(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max-1]) + "…"
}

func mrkdwn(s string, max int) SlackText { return SlackText{Type: "mrkdwn", Text: truncate(s, max)} }

// SlackFull is the full message for e: header, fields, message, run link.
func SlackFull(e Event) SlackMessage {
	title := "modelship: " + e.Title()
	if e.Release != "" {
		title = "modelship " + e.Release + ": " + e.Title()
	}
	header := statusEmoji(e.Status) + " " + title
	fields := []SlackText{}
	field := func(name, value string) {
		if value != "" && len(fields) < slackFieldsMax {
			fields = append(fields, mrkdwn("*"+name+"*\n"+value, slackFieldMax))
		}
	}
	code := func(s string) string {
		if s == "" {
			return ""
		}
		return "`" + slackEscape(s) + "`"
	}
	model := code(short(e.ModelDigest))
	if e.Model != "" {
		model = strings.TrimSpace(slackEscape(e.Model) + " " + model)
	}
	field("Model", model)
	image := e.Image
	if e.ImageDigest != "" && !strings.Contains(image, "@") {
		image += "@" + short(e.ImageDigest)
	}
	field("Image", code(image))
	field("Git SHA", code(shortSHA(e.GitSHA)))
	field("Environment", slackEscape(e.Environment))
	field("Verdict", statusEmoji(e.Status)+" "+string(e.Stage)+" "+strings.ReplaceAll(string(e.Status), "_", " "))
	for _, f := range figureLines(e.Figures) {
		field(f[0], f[1])
	}
	blocks := []SlackBlock{{Type: "header", Text: &SlackText{Type: "plain_text", Text: truncate(header, slackHeaderMax), Emoji: true}}}
	if len(fields) > 0 {
		blocks = append(blocks, SlackBlock{Type: "section", Fields: fields})
	}
	if e.Message != "" {
		t := mrkdwn(slackEscape(e.Message), slackSectionMax)
		blocks = append(blocks, SlackBlock{Type: "section", Text: &t})
	}
	blocks = append(blocks, SlackBlock{Type: "context", Elements: []SlackText{mrkdwn(contextLine(e), slackFieldMax)}})
	return SlackMessage{Text: truncate(header, slackSectionMax), Blocks: blocks}
}

// SlackFollowUp is the one-line message for a finished stage or a step of
// one under way (progress).
func SlackFollowUp(e Event) SlackMessage {
	line := statusEmoji(e.Status) + " *" + string(e.Stage) + "* " + strings.ReplaceAll(string(e.Status), "_", " ")
	if e.Environment != "" {
		line += " in " + slackEscape(e.Environment)
	}
	for _, f := range figureLines(e.Figures) {
		line += " · " + strings.ReplaceAll(f[1], "\n", " ")
	}
	if e.Message != "" {
		line += " — " + slackEscape(e.Message)
	}
	line += " · " + contextLine(e)
	text := statusEmoji(e.Status) + " modelship " + e.Title()
	return SlackMessage{Text: text, Blocks: []SlackBlock{{Type: "context", Elements: []SlackText{mrkdwn(line, slackFieldMax)}}}}
}

// contextLine: "release r-1 · <run|View run> · 2025-01-02 15:04:05 UTC".
func contextLine(e Event) string {
	var parts []string
	if e.Release != "" {
		parts = append(parts, "release "+slackEscape(e.Release))
	}
	if e.RunURL != "" && !strings.ContainsAny(e.RunURL, "<>| ") {
		parts = append(parts, "<"+e.RunURL+"|View run>")
	}
	if !e.Time.IsZero() {
		parts = append(parts, e.Time.UTC().Format("2006-01-02 15:04:05 MST"))
	}
	if len(parts) == 0 {
		return "modelship"
	}
	return strings.Join(parts, " · ")
}

// figureLines are the key figures as (name, value) pairs for people.
func figureLines(f *Figures) [][2]string {
	if f == nil {
		return nil
	}
	var out [][2]string
	if v := f.Validation; v != nil {
		out = append(out, [2]string{"Validation", fmt.Sprintf("%s %d/%d cases passed (%.1f%%)", verdictWord(v.Passed), v.Ok, v.Total, 100*v.PassRate)})
	}
	if b := f.Bench; b != nil {
		out = append(out,
			[2]string{"Benchmark", fmt.Sprintf("%s %d requests, %d errors", verdictWord(b.Passed), b.Requests, b.Errors)},
			[2]string{"Latency p99", fmt.Sprintf("TTFT %s, E2E %s", seconds(b.TTFT.P99), seconds(b.E2EL.P99))},
			[2]string{"Throughput", fmt.Sprintf("%.1f output tokens/s", b.OutputTokensPerSec)})
	}
	return out
}

func verdictWord(passed bool) string {
	if passed {
		return "✅"
	}
	return "❌"
}

func seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
}
