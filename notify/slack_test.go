package notify

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/modelship/modelship/internal/golden"
)

func decodeSlack(t *testing.T, body []byte) SlackMessage {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var m SlackMessage
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("body is not a Slack message: %v\n%s", err, body)
	}
	return m
}

func TestSlackReleaseMessages(t *testing.T) {
	rec := newRecorder(t)
	s := NewSlack(rec.URL+"/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX", nil)
	n := New([]Sink{s}, fast())
	defer n.Close(t.Context())

	start := sampleEvent()
	start.Stage, start.Status, start.Figures, start.Message, start.Environment = StageValidate, StatusStarted, nil, "", ""
	validated := start
	validated.Status = StatusPassed
	validated.Figures = &Figures{Validation: sampleEvent().Figures.Validation}
	benchStart := start
	benchStart.Stage = StageBenchmark
	deployed := sampleEvent()
	failed := sampleEvent()
	failed.Stage, failed.Status, failed.Message, failed.Figures = StageVerify, StatusFailed, "smoke: 2 of 5 cases failed <see report>", nil

	for _, e := range []Event{start, validated, benchStart, deployed, failed} {
		if ws := n.Notify(t.Context(), e); len(ws) != 0 {
			t.Fatalf("%s: warnings %v", e.Title(), ws)
		}
	}
	reqs := rec.requests()
	// validate started (full, first of the release), validate passed
	// (follow-up), benchmark started (not posted), deploy passed
	// (follow-up), verify failed (full).
	if len(reqs) != 4 {
		t.Fatalf("got %d posts, want 4", len(reqs))
	}
	for _, r := range reqs {
		if r.Method != http.MethodPost || r.Path != "/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("got %s %s %s", r.Method, r.Path, r.Header.Get("Content-Type"))
		}
	}

	first := decodeSlack(t, reqs[0].Body)
	if len(first.Blocks) == 0 || first.Blocks[0].Type != "header" || first.Blocks[0].Text.Type != "plain_text" ||
		first.Blocks[0].Text.Text != "⏳ modelship r-42: validate started" {
		t.Errorf("first message does not open with the release header: %+v", first.Blocks)
	}
	follow := decodeSlack(t, reqs[1].Body)
	if len(follow.Blocks) != 1 || follow.Blocks[0].Type != "context" {
		t.Fatalf("follow-up is not one context block: %+v", follow.Blocks)
	}
	line := follow.Blocks[0].Elements[0].Text
	for _, want := range []string{"✅ *validate* passed", "49/50 cases passed (98.0%)", "<https://github.com/acme/models/actions/runs/123456|View run>"} {
		if !strings.Contains(line, want) {
			t.Errorf("follow-up %q lacks %q", line, want)
		}
	}
	deploy := decodeSlack(t, reqs[2].Body)
	if deploy.Blocks[0].Type != "context" || !strings.Contains(deploy.Blocks[0].Elements[0].Text, "*deploy* passed in production") {
		t.Errorf("deploy follow-up: %+v", deploy.Blocks)
	}
	last := decodeSlack(t, reqs[3].Body)
	if last.Blocks[0].Type != "header" || !strings.HasPrefix(last.Blocks[0].Text.Text, "❌") {
		t.Errorf("a failure is not a full message: %+v", last.Blocks)
	}
	if msg := last.Blocks[2].Text.Text; msg != "smoke: 2 of 5 cases failed &lt;see report&gt;" {
		t.Errorf("message not mrkdwn-escaped: %q", msg)
	}
}

// The full message's exact Block Kit layout.
func TestSlackFullGolden(t *testing.T) {
	b, err := json.MarshalIndent(SlackFull(sampleEvent()), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "slack_full.json", append(b, '\n'))
	m := decodeSlack(t, b)
	var kinds []string
	for _, bl := range m.Blocks {
		kinds = append(kinds, bl.Type)
	}
	if got := strings.Join(kinds, ","); got != "header,section,section,context" {
		t.Errorf("blocks %s, want header,section,section,context", got)
	}
	fields := m.Blocks[1].Fields
	if len(fields) > slackFieldsMax {
		t.Errorf("%d fields, Block Kit allows %d", len(fields), slackFieldsMax)
	}
	all := ""
	for _, f := range fields {
		if f.Type != "mrkdwn" {
			t.Errorf("field type %q", f.Type)
		}
		all += f.Text + "\n"
	}
	for _, want := range []string{"*Model*\nllama-3.1-8b `sha256:0123456789ab`", "*Image*\n`ghcr.io/acme/llama-serving:r-42@sha256:fedcba987654`",
		"*Git SHA*\n`abc1234`", "*Environment*\nproduction", "*Verdict*\n✅ deploy passed", "TTFT 120ms, E2E 2.5s", "1234.5 output tokens/s"} {
		if !strings.Contains(all, want) {
			t.Errorf("fields lack %q:\n%s", want, all)
		}
	}
}

func TestSlackLimits(t *testing.T) {
	e := sampleEvent()
	e.Release = strings.Repeat("r", 300)
	e.Message = strings.Repeat("m", 5000)
	m := SlackFull(e)
	if n := len([]rune(m.Blocks[0].Text.Text)); n > slackHeaderMax {
		t.Errorf("header %d characters, Block Kit allows %d", n, slackHeaderMax)
	}
	if n := len([]rune(m.Blocks[2].Text.Text)); n > slackSectionMax {
		t.Errorf("section %d characters, Block Kit allows %d", n, slackSectionMax)
	}
}

// A canary step after the release's first message is a one-line
// follow-up naming the step; one before it opens the release in full.
func TestSlackProgress(t *testing.T) {
	rec := newRecorder(t)
	s := NewSlack(rec.URL+"/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX", nil)
	started := sampleEvent()
	started.Status, started.Figures, started.Message = StatusStarted, nil, ""
	reqs := deliver(t, s, rec, "/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX", 2, started, progressEvent())
	m := decodeSlack(t, reqs[1].Body)
	if len(m.Blocks) != 1 || m.Blocks[0].Type != "context" || len(m.Blocks[0].Elements) != 1 {
		t.Fatalf("a step is not a one-line follow-up: %+v", m.Blocks)
	}
	want := "⏳ *deploy* progress in production — canary-step: 25% passed: canary error rate 0.000 of 240 requests · release r-42 · " +
		"<https://github.com/acme/models/actions/runs/123456|View run> · 2025-03-01 12:01:30 UTC"
	if got := m.Blocks[0].Elements[0].Text; got != want {
		t.Errorf("follow-up\n%s\nwant\n%s", got, want)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "slack_progress.json", append(b, '\n'))

	alone := NewSlack(rec.URL+"/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX", nil)
	first := deliver(t, alone, rec, "/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX", 3, progressEvent())[2]
	if h := decodeSlack(t, first.Body).Blocks[0]; h.Type != "header" || h.Text.Text != "⏳ modelship r-42: deploy progress in production" {
		t.Errorf("a release's first event, a step, is not the full message: %+v", h)
	}
}
