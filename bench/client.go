package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/modelship/modelship/internal/endpoint"

	"github.com/modelship/modelship/internal/clip"
)

// API selects the OpenAI endpoint a Target calls.
type API string

// The two generation APIs.
const (
	Chat        API = "chat"        // POST /v1/chat/completions
	Completions API = "completions" // POST /v1/completions
)

// Defaults used when a Target leaves a field zero.
const (
	DefaultMaxTokens = 128
	DefaultTimeout   = 120 * time.Second
)

// Target is the endpoint under test and what every request asks for.
type Target struct {
	// Endpoint is the server's base URL, with or without /v1
	// (http://host:8000 or http://host:8000/v1).
	Endpoint string
	// Model is the "model" field; empty omits it (vLLM then uses the model
	// it serves; other servers may refuse the request with a 4xx).
	Model string
	// API is Chat (default) or Completions.
	API API
	// MaxTokens is max_tokens for prompts that do not set their own;
	// default DefaultMaxTokens.
	MaxTokens int
	// Temperature is sent as is; 0 (the default) is greedy decoding.
	Temperature float64
	// IgnoreEOS sends vLLM's "ignore_eos": true, so every request generates
	// exactly max_tokens tokens.
	IgnoreEOS bool
	// APIKey, when set, is sent as "Authorization: Bearer KEY". It never
	// appears in results or errors.
	APIKey string
	// Timeout bounds each request from sending to the end of the stream;
	// default DefaultTimeout.
	Timeout time.Duration
}

// Client sends streamed requests to one Target and times them. It is safe
// for concurrent use; reuse one Client across runs so connections are reused.
type Client struct {
	t       Target
	url     string
	hc      *http.Client
	tr      *http.Transport
	header  http.Header
	readers sync.Pool
}

// NewClient checks the target and builds its HTTP client: keep-alive
// connections (up to maxConns idle ones kept, normally the concurrency), no
// compression, HTTP/1.1 as vLLM's own benchmark client uses.
func NewClient(t Target, maxConns int) (*Client, error) {
	if t.API == "" {
		t.API = Chat
	}
	if t.API != Chat && t.API != Completions {
		return nil, fmt.Errorf("api: expected %q or %q, got %q", Chat, Completions, t.API)
	}
	if t.MaxTokens == 0 {
		t.MaxTokens = DefaultMaxTokens
	}
	if t.MaxTokens < 0 {
		return nil, fmt.Errorf("max tokens: expected at least 1, got %d", t.MaxTokens)
	}
	if t.Timeout == 0 {
		t.Timeout = DefaultTimeout
	}
	if t.Timeout < 0 {
		return nil, fmt.Errorf("timeout: expected a positive duration, got %v", t.Timeout)
	}
	u, err := Endpoint(t.Endpoint, t.API)
	if err != nil {
		return nil, err
	}
	if maxConns < 1 {
		maxConns = 1
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          maxConns,
		MaxIdleConnsPerHost:   maxConns,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 0,
		DisableCompression:    true,
		ReadBufferSize:        16 << 10,
		WriteBufferSize:       16 << 10,
	}
	c := &Client{t: t, url: u, tr: tr, hc: &http.Client{Transport: tr}}
	c.header = http.Header{
		"Content-Type": {"application/json"},
		"Accept":       {"text/event-stream"},
	}
	if t.APIKey != "" {
		c.header["Authorization"] = []string{"Bearer " + t.APIKey}
	}
	c.readers.New = func() any { return bufio.NewReaderSize(nil, 16<<10) }
	return c, nil
}

// Endpoint is the URL a request for api goes to, from a base URL with or
// without /v1.
func Endpoint(base string, api API) (string, error) {
	u, err := endpoint.Parse("endpoint", base, "http://localhost:8000")
	if err != nil {
		return "", err
	}
	p := strings.TrimSuffix(u.Path, "/")
	p = strings.TrimSuffix(p, "/chat/completions")
	p = strings.TrimSuffix(p, "/completions")
	p = endpoint.BasePath(p) + "/v1"
	if api == Completions {
		p += "/completions"
	} else {
		p += "/chat/completions"
	}
	u.Path = p
	u.RawPath = ""
	return u.String(), nil
}

// redact hides a password in a URL for messages.
func redact(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(unparsable URL)"
}

// URL is where the client sends requests.
func (c *Client) URL() string { return redact(c.url) }

// Target is the client's target with defaults filled in.
func (c *Client) Target() Target { return c.t }

// CloseIdleConnections closes the client's kept-alive connections.
func (c *Client) CloseIdleConnections() { c.tr.CloseIdleConnections() }

// wireRequest is the body of a streamed chat or completion request.
type wireRequest struct {
	Model         string         `json:"model,omitempty"`
	Messages      []Message      `json:"messages,omitempty"`
	Prompt        *string        `json:"prompt,omitempty"`
	MaxTokens     int            `json:"max_tokens"`
	Temperature   float64        `json:"temperature"`
	IgnoreEOS     bool           `json:"ignore_eos,omitempty"`
	Stream        bool           `json:"stream"`
	StreamOptions map[string]any `json:"stream_options"`
}

var includeUsage = map[string]any{"include_usage": true}

// Body is the JSON request body for p.
func (c *Client) Body(p *Prompt) []byte {
	w := wireRequest{Model: c.t.Model, MaxTokens: c.t.MaxTokens, Temperature: c.t.Temperature,
		IgnoreEOS: c.t.IgnoreEOS, Stream: true, StreamOptions: includeUsage}
	if p.MaxTokens > 0 {
		w.MaxTokens = p.MaxTokens
	}
	if c.t.API == Chat {
		w.Messages = p.Messages
		if len(w.Messages) == 0 {
			w.Messages = []Message{{Role: "user", Content: p.Text}}
		}
	} else {
		text := p.Text
		if text == "" {
			parts := make([]string, len(p.Messages))
			for i, m := range p.Messages {
				parts[i] = m.Content
			}
			text = strings.Join(parts, "\n")
		}
		w.Prompt = &text
	}
	b, _ := json.Marshal(&w) // cannot fail: plain strings and numbers
	return b
}

// Do sends one request for p and measures it into r (Start, TTFT, ITL, E2EL,
// tokens, Status and, on failure, ErrorKind and Error). It reports false when
// ctx itself was cancelled: the request was aborted and r means nothing.
func (c *Client) Do(ctx context.Context, p *Prompt, r *Result) bool {
	return c.do(ctx, c.Body(p), max(p.MaxTokens, c.t.MaxTokens), r)
}

func (c *Client) do(ctx context.Context, body []byte, maxTokens int, r *Result) bool {
	rctx, cancel := context.WithTimeout(ctx, c.t.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		r.fail(ErrTransport, err.Error())
		return true
	}
	req.Header = c.header
	r.Start = time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		return r.transportError(ctx, rctx, err)
	}
	defer resp.Body.Close()
	r.Status = resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		preview := readPreview(resp.Body)
		r.E2EL = time.Since(r.Start)
		switch {
		case resp.StatusCode >= 500:
			r.fail(ErrHTTP5xx, fmt.Sprintf("HTTP %d: %s", resp.StatusCode, preview))
		case resp.StatusCode >= 400:
			r.fail(ErrHTTP4xx, fmt.Sprintf("HTTP %d: %s", resp.StatusCode, preview))
		default:
			r.fail(ErrBadResponse, fmt.Sprintf("HTTP %d instead of 200: %s", resp.StatusCode, preview))
		}
		return true
	}
	br := c.readers.Get().(*bufio.Reader)
	br.Reset(resp.Body)
	defer func() { br.Reset(nil); c.readers.Put(br) }()

	ct := resp.Header.Get("Content-Type")
	if !strings.Contains(ct, "event-stream") {
		head, _ := br.Peek(5)
		if !bytes.Equal(head, []byte("data:")) {
			if strings.Contains(ct, "json") {
				return c.whole(ctx, rctx, br, r)
			}
			head, _ = br.Peek(200)
			r.E2EL = time.Since(r.Start)
			r.fail(ErrBadResponse, fmt.Sprintf("not a server-sent event stream (Content-Type %q): %s", ct, preview(head)))
			return true
		}
	}
	if r.ITL == nil {
		r.ITL = make([]time.Duration, 0, min(maxTokens, 256))
	}
	return c.stream(ctx, rctx, br, r)
}

// stream reads server-sent events: each "data: {json}" line is a chunk;
// "data: [DONE]" ends the stream.
func (c *Client) stream(ctx, rctx context.Context, br *bufio.Reader, r *Result) bool {
	var (
		ch      chunk
		last    time.Time
		long    []byte
		content int
		done    bool
	)
	for !done {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long = append(long[:0], line...)
			for err == bufio.ErrBufferFull {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		now := time.Now()
		if err != nil && (err != io.EOF || len(line) == 0) {
			if err == io.EOF {
				break // the server closed the stream without [DONE]
			}
			return r.transportError(ctx, rctx, err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) < 5 || string(line[:5]) != "data:" {
			continue // blank separator, comment, event:, id:, retry:
		}
		data := bytes.TrimSpace(line[5:])
		if string(data) == "[DONE]" {
			done = true
			break
		}
		clear(ch.Choices[:cap(ch.Choices)])
		ch.Choices = ch.Choices[:0]
		ch.Usage = nil
		ch.Error = nil
		if err := json.Unmarshal(data, &ch); err != nil {
			r.E2EL = now.Sub(r.Start)
			r.fail(ErrBadResponse, fmt.Sprintf("stream chunk is not JSON: %v: %s", err, preview(data)))
			return true
		}
		if ch.Error != nil {
			r.E2EL = now.Sub(r.Start)
			r.fail(ErrBadResponse, "error in stream: "+preview(ch.Error))
			return true
		}
		if ch.Usage != nil {
			r.InputTokens = ch.Usage.PromptTokens
			r.OutputTokens = ch.Usage.CompletionTokens
			r.UsageReported = true
		}
		has := false
		for i := range ch.Choices {
			ci := &ch.Choices[i]
			if ci.Delta.Content || ci.Delta.Reasoning || ci.Delta.ReasoningContent || ci.Text {
				has = true
			}
		}
		if !has {
			continue
		}
		if content == 0 {
			r.TTFT = now.Sub(r.Start)
		} else {
			r.ITL = append(r.ITL, now.Sub(last))
		}
		last = now
		content++
	}
	r.E2EL = time.Since(r.Start)
	if !r.UsageReported {
		r.OutputTokens = content
	}
	if content == 0 {
		if len(r.ITL) == 0 {
			r.ITL = nil
		}
		r.fail(ErrEmpty, "the response had no content")
	}
	return true
}

// whole reads a non-streamed JSON answer (a server that ignores "stream"):
// the whole reply arrives at once, so TTFT is the end-to-end latency and
// there are no inter-token latencies. NotStreamed marks it.
func (c *Client) whole(ctx, rctx context.Context, br *bufio.Reader, r *Result) bool {
	body, err := io.ReadAll(io.LimitReader(br, 64<<20))
	if err != nil {
		return r.transportError(ctx, rctx, err)
	}
	r.E2EL = time.Since(r.Start)
	r.NotStreamed = true
	var resp struct {
		Choices []struct {
			Message struct {
				Content *string `json:"content"`
			} `json:"message"`
			Text *string `json:"text"`
		} `json:"choices"`
		Usage *wireUsage `json:"usage"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		r.fail(ErrBadResponse, fmt.Sprintf("response is not JSON: %v: %s", err, preview(body)))
		return true
	}
	if len(resp.Choices) == 0 {
		r.fail(ErrBadResponse, "response has no choices: "+preview(body))
		return true
	}
	text := ""
	for _, ch := range resp.Choices {
		if ch.Message.Content != nil {
			text += *ch.Message.Content
		}
		if ch.Text != nil {
			text += *ch.Text
		}
	}
	if resp.Usage != nil {
		r.InputTokens, r.OutputTokens, r.UsageReported = resp.Usage.PromptTokens, resp.Usage.CompletionTokens, true
	} else {
		r.OutputTokens = CountTokens(text)
	}
	if text == "" {
		r.fail(ErrEmpty, "the response had no content")
		return true
	}
	r.TTFT = r.E2EL
	return true
}

// chunk is the part of a streamed chat or completion chunk the client reads.
// Content is only tested for presence, so decoding allocates no strings.
type chunk struct {
	Choices []struct {
		Delta struct {
			Content          present `json:"content"`
			ReasoningContent present `json:"reasoning_content"`
			Reasoning        present `json:"reasoning"`
		} `json:"delta"`
		Text present `json:"text"`
	} `json:"choices"`
	Usage *wireUsage      `json:"usage"`
	Error json.RawMessage `json:"error"`
}

type wireUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

// present records whether a JSON value is a non-empty string.
type present bool

func (p *present) UnmarshalJSON(b []byte) error {
	*p = len(b) > 2 && b[0] == '"'
	return nil
}

func (r *Result) fail(kind, msg string) {
	r.ErrorKind, r.Error = kind, msg
}

// transportError classifies a failed send or read. It reports false when
// the caller's ctx ended (an abort, not a measurement).
func (r *Result) transportError(ctx, rctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	r.E2EL = time.Since(r.Start)
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if errors.Is(rctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		r.fail(ErrTimeout, fmt.Sprintf("no complete response within the request timeout (%v)", err))
		return true
	}
	r.fail(ErrTransport, err.Error())
	return true
}

func readPreview(body io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(body, 512))
	return preview(b)
}

// preview is up to 200 bytes of b as valid UTF-8 on one line.
func preview(b []byte) string {
	s := clip.Bytes(strings.ToValidUTF8(string(bytes.TrimSpace(b)), "\uFFFD"), 200)
	if s == "" {
		return "(empty body)"
	}
	return strings.Join(strings.Fields(s), " ")
}
