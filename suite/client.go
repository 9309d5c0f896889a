package suite

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/modelship/modelship/internal/endpoint"

	"github.com/modelship/modelship/internal/clip"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// ClientLibrary names the OpenAI client the runner speaks through.
const ClientLibrary = "github.com/openai/openai-go/v3 v3.74.0"

// maxBody bounds how much of a response is read.
const maxBody = 16 << 20

// APIBase turns an endpoint as a user writes it (http://host:8100 or
// http://host:8100/v1, with or without a trailing slash) into the base of
// the OpenAI API, ending in "/v1/".
func APIBase(s string) (string, error) {
	u, err := endpoint.Parse("endpoint", s, "http://localhost:8100/v1")
	if err != nil {
		return "", err
	}
	if u.User != nil {
		return "", fmt.Errorf("endpoint: credentials in the URL are not supported; set OPENAI_API_KEY")
	}
	u.RawQuery, u.Fragment, u.ForceQuery = "", "", false
	u.Path, u.RawPath = endpoint.BasePath(u.Path)+"/v1/", ""
	return u.String(), nil
}

// outcome is how one request ended, before any assertion.
type outcome int

const (
	gotAnswer outcome = iota // a well-formed answer: run the assertions
	badAnswer                // the server answered, wrongly (4xx, not JSON, wrong shape, timeout): the case fails
	retryable                // transport error or 5xx: try again
	aborted                  // the run was cancelled
)

// exchange is the result of one request.
type exchange struct {
	outcome    outcome
	answer     Answer
	reason     string        // why, for everything but gotAnswer
	body       string        // preview of what the server sent
	retryAfter time.Duration // from a 5xx's Retry-After
}

type rawKey struct{}

// rawResponse is what the capture middleware saw on the wire.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
	read   bool // the whole body was read
}

// capture keeps the raw status and body of every response, so that a
// server answering with something that is not an OpenAI response can be
// reported as such (the client library decodes leniently).
func capture(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
	resp, err := next(req)
	rec, _ := req.Context().Value(rawKey{}).(*rawResponse)
	if err != nil || rec == nil {
		return resp, err
	}
	rec.status, rec.header = resp.StatusCode, resp.Header
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	rec.body, rec.read = body, true
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// client sends validation requests through openai-go with its retries off:
// the runner retries transport errors and 5xx itself, never anything else.
type client struct {
	oc      openai.Client
	timeout time.Duration
}

func newClient(endpoint, apiKey string, hc *http.Client, timeout time.Duration) (*client, error) {
	base, err := APIBase(endpoint)
	if err != nil {
		return nil, err
	}
	if hc == nil {
		hc = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	opts := []option.RequestOption{
		option.WithBaseURL(base),
		option.WithHTTPClient(hc),
		option.WithMaxRetries(0),
		option.WithMiddleware(capture),
	}
	if apiKey != "" {
		opts = append(opts, option.WithAPIKey(apiKey))
	}
	return &client{oc: openai.NewClient(opts...), timeout: timeout}, nil
}

// firstModel asks the endpoint which models it serves and returns the first.
func (c *client) firstModel(ctx context.Context) (string, exchange) {
	rec := &rawResponse{}
	rctx, cancel := context.WithTimeout(context.WithValue(ctx, rawKey{}, rec), c.timeout)
	defer cancel()
	page, err := c.oc.Models.List(rctx)
	if ex, done := classify(ctx, rctx, rec, err, c.timeout); done {
		return "", ex
	}
	if page == nil || len(page.Data) == 0 || page.Data[0].ID == "" {
		return "", exchange{outcome: badAnswer, reason: "GET /v1/models lists no model; pass --model", body: preview(string(rec.body))}
	}
	return page.Data[0].ID, exchange{outcome: gotAnswer}
}

// send makes one request for c and reports what came back.
func (cl *client) send(ctx context.Context, c *Case, model string) exchange {
	rec := &rawResponse{}
	rctx, cancel := context.WithTimeout(context.WithValue(ctx, rawKey{}, rec), cl.timeout)
	defer cancel()
	start := time.Now()
	var err error
	if c.Chat() {
		params := openai.ChatCompletionNewParams{
			Model:       model,
			Messages:    chatMessages(c.Messages),
			MaxTokens:   openai.Int(int64(c.MaxTokens)),
			Temperature: openai.Float(c.Temperature),
			Seed:        openai.Int(c.Seed),
		}
		_, err = cl.oc.Chat.Completions.New(rctx, params)
	} else {
		params := openai.CompletionNewParams{
			Model:       openai.CompletionNewParamsModel(model),
			Prompt:      openai.CompletionNewParamsPromptUnion{OfString: openai.String(c.Prompt)},
			MaxTokens:   openai.Int(int64(c.MaxTokens)),
			Temperature: openai.Float(c.Temperature),
			Seed:        openai.Int(c.Seed),
		}
		_, err = cl.oc.Completions.New(rctx, params)
	}
	latency := time.Since(start)
	if ex, done := classify(ctx, rctx, rec, err, cl.timeout); done {
		return ex
	}
	ex := decodeAnswer(rec.body, c.Chat())
	ex.answer.Latency = latency
	return ex
}

func chatMessages(msgs []Message) []openai.ChatCompletionMessageParamUnion {
	out := make([]openai.ChatCompletionMessageParamUnion, len(msgs))
	for i, m := range msgs {
		switch m.Role {
		case "system":
			out[i] = openai.SystemMessage(m.Content)
		case "developer":
			out[i] = openai.DeveloperMessage(m.Content)
		case "assistant":
			out[i] = openai.AssistantMessage(m.Content)
		default:
			out[i] = openai.UserMessage(m.Content)
		}
	}
	return out
}

// classify sorts out everything but a 2xx response that was read whole;
// done is false for those, which decodeAnswer judges from the raw body.
func classify(parent, rctx context.Context, rec *rawResponse, err error, timeout time.Duration) (exchange, bool) {
	switch {
	case parent.Err() != nil:
		return exchange{outcome: aborted, reason: "cancelled"}, true
	case !rec.read && errors.Is(rctx.Err(), context.DeadlineExceeded):
		what := "no response"
		if rec.status != 0 {
			what = "response not finished"
		}
		return exchange{outcome: badAnswer, reason: fmt.Sprintf("timeout: %s within %s", what, timeout)}, true
	case !rec.read:
		msg := "transport error"
		if err != nil {
			msg = "transport error: " + err.Error()
		}
		return exchange{outcome: retryable, reason: msg}, true
	case rec.status >= 500:
		return exchange{outcome: retryable, reason: fmt.Sprintf("HTTP %d from the server: %s", rec.status, errorMessage(rec.body)), body: preview(string(rec.body)), retryAfter: retryAfter(rec.header)}, true
	case rec.status < 200 || rec.status > 299:
		return exchange{outcome: badAnswer, reason: fmt.Sprintf("HTTP %d: %s", rec.status, errorMessage(rec.body)), body: preview(string(rec.body))}, true
	}
	return exchange{}, false
}

// decodeAnswer checks that a 2xx body is an OpenAI (chat) completion with at
// least one choice and takes the first choice's text.
func decodeAnswer(body []byte, chat bool) exchange {
	bad := func(format string, args ...any) exchange {
		return exchange{outcome: badAnswer, reason: fmt.Sprintf(format, args...), body: preview(string(body))}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return bad("empty response body")
	}
	if !json.Valid(body) {
		return bad("response is not JSON")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return bad("wrong response shape: expected a JSON object, got %s", jsonKind(body))
	}
	if e, ok := top["error"]; ok && string(e) != "null" {
		return bad("the server answered with an error: %s", errorMessage(body))
	}
	rawChoices, ok := top["choices"]
	if !ok {
		return bad("wrong response shape: no \"choices\" field")
	}
	var choices []json.RawMessage
	if err := json.Unmarshal(rawChoices, &choices); err != nil {
		return bad("wrong response shape: \"choices\" is %s, expected a list", jsonKind(rawChoices))
	}
	if len(choices) == 0 {
		return bad("empty \"choices\": the server returned no answer")
	}
	var ans Answer
	if chat {
		var ch openai.ChatCompletionChoice
		if err := json.Unmarshal(choices[0], &ch); err != nil || !ch.JSON.Message.Valid() {
			return bad("wrong response shape: choices[0] has no \"message\" object")
		}
		if !ch.Message.JSON.Content.Valid() {
			return bad("wrong response shape: choices[0].message has no \"content\" string")
		}
		ans.Text, ans.FinishReason = ch.Message.Content, string(ch.FinishReason)
	} else {
		var ch openai.CompletionChoice
		if err := json.Unmarshal(choices[0], &ch); err != nil || !ch.JSON.Text.Valid() {
			return bad("wrong response shape: choices[0] has no \"text\" string")
		}
		ans.Text, ans.FinishReason = ch.Text, string(ch.FinishReason)
	}
	var usage struct {
		Usage *struct {
			CompletionTokens *int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if json.Unmarshal(body, &usage) == nil && usage.Usage != nil && usage.Usage.CompletionTokens != nil {
		ans.CompletionTokens = *usage.Usage.CompletionTokens
	} else {
		ans.CompletionTokens, ans.TokensEstimated = len(strings.Fields(ans.Text)), true
	}
	return exchange{outcome: gotAnswer, answer: ans}
}

func jsonKind(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	}
	return "a number"
}

// errorMessage pulls the message out of the error bodies OpenAI-compatible
// servers send ({"error": {"message"}}, {"message"}, {"detail"}), else a
// preview of the body.
func errorMessage(body []byte) string {
	var v struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
		Detail  any             `json:"detail"`
	}
	if json.Unmarshal(body, &v) == nil {
		var inner struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(v.Error, &inner) == nil && inner.Message != "" {
			return inner.Message
		}
		if v.Message != "" {
			return v.Message
		}
		if s, ok := v.Detail.(string); ok && s != "" {
			return s
		}
		var s string
		if json.Unmarshal(v.Error, &s) == nil && s != "" {
			return s
		}
	}
	if p := preview(string(body)); p != "" {
		return p
	}
	return "(empty body)"
}

func retryAfter(h http.Header) time.Duration {
	if h == nil {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After"))); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 0
}

// PreviewLen is how many characters of an answer reports show.
const PreviewLen = 200

// preview shortens text to one line of at most PreviewLen characters.
func preview(s string) string { return clip.Line(s, PreviewLen) }
