package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// SwitchRequest is the body of POST /switch.
type SwitchRequest struct {
	Upstream string `json:"upstream"`
	// RequireReady (default true when absent) makes the switch check the
	// upstream's GET /ready first and refuse with 409 unless it is 200.
	RequireReady *bool `json:"require_ready,omitempty"`
	// ReadyTimeout bounds that check, as a Go duration ("10s"); default
	// DefaultReadyTimeout.
	ReadyTimeout string `json:"ready_timeout,omitempty"`
}

// DrainRequest is the body of POST /drain-wait.
type DrainRequest struct {
	Upstream string `json:"upstream"`
	Timeout  string `json:"timeout"` // Go duration; "" or "0s" waits until the client gives up
}

// ProbeResult is the answer of GET /probe: the upstream's GET /ready,
// asked from the gateway (on the releases' network).
type ProbeResult struct {
	Upstream string `json:"upstream"`
	Ready    bool   `json:"ready"`
	Reason   string `json:"reason,omitempty"`
}

// ErrorBody is how the admin API reports a refusal.
type ErrorBody struct {
	Error    string `json:"error"`
	InFlight *int64 `json:"in_flight,omitempty"` // POST /drain-wait timeouts
}

// AdminHandler serves the admin API, meant for a unix socket only:
//
//	GET  /state        State
//	POST /switch       SwitchRequest → SwitchResult; 409 when not ready
//	POST /drain-wait   DrainRequest → DrainResult; 408 on timeout
//	GET  /probe?upstream=URL  ProbeResult: URL's GET /ready, from here
//	POST /upgrade      UpgradeRequest → UpgradeResult once the new binary
//	                   serves; 409 (this one keeps serving) when it cannot
//
// and the rollout routes (canary, samples, control, shadow) of
// rolloutRoutes.
func (g *Gateway) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	g.rolloutRoutes(mux)
	mux.HandleFunc("POST /upgrade", g.upgradeHandler)
	mux.HandleFunc("GET /probe", func(w http.ResponseWriter, r *http.Request) {
		up := r.URL.Query().Get("upstream")
		u, err := ParseUpstream(up)
		if err != nil {
			adminError(w, http.StatusBadRequest, "parameter upstream: "+err.Error(), nil)
			return
		}
		res := ProbeResult{Upstream: u.String(), Ready: true}
		if err := g.checkReady(r.Context(), strings.TrimRight(u.String(), "/"), 0); err != nil {
			res.Ready, res.Reason = false, err.Error()
		}
		writeJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, g.State())
	})
	mux.HandleFunc("POST /switch", func(w http.ResponseWriter, r *http.Request) {
		var req SwitchRequest
		if !decodeBody(w, r, &req) {
			return
		}
		timeout, ok := durationField(w, "ready_timeout", req.ReadyTimeout, "10s")
		if !ok {
			return
		}
		requireReady := req.RequireReady == nil || *req.RequireReady
		res, err := g.Switch(r.Context(), req.Upstream, requireReady, timeout)
		switch {
		case errors.Is(err, ErrNotReady):
			adminError(w, http.StatusConflict, "switch refused: "+err.Error(), nil)
		case err != nil && res == nil && isUpstreamError(req.Upstream):
			adminError(w, http.StatusBadRequest, "field upstream: "+err.Error(), nil)
		case err != nil:
			adminError(w, http.StatusInternalServerError, err.Error(), nil)
		default:
			writeJSON(w, http.StatusOK, res)
		}
	})
	mux.HandleFunc("POST /drain-wait", func(w http.ResponseWriter, r *http.Request) {
		var req DrainRequest
		if !decodeBody(w, r, &req) {
			return
		}
		timeout, ok := durationField(w, "timeout", req.Timeout, "30s")
		if !ok {
			return
		}
		if _, err := ParseUpstream(req.Upstream); err != nil {
			adminError(w, http.StatusBadRequest, "field upstream: "+err.Error(), nil)
			return
		}
		res, err := g.WaitDrained(r.Context(), req.Upstream, timeout)
		switch {
		case errors.Is(err, ErrStillActive):
			adminError(w, http.StatusConflict, err.Error(), nil)
		case err != nil:
			return // the client went away
		case !res.Drained:
			n := res.InFlight
			adminError(w, http.StatusRequestTimeout, fmt.Sprintf("%s still has %d request(s) in flight after %s", res.Upstream, n, timeout), &n)
		default:
			writeJSON(w, http.StatusOK, res)
		}
	})
	return mux
}

func isUpstreamError(s string) bool {
	_, err := ParseUpstream(s)
	return err != nil
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		adminError(w, http.StatusBadRequest, "request body: "+err.Error(), nil)
		return false
	}
	return true
}

func adminError(w http.ResponseWriter, code int, msg string, inflight *int64) {
	writeJSON(w, code, ErrorBody{Error: msg, InFlight: inflight})
}

// apiError is an OpenAI-style error body.
func apiError(msg, typ string, code int) map[string]any {
	return map[string]any{"error": map[string]any{"message": msg, "type": typ, "code": code}}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.Encode(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

// durationField is a request's duration field: 0 when empty; a value that
// is not a duration of 0 or more answers 400 naming the field (ok false).
func durationField(w http.ResponseWriter, field, v, example string) (d time.Duration, ok bool) {
	if v == "" {
		return 0, true
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		adminError(w, http.StatusBadRequest, fmt.Sprintf("field %s: %q is not a duration like %q", field, v, example), nil)
		return 0, false
	}
	return d, true
}
