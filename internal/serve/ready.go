package serve

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
)

// Ready checks, in order, that the engine's GET /health is 200, that GET
// /v1/models lists the served model name, and that a one-token completion
// (temperature 0) succeeds. A success is reused for ReadyTTL.
func (p *Proxy) Ready(ctx context.Context) ReadyStatus {
	p.readyMu.Lock()
	defer p.readyMu.Unlock()
	if p.lastReady.Ready && time.Since(p.lastReady.CheckedAt) < p.ReadyTTL {
		return p.lastReady
	}
	name := p.Version().ServedModelName
	ctx, cancel := context.WithTimeout(ctx, p.ReadyTimeout)
	defer cancel()
	st := ReadyStatus{Model: name, CheckedAt: time.Now().UTC()}
	if check, err := p.check(ctx, name); err != nil {
		st.Check, st.Reason = check, err.Error()
	} else {
		st.Ready = true
	}
	p.lastReady = st
	return st
}

func (p *Proxy) check(ctx context.Context, name string) (string, error) {
	code, body, err := p.call(ctx, http.MethodGet, p.API.Health, nil)
	if err != nil {
		return "health", fmt.Errorf("engine GET %s: %v", p.API.Health, err)
	}
	if code != http.StatusOK {
		return "health", fmt.Errorf("engine GET %s returned %d%s", p.API.Health, code, snippet(body))
	}
	if p.Prepare != nil && !p.prepared {
		if p.prepareErr == nil || time.Since(p.preparedAt) >= 5*time.Second {
			p.prepareErr, p.preparedAt = p.Prepare(ctx), time.Now()
			p.prepared = p.prepareErr == nil
		}
		if p.prepareErr != nil {
			return "load", p.prepareErr
		}
	}

	code, body, err = p.call(ctx, http.MethodGet, "/v1/models", nil)
	if err != nil {
		return "models", fmt.Errorf("engine GET /v1/models: %v", err)
	}
	if code != http.StatusOK {
		return "models", fmt.Errorf("engine GET /v1/models returned %d%s", code, snippet(body))
	}
	var models struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &models); err != nil {
		return "models", fmt.Errorf("engine GET /v1/models: not an OpenAI model list: %v", err)
	}
	var ids []string
	for _, m := range models.Data {
		ids = append(ids, strings.TrimSuffix(m.ID, p.API.ModelIDSuffix))
	}
	if !slices.Contains(ids, name) {
		listed := "none"
		if len(ids) > 0 {
			listed = strings.Join(ids, ", ")
		}
		return "models", fmt.Errorf("served model %q is not in engine GET /v1/models (listed: %s)", name, listed)
	}

	req, _ := json.Marshal(map[string]any{"model": name, "prompt": "Hello", "max_tokens": 1, "temperature": 0})
	code, body, err = p.call(ctx, http.MethodPost, "/v1/completions", req)
	if err != nil {
		return "generation", fmt.Errorf("engine POST /v1/completions: %v", err)
	}
	if code != http.StatusOK {
		return "generation", fmt.Errorf("engine POST /v1/completions (max_tokens 1) returned %d%s", code, snippet(body))
	}
	var comp struct {
		Choices []json.RawMessage `json:"choices"`
	}
	if err := json.Unmarshal(body, &comp); err != nil || len(comp.Choices) == 0 {
		return "generation", fmt.Errorf("engine POST /v1/completions returned 200 without choices%s", snippet(body))
	}
	return "", nil
}

// call makes one request to the engine and reads at most 64 KiB of the body.
func (p *Proxy) call(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.engine.JoinPath(path).String(), rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // the URL is in the message already
		}
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, b, err
}

// EngineVersion asks the engine's GET /version ({"version": "0.x"}).
func (p *Proxy) EngineVersion(ctx context.Context) (string, error) {
	code, body, err := p.call(ctx, http.MethodGet, p.API.Version, nil)
	if err != nil {
		return "", fmt.Errorf("engine GET %s: %v", p.API.Version, err)
	}
	if code != http.StatusOK {
		return "", fmt.Errorf("engine GET %s returned %d%s", p.API.Version, code, snippet(body))
	}
	var v struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Version == "" {
		return "", fmt.Errorf("engine GET %s: want {\"version\": \"...\"}%s", p.API.Version, snippet(body))
	}
	return v.Version, nil
}

// EngineHealth returns the status code of the engine's health endpoint.
func (p *Proxy) EngineHealth(ctx context.Context) (int, error) {
	code, _, err := p.call(ctx, http.MethodGet, p.API.Health, nil)
	return code, err
}
