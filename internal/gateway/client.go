package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/modelship/modelship/internal/shadow"
)

// Client talks to a gateway's admin API over its unix socket. Inside the
// gateway's container this is what `modelship gateway switch|state|
// wait-drained|canary|samples|control|shadow` use, so a deploy can run
// them with `docker exec`.
type Client struct {
	// Socket is the admin socket path (or unix:///PATH); default
	// DefaultAdminSocket.
	Socket string
}

// APIError is a refusal from the admin API.
type APIError struct {
	Status   int    // HTTP status: 409 not ready / still active, 408 drain timeout, 400 bad input
	Message  string // the gateway's reason
	InFlight int64  // requests left, for a drain timeout
}

func (e *APIError) Error() string { return e.Message }

// SwitchOptions tune Client.Switch.
type SwitchOptions struct {
	// SkipReady switches without checking the upstream's GET /ready.
	SkipReady bool
	// ReadyTimeout bounds the readiness check; 0 means the gateway default.
	ReadyTimeout time.Duration
}

// State returns the gateway's state.
func (c *Client) State(ctx context.Context) (*State, error) {
	var st State
	if err := c.do(ctx, http.MethodGet, "/state", nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Switch makes upstream the active release. When the upstream's GET /ready
// is not 200 the error is an *APIError with Status 409 and the switch did
// not happen.
func (c *Client) Switch(ctx context.Context, upstream string, opt SwitchOptions) (*SwitchResult, error) {
	rr := !opt.SkipReady
	req := SwitchRequest{Upstream: upstream, RequireReady: &rr}
	if opt.ReadyTimeout > 0 {
		req.ReadyTimeout = opt.ReadyTimeout.String()
	}
	var res SwitchResult
	if err := c.do(ctx, http.MethodPost, "/switch", req, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Probe asks upstream's GET /ready from the gateway.
func (c *Client) Probe(ctx context.Context, upstream string) (*ProbeResult, error) {
	var res ProbeResult
	if err := c.do(ctx, http.MethodGet, "/probe?upstream="+url.QueryEscape(upstream), nil, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// WaitDrained blocks until upstream has no request in flight. When timeout
// passes first the error is an *APIError with Status 408 and InFlight set.
// timeout 0 waits as long as ctx allows.
func (c *Client) WaitDrained(ctx context.Context, upstream string, timeout time.Duration) (*DrainResult, error) {
	req := DrainRequest{Upstream: upstream}
	if timeout > 0 {
		req.Timeout = timeout.String()
	}
	var res DrainResult
	if err := c.do(ctx, http.MethodPost, "/drain-wait", req, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// maxAnswer bounds an admin answer read (a full GET /samples page is a
// few MiB).
const maxAnswer = 32 << 20

// SetCanary sends req.Percent of new requests to req.Upstream (Percent 0
// clears the canary). A canary that is not ready is an *APIError with
// Status 409; a bad field one with Status 400.
func (c *Client) SetCanary(ctx context.Context, req CanaryRequest) (*CanaryState, error) {
	var res CanaryState
	if err := c.do(ctx, http.MethodPost, "/canary", req, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Samples returns the requests the gateway measured after seq since, at
// most MaxSamplesPerAnswer; ask again from Next for more.
func (c *Client) Samples(ctx context.Context, since uint64) (*Samples, error) {
	var res Samples
	if err := c.do(ctx, http.MethodGet, fmt.Sprintf("/samples?since=%d", since), nil, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Control returns the rollout's operator action ("" when none).
func (c *Client) Control(ctx context.Context) (string, error) {
	var res ControlRequest
	if err := c.do(ctx, http.MethodGet, "/control", nil, &res); err != nil {
		return "", err
	}
	return res.Action, nil
}

// SetControl asks the rollout for action ("promote", "abort", "resume", or
// "" to clear); with no rollout in progress the error is an *APIError with
// Status 409.
func (c *Client) SetControl(ctx context.Context, action string) error {
	var res ControlRequest
	return c.do(ctx, http.MethodPost, "/control", ControlRequest{Action: action}, &res)
}

// SetShadow starts mirroring to req.Upstream, or stops the mirror (Percent
// 0); it returns the mirror's report (the final one when stopping).
func (c *Client) SetShadow(ctx context.Context, req ShadowRequest) (*shadow.Report, error) {
	var res shadow.Report
	if err := c.do(ctx, http.MethodPost, "/shadow", req, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// ShadowReport is the running mirror's report; an *APIError with Status
// 404 when none runs.
func (c *Client) ShadowReport(ctx context.Context) (*shadow.Report, error) {
	var res shadow.Report
	if err := c.do(ctx, http.MethodGet, "/shadow", nil, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

func (c *Client) socket() (string, error) {
	if c.Socket == "" {
		return DefaultAdminSocket, nil
	}
	return ParseAdmin(c.Socket)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	sock, err := c.socket()
	if err != nil {
		return err
	}
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}
	defer tr.CloseIdleConnections()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://gateway"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("gateway admin %s %s: %w", method, path, ctx.Err())
		}
		return fmt.Errorf("gateway admin socket %s: %v (is `modelship gateway` running with --admin %s?)", sock, unwrapOp(err), sock)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("gateway admin %s %s: reading the answer: %v", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var eb ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error == "" {
			eb.Error = fmt.Sprintf("gateway admin %s %s answered %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(data))
		}
		e := &APIError{Status: resp.StatusCode, Message: eb.Error}
		if eb.InFlight != nil {
			e.InFlight = *eb.InFlight
		}
		return e
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("gateway admin %s %s: unexpected answer: %v", method, path, err)
	}
	return nil
}

func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}
