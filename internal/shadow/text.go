package shadow

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Paths of the generations the mirror compares (OpenAI's API).
const (
	ChatPath       = "/v1/chat/completions"
	CompletionPath = "/v1/completions"
)

// maxChoices bounds the choices (n) of one answer that are read.
const maxChoices = 128

// generation reports whether path (with its query) is a generation the
// mirror compares, and whether it is a chat completion.
func generation(path string) (chat, ok bool) {
	p, _, _ := strings.Cut(path, "?")
	switch p {
	case ChatPath:
		return true, true
	case CompletionPath:
		return false, true
	}
	return false, false
}

// choice is one choice of a completion or of a streamed chunk: chat has
// message.content (delta.content when streamed), completions text.
type choice struct {
	Index   int      `json:"index"`
	Text    *string  `json:"text"`
	Message *content `json:"message"`
	Delta   *content `json:"delta"`
}

type content struct {
	Content *string `json:"content"`
}

// completion is an answer, or one chunk of a streamed answer.
type completion struct {
	Choices []choice        `json:"choices"`
	Error   json.RawMessage `json:"error"`
}

// answerText is the text of an OpenAI answer, a JSON completion or a
// streamed one (server-sent events "data: {chunk}" up to "data: [DONE]"):
// each choice's text in the order of their index, joined by newlines.
func answerText(body []byte, chat bool) (string, error) {
	t := bytes.TrimSpace(body)
	if len(t) == 0 {
		return "", errors.New("empty answer")
	}
	var parts []strings.Builder
	if t[0] == '{' {
		if err := addChunk(&parts, t, chat); err != nil {
			return "", err
		}
	} else if err := addStream(&parts, t, chat); err != nil {
		return "", err
	}
	if len(parts) == 0 {
		return "", errors.New(`no "choices" in the answer`)
	}
	texts := make([]string, len(parts))
	for i := range parts {
		texts[i] = parts[i].String()
	}
	return strings.Join(texts, "\n"), nil
}

// addStream adds the chunks of a streamed answer.
func addStream(parts *[]strings.Builder, body []byte, chat bool) error {
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, MaxAnswer+1)
	events := 0
	for sc.Scan() {
		data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data:"))
		if !ok {
			continue // blank lines, comments, other fields
		}
		data = bytes.TrimSpace(data)
		if string(data) == "[DONE]" {
			break
		}
		events++
		if err := addChunk(parts, data, chat); err != nil {
			return fmt.Errorf("streamed event %d: %w", events, err)
		}
	}
	if events == 0 {
		return errors.New(`neither JSON nor a stream of "data:" events`)
	}
	return sc.Err()
}

// addChunk adds the text of one completion or chunk to parts, by choice
// index.
func addChunk(parts *[]strings.Builder, data []byte, chat bool) error {
	var c completion
	if err := json.Unmarshal(data, &c); err != nil {
		return fmt.Errorf("not a completion: %v", err)
	}
	if len(c.Error) > 0 && string(c.Error) != "null" {
		return errors.New("the answer is an error")
	}
	for _, ch := range c.Choices {
		if ch.Index < 0 || ch.Index >= maxChoices {
			continue
		}
		for len(*parts) <= ch.Index {
			*parts = append(*parts, strings.Builder{})
		}
		(*parts)[ch.Index].WriteString(ch.text(chat))
	}
	return nil
}

// text is the choice's text: message.content or delta.content for chat
// (null for a tool call: ""), text for completions.
func (ch choice) text(chat bool) string {
	switch {
	case !chat && ch.Text != nil:
		return *ch.Text
	case chat && ch.Message != nil && ch.Message.Content != nil:
		return *ch.Message.Content
	case chat && ch.Delta != nil && ch.Delta.Content != nil:
		return *ch.Delta.Content
	}
	return ""
}

// promptOf is the request's last user message (chat) or its prompt (the
// last, when it is a list); "" when the body has neither (or only token
// ids).
func promptOf(body []byte, chat bool) string {
	var req struct {
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
		Prompt json.RawMessage `json:"prompt"`
	}
	if json.Unmarshal(body, &req) != nil {
		return ""
	}
	if !chat {
		return lastString(req.Prompt)
	}
	for i := len(req.Messages) - 1; i >= 0; i-- {
		if req.Messages[i].Role == "user" {
			return messageText(req.Messages[i].Content)
		}
	}
	return ""
}

// lastString is raw as a string, or the last string of a list of them.
func lastString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil && len(list) > 0 {
		return list[len(list)-1]
	}
	return ""
}

// messageText is a chat message's content: a string, or the text parts
// of a list of parts joined by newlines.
func messageText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) != nil {
		return ""
	}
	var texts []string
	for _, p := range parts {
		if p.Type == "text" {
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, "\n")
}
