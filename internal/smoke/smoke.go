// Package smoke checks a deployed OpenAI-compatible endpoint after a switch:
// GET /v1/models lists the served model, one short generation answers, and
// GET /version (modelship serve) reports the model digest and image that
// were just deployed. Each check is reported with its result and reason.
package smoke

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/modelship/modelship/serving/stage"
)

// DefaultTimeout bounds a whole Run when Options.Timeout is zero.
const DefaultTimeout = 60 * time.Second

// DefaultPrompt is the user message of the generation check.
const DefaultPrompt = "Say hello in one short sentence."

// ErrUnreachable is wrapped by Run's error when the endpoint did not answer
// at all (connection refused, name not found, TLS failure, timeout before
// any answer): the smoke test is inconclusive, not failed.
var ErrUnreachable = errors.New("endpoint unreachable")

// Check statuses, in the vocabulary every stage shares (serving/stage).
const (
	Passed  = stage.Passed
	Failed  = stage.Failed
	Skipped = stage.Skipped // nothing was expected and the endpoint has no /version
)

// Check names.
const (
	CheckModels     = "models"
	CheckGeneration = "generation"
	CheckVersion    = "version"
)

// Options tune Run.
type Options struct {
	// Model is the served model name /v1/models must list; "" takes the
	// first model listed.
	Model string
	// ExpectDigest is the model digest GET /version must report
	// ("sha256:..."); "" checks nothing about it.
	ExpectDigest string
	// ExpectImage is the image reference GET /version must report; ""
	// checks nothing about it.
	ExpectImage string
	// Timeout bounds the whole run; default DefaultTimeout.
	Timeout time.Duration
	// APIKey, when set, is sent as "Authorization: Bearer KEY" (never
	// printed).
	APIKey string
	// Prompt for the generation check; default DefaultPrompt.
	Prompt string
	// Client makes the requests; nil uses a client that ignores HTTP_PROXY.
	Client *http.Client
}

// Check is one check's outcome.
type Check struct {
	Name     string        `json:"name"`
	Status   stage.Verdict `json:"status"` // Passed, Failed or Skipped
	Detail   string        `json:"detail"` // what was seen (pass) or why it failed
	Duration time.Duration `json:"duration_ns"`
}

// Version is what GET /version reported (modelship serve's keys).
type Version struct {
	ServedModelName string `json:"served_model_name"`
	Digest          string `json:"digest"`
	DigestStatus    string `json:"digest_status"`
	Image           string `json:"image"`
	ImageDigest     string `json:"image_digest"`
	GitSHA          string `json:"git_sha"`
	DeployedAt      string `json:"deployed_at"`
}

// Result is the outcome of Run.
type Result struct {
	Endpoint string   `json:"endpoint"` // base URL, without /v1
	Model    string   `json:"model"`    // the model checked
	Passed   bool     `json:"passed"`   // every check passed or was skipped
	Checks   []Check  `json:"checks"`
	Version  *Version `json:"version,omitempty"`
	Reply    string   `json:"reply,omitempty"` // the generation's content
}

// Failed returns the checks that failed.
func (r *Result) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Status == Failed {
			out = append(out, c)
		}
	}
	return out
}

// ParseEndpoint normalizes an endpoint to its base URL: http(s), a host,
// an optional path prefix, with a trailing "/v1" (or "/v1/") dropped, so
// http://h:8000, http://h:8000/ and http://h:8000/v1 are one endpoint. A
// bare host:port gets http://.
func ParseEndpoint(s string) (*url.URL, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return nil, errors.New("endpoint is empty; want a URL like http://host:8000 or http://host:8000/v1")
	}
	if !strings.Contains(t, "://") {
		t = "http://" + t
	}
	u, err := url.Parse(t)
	if err != nil {
		return nil, fmt.Errorf("endpoint %q is not a URL: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("endpoint %q: scheme must be http or https", s)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("endpoint %q has no host; want a URL like http://host:8000", s)
	}
	if u.User != nil {
		return nil, fmt.Errorf("endpoint: credentials in the URL are not supported; pass an API key instead")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, fmt.Errorf("endpoint %q must not have a query or fragment", s)
	}
	p := strings.TrimRight(u.Path, "/")
	p = strings.TrimSuffix(p, "/v1")
	return &url.URL{Scheme: u.Scheme, Host: u.Host, Path: strings.TrimRight(p, "/")}, nil
}

// Run checks the endpoint. The error is non-nil only when the checks could
// not be made: a bad endpoint, or one that does not answer (wrapping
// ErrUnreachable). A check that fails is reported in the Result with
// Passed false.
func Run(ctx context.Context, endpoint string, opt Options) (*Result, error) {
	base, err := ParseEndpoint(endpoint)
	if err != nil {
		return nil, err
	}
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultTimeout
	}
	if opt.Prompt == "" {
		opt.Prompt = DefaultPrompt
	}
	if opt.Client == nil {
		opt.Client = &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: false}}
	}
	ctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	r := &runner{base: base, opt: opt, res: &Result{Endpoint: base.String()}}

	if err := r.models(ctx); err != nil {
		return nil, err
	}
	if r.res.Model != "" {
		r.generation(ctx)
	} else {
		r.add(CheckGeneration, Skipped, "no model to ask (the models check failed)", 0)
	}
	r.version(ctx)
	r.res.Passed = len(r.res.Failed()) == 0
	return r.res, nil
}

type runner struct {
	base *url.URL
	opt  Options
	res  *Result
}

func (r *runner) add(name string, status stage.Verdict, detail string, d time.Duration) {
	r.res.Checks = append(r.res.Checks, Check{Name: name, Status: status, Detail: detail, Duration: d})
}

// call makes one request and reads at most 1 MiB of the answer.
func (r *runner) call(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.base.JoinPath(path).String(), rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.opt.APIKey != "" && strings.HasPrefix(path, "/v1/") {
		req.Header.Set("Authorization", "Bearer "+r.opt.APIKey)
	}
	resp, err := r.opt.Client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no answer within the %s timeout", r.opt.Timeout)
		}
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, b, fmt.Errorf("reading the answer: %v", err)
	}
	return resp.StatusCode, b, nil
}

// models checks GET /v1/models; a transport failure here means the endpoint
// is unreachable and the run is inconclusive.
func (r *runner) models(ctx context.Context) error {
	start := time.Now()
	code, body, err := r.call(ctx, http.MethodGet, "/v1/models", nil)
	d := time.Since(start)
	if err != nil && code == 0 {
		return fmt.Errorf("%w: GET %s/v1/models: %v", ErrUnreachable, r.res.Endpoint, err)
	}
	if err != nil {
		r.add(CheckModels, Failed, fmt.Sprintf("GET /v1/models: %v", err), d)
		return nil
	}
	if code != http.StatusOK {
		r.add(CheckModels, Failed, fmt.Sprintf("GET /v1/models answered %d%s", code, snippet(body)), d)
		return nil
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		r.add(CheckModels, Failed, fmt.Sprintf("GET /v1/models: not an OpenAI model list: %v%s", err, snippet(body)), d)
		return nil
	}
	var ids []string
	for _, m := range list.Data {
		ids = append(ids, m.ID)
	}
	switch {
	case len(ids) == 0:
		r.add(CheckModels, Failed, "GET /v1/models lists no model", d)
	case r.opt.Model == "":
		r.res.Model = ids[0]
		detail := fmt.Sprintf("GET /v1/models lists %q", ids[0])
		if len(ids) > 1 {
			detail = fmt.Sprintf("GET /v1/models lists %s; checking the first, %q (choose with --model)", strings.Join(quote(ids), ", "), ids[0])
		}
		r.add(CheckModels, Passed, detail, d)
	case slices.Contains(ids, r.opt.Model):
		r.res.Model = r.opt.Model
		r.add(CheckModels, Passed, fmt.Sprintf("GET /v1/models lists %q", r.opt.Model), d)
	default:
		r.add(CheckModels, Failed, fmt.Sprintf("GET /v1/models does not list %q (it lists %s)", r.opt.Model, strings.Join(quote(ids), ", ")), d)
	}
	return nil
}

func quote(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// generation asks for a short chat completion at temperature 0.
func (r *runner) generation(ctx context.Context) {
	start := time.Now()
	req := map[string]any{
		"model":       r.res.Model,
		"messages":    []map[string]string{{"role": "user", "content": r.opt.Prompt}},
		"temperature": 0,
		"max_tokens":  8,
	}
	code, body, err := r.call(ctx, http.MethodPost, "/v1/chat/completions", req)
	d := time.Since(start)
	if err != nil {
		r.add(CheckGeneration, Failed, fmt.Sprintf("POST /v1/chat/completions: %v", err), d)
		return
	}
	if code != http.StatusOK {
		r.add(CheckGeneration, Failed, fmt.Sprintf("POST /v1/chat/completions answered %d%s", code, snippet(body)), d)
		return
	}
	var comp struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(body, &comp); err != nil {
		r.add(CheckGeneration, Failed, fmt.Sprintf("POST /v1/chat/completions: not a chat completion: %v%s", err, snippet(body)), d)
		return
	}
	if len(comp.Choices) == 0 {
		r.add(CheckGeneration, Failed, "POST /v1/chat/completions answered 200 without choices"+snippet(body), d)
		return
	}
	content := comp.Choices[0].Message.Content
	if strings.TrimSpace(content) == "" {
		r.add(CheckGeneration, Failed, fmt.Sprintf("POST /v1/chat/completions answered 200 with empty content (finish_reason %q)", comp.Choices[0].FinishReason), d)
		return
	}
	r.res.Reply = content
	r.add(CheckGeneration, Passed, fmt.Sprintf("answered %q in %s", clip(content, 80), d.Round(time.Millisecond)), d)
}

// version checks GET /version against the expected digest and image.
func (r *runner) version(ctx context.Context) {
	start := time.Now()
	expect := r.opt.ExpectDigest != "" || r.opt.ExpectImage != ""
	code, body, err := r.call(ctx, http.MethodGet, "/version", nil)
	d := time.Since(start)
	status := Failed
	if !expect {
		status = Skipped
	}
	if err != nil {
		r.add(CheckVersion, Failed, fmt.Sprintf("GET /version: %v", err), d)
		return
	}
	if code != http.StatusOK {
		r.add(CheckVersion, status, fmt.Sprintf("GET /version answered %d; is the endpoint served by `modelship serve`?", code), d)
		return
	}
	var v Version
	if err := json.Unmarshal(body, &v); err != nil {
		r.add(CheckVersion, status, fmt.Sprintf("GET /version: not modelship serve's version JSON: %v%s", err, snippet(body)), d)
		return
	}
	r.res.Version = &v
	if v.Digest == "" && v.Image == "" && v.ServedModelName == "" {
		r.add(CheckVersion, status, "GET /version reports no digest, image or model; is the endpoint served by `modelship serve`?"+snippet(body), d)
		return
	}
	var problems []string
	if want := r.opt.ExpectDigest; want != "" && v.Digest != want {
		switch {
		case v.Digest == "":
			problems = append(problems, fmt.Sprintf("/version reports no digest yet (digest_status %q), expected %s", v.DigestStatus, want))
		default:
			problems = append(problems, fmt.Sprintf("/version digest %s is not the expected %s (the previous release is still serving?)", v.Digest, want))
		}
	}
	if want := r.opt.ExpectImage; want != "" && v.Image != want {
		problems = append(problems, fmt.Sprintf("/version image %q is not the expected %q (the previous release is still serving?)", v.Image, want))
	}
	if len(problems) > 0 {
		r.add(CheckVersion, Failed, strings.Join(problems, "; "), d)
		return
	}
	seen := fmt.Sprintf("digest %s, image %s", orNone(v.Digest), orNone(v.Image))
	if !expect {
		r.add(CheckVersion, Passed, "/version reports "+seen+" (nothing expected)", d)
		return
	}
	r.add(CheckVersion, Passed, "/version reports the expected "+seen, d)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return ""
	}
	return ": " + clip(s, 200)
}
