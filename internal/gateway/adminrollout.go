package gateway

import (
	"errors"
	"net/http"

	"github.com/modelship/modelship/internal/measure"
)

// rolloutRoutes adds the progressive-delivery part of the admin API:
//
//	POST /canary       CanaryRequest → CanaryState; 409 when not ready
//	GET  /samples?since=N  Samples measured after seq N
//	GET  /control      ControlRequest: the rollout's operator action
//	POST /control      ControlRequest; 409 when no rollout is in progress
//	POST /shadow       ShadowRequest → shadow.Report (percent 0: the
//	                   final one); 501 when this build has no mirror
//	GET  /shadow       the running mirror's shadow.Report; 404 when none
func (g *Gateway) rolloutRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /canary", func(w http.ResponseWriter, r *http.Request) {
		var req CanaryRequest
		if !decodeBody(w, r, &req) {
			return
		}
		res, err := g.SetCanary(r.Context(), req)
		rolloutAnswer(w, "canary refused", res, err)
	})
	mux.HandleFunc("GET /samples", func(w http.ResponseWriter, r *http.Request) {
		since, err := measure.ParseSince(r.URL.Query().Get("since"))
		if err != nil {
			adminError(w, http.StatusBadRequest, err.Error(), nil)
			return
		}
		writeJSON(w, http.StatusOK, g.Samples(since))
	})
	mux.HandleFunc("GET /control", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, ControlRequest{Action: g.Control()})
	})
	mux.HandleFunc("POST /control", func(w http.ResponseWriter, r *http.Request) {
		var req ControlRequest
		if !decodeBody(w, r, &req) {
			return
		}
		err := g.SetControl(req.Action)
		rolloutAnswer(w, "control refused", &req, err)
	})
	mux.HandleFunc("POST /shadow", func(w http.ResponseWriter, r *http.Request) {
		var req ShadowRequest
		if !decodeBody(w, r, &req) {
			return
		}
		res, err := g.SetShadow(req)
		rolloutAnswer(w, "shadow refused", res, err)
	})
	mux.HandleFunc("GET /shadow", func(w http.ResponseWriter, r *http.Request) {
		res, err := g.ShadowReport()
		rolloutAnswer(w, "shadow report", res, err)
	})
}

// rolloutAnswer writes res, or err with the status its kind calls for.
func rolloutAnswer(w http.ResponseWriter, what string, res any, err error) {
	var fe *fieldError
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, res)
	case errors.As(err, &fe):
		adminError(w, http.StatusBadRequest, "field "+fe.Error(), nil)
	case errors.Is(err, ErrNotReady), errors.Is(err, ErrNoRollout), errors.Is(err, ErrShadowRunning):
		adminError(w, http.StatusConflict, what+": "+err.Error(), nil)
	case errors.Is(err, errNoShadow):
		adminError(w, http.StatusNotFound, err.Error(), nil)
	case errors.Is(err, ErrNoShadowBuild):
		adminError(w, http.StatusNotImplemented, err.Error(), nil)
	default:
		adminError(w, http.StatusInternalServerError, what+": "+err.Error(), nil)
	}
}
