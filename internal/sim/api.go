package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Wire types of the OpenAI-compatible API, in the shapes and field order that
// vLLM sends.

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// genRequest holds the fields of chat and completion requests the simulator
// uses; like vLLM it ignores fields it does not know.
type genRequest struct {
	Model               string          `json:"model"`
	Messages            []chatMessage   `json:"messages"`
	Prompt              json.RawMessage `json:"prompt"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	N                   *int            `json:"n"`
	Stream              bool            `json:"stream"`
	StreamOptions       *streamOptions  `json:"stream_options"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	Seed                *int64          `json:"seed"`
	Stop                json.RawMessage `json:"stop"`
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	TotalTokens      int `json:"total_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

type message struct {
	Role      string `json:"role"`
	Content   string `json:"content"`
	ToolCalls []any  `json:"tool_calls"`
}

type chatChoice struct {
	Index        int     `json:"index"`
	Message      message `json:"message"`
	Logprobs     any     `json:"logprobs"`
	FinishReason string  `json:"finish_reason"`
	StopReason   any     `json:"stop_reason"`
}

type chatResponse struct {
	ID             string       `json:"id"`
	Object         string       `json:"object"`
	Created        int64        `json:"created"`
	Model          string       `json:"model"`
	Choices        []chatChoice `json:"choices"`
	Usage          usage        `json:"usage"`
	PromptLogprobs any          `json:"prompt_logprobs"`
}

type delta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

type chatChunkChoice struct {
	Index        int     `json:"index"`
	Delta        delta   `json:"delta"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
	StopReason   any     `json:"stop_reason,omitempty"`
}

// envelope is a streamed chat chunk (C chatChunkChoice) or a completion,
// whole or streamed (C completionChoice): vLLM sends these fields, in this
// order, around both.
type envelope[C any] struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []C    `json:"choices"`
	Usage   *usage `json:"usage,omitempty"`
}

type chatChunk = envelope[chatChunkChoice]

type completionChoice struct {
	Index          int     `json:"index"`
	Text           string  `json:"text"`
	Logprobs       any     `json:"logprobs"`
	FinishReason   *string `json:"finish_reason"`
	StopReason     any     `json:"stop_reason"`
	PromptLogprobs any     `json:"prompt_logprobs,omitempty"`
}

type completionResponse = envelope[completionChoice]

type modelPermission struct {
	ID                 string `json:"id"`
	Object             string `json:"object"`
	Created            int64  `json:"created"`
	AllowCreateEngine  bool   `json:"allow_create_engine"`
	AllowSampling      bool   `json:"allow_sampling"`
	AllowLogprobs      bool   `json:"allow_logprobs"`
	AllowSearchIndices bool   `json:"allow_search_indices"`
	AllowView          bool   `json:"allow_view"`
	AllowFineTuning    bool   `json:"allow_fine_tuning"`
	Organization       string `json:"organization"`
	Group              any    `json:"group"`
	IsBlocking         bool   `json:"is_blocking"`
}

type modelCard struct {
	ID          string            `json:"id"`
	Object      string            `json:"object"`
	Created     int64             `json:"created"`
	OwnedBy     string            `json:"owned_by"`
	Root        string            `json:"root"`
	Parent      any               `json:"parent"`
	MaxModelLen int               `json:"max_model_len"`
	Permission  []modelPermission `json:"permission"`
}

type modelList struct {
	Object string      `json:"object"`
	Data   []modelCard `json:"data"`
}

type apiError struct {
	Message string `json:"message"`
	Type    string `json:"type"`
	Param   any    `json:"param"`
	Code    int    `json:"code"`
}

type errorBody struct {
	Error apiError `json:"error"`
}

// input is one prompt to answer: the text the response table matches against
// and its token count.
type input struct {
	text   string
	tokens int
}

// Chat template accounting: every message costs its content tokens plus
// chatMessageOverhead (role header, end of turn), and the assistant header
// that opens the reply costs chatReplyOverhead.
const (
	chatMessageOverhead = 4
	chatReplyOverhead   = 3
	bosTokens           = 1 // completions: the BOS token before the prompt
)

// chatInput returns the text of the last user message and the prompt token
// count of a chat request.
func chatInput(msgs []chatMessage) (input, error) {
	if len(msgs) == 0 {
		return input{}, errors.New("messages: expected at least one message")
	}
	in := input{tokens: chatReplyOverhead}
	for i, m := range msgs {
		text, err := contentText(m.Content)
		if err != nil {
			return input{}, fmt.Errorf("messages[%d].content: %v", i, err)
		}
		in.tokens += chatMessageOverhead + CountTokens(text)
		if m.Role == "user" {
			in.text = text
		}
	}
	return in, nil
}

// contentText accepts a string, null, or an array of parts ({"type":"text",
// "text":...}; other part types count nothing).
func contentText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("expected a string or an array of content parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type == "text" {
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(p.Text)
		}
	}
	return b.String(), nil
}

// completionInputs parses a completion prompt: a string, an array of
// strings, an array of token ids, or an array of token-id arrays.
func completionInputs(raw json.RawMessage) ([]input, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errors.New("prompt: required")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return []input{{text: s, tokens: bosTokens + CountTokens(s)}}, nil
	}
	var ss []string
	if err := json.Unmarshal(raw, &ss); err == nil && len(ss) > 0 {
		ins := make([]input, len(ss))
		for i, s := range ss {
			ins[i] = input{text: s, tokens: bosTokens + CountTokens(s)}
		}
		return ins, nil
	}
	var ids []int
	if err := json.Unmarshal(raw, &ids); err == nil && len(ids) > 0 {
		return []input{{tokens: len(ids)}}, nil
	}
	var idss [][]int
	if err := json.Unmarshal(raw, &idss); err == nil && len(idss) > 0 {
		ins := make([]input, len(idss))
		for i, ids := range idss {
			if len(ids) == 0 {
				return nil, fmt.Errorf("prompt[%d]: expected at least one token id", i)
			}
			ins[i] = input{tokens: len(ids)}
		}
		return ins, nil
	}
	return nil, errors.New("prompt: expected a string, an array of strings, or (arrays of) token ids, not empty")
}

// stopStrings parses "stop": a string or an array of strings.
func stopStrings(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if s == "" {
			return nil, nil
		}
		return []string{s}, nil
	}
	var ss []string
	if err := json.Unmarshal(raw, &ss); err != nil {
		return nil, errors.New("stop: expected a string or an array of strings")
	}
	out := ss[:0]
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}
