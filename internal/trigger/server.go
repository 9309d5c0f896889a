// Package trigger receives model registry webhooks — Hugging Face Hub and
// MLflow Model Registry — verifies them, ignores revisions already released,
// and starts the release pipeline (a GitHub workflow_dispatch or a local
// command such as modelship release).
//
// Verification:
//   - Hugging Face sends the webhook's secret verbatim in X-Webhook-Secret
//     (https://huggingface.co/docs/hub/webhooks#webhook-secret); it is
//     compared in constant time.
//   - MLflow signs each delivery (mlflow/webhooks/delivery.py; MLflow's
//     "Webhooks" documentation): X-MLflow-Signature is "v1," + base64 of
//     HMAC-SHA256(secret, "<X-MLflow-Delivery-Id>.<X-MLflow-Timestamp>.<raw
//     body>"), the timestamp in Unix seconds. A delivery older (or further in
//     the future) than the replay window, or whose delivery id was already
//     accepted, is rejected.
//
// A request that fails verification is answered 401 and logged with the
// reason, the path and the peer, never with its body, headers or query.
package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// MaxBody bounds a webhook body.
const MaxBody = 1 << 20

// Server is the webhook receiver. Set the secret of each registry to accept
// its webhooks; a registry without a secret is refused (404).
type Server struct {
	HFSecret string
	// HFRef is the branch whose new commits start a release; default
	// refs/heads/main.
	HFRef string
	// HFRepos, when set, limits releases to these repositories (org/name).
	HFRepos []string

	MLflowSecret string
	// MLflowAlias, when set, also starts a release when this alias is set
	// on a version (model_version_alias.created), e.g. "champion".
	MLflowAlias string
	// MLflowModels, when set, limits releases to these registered models.
	MLflowModels []string
	// MaxAge is the MLflow replay window; default DefaultMaxAge.
	MaxAge time.Duration

	Store   *Store
	Starter Starter
	Log     *slog.Logger
	Now     func() time.Time

	mu         sync.Mutex // held from the store check to the record: one start per revision
	deliveries map[string]time.Time
}

// Result is the JSON answer to a webhook.
type Result struct {
	Status string `json:"status"` // started, ignored, rejected, error
	Reason string `json:"reason,omitempty"`
	Source string `json:"source,omitempty"` // the event's key
}

// Handler serves POST /hooks/huggingface, POST /hooks/mlflow and GET
// /healthz.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hooks/huggingface", s.huggingface)
	mux.HandleFunc("POST /hooks/mlflow", s.mlflow)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	return mux
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return s.Log
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func reply(w http.ResponseWriter, code int, r Result) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(r)
}

// reject answers 401 and logs why: the path (never the query, which may
// hold the Hub's secret), the peer and the body's size, never the body.
func (s *Server) reject(w http.ResponseWriter, r *http.Request, source string, n int, why string) {
	s.log().Warn("webhook rejected", "source", source, "path", r.URL.Path, "remote", r.RemoteAddr, "reason", why, "body_bytes", n)
	reply(w, http.StatusUnauthorized, Result{Status: "rejected", Reason: why})
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
}

func (s *Server) huggingface(w http.ResponseWriter, r *http.Request) {
	if s.HFSecret == "" {
		http.NotFound(w, r)
		return
	}
	body, err := readBody(w, r)
	if err := VerifyHF(r, s.HFSecret); err != nil {
		s.reject(w, r, "huggingface", len(body), err.Error())
		return
	}
	if err != nil {
		reply(w, http.StatusRequestEntityTooLarge, Result{Status: "rejected", Reason: "body over 1 MiB"})
		return
	}
	ref := s.HFRef
	if ref == "" {
		ref = "refs/heads/main"
	}
	ev, err := ParseHF(body, ref)
	if err == nil && len(s.HFRepos) > 0 && !contains(s.HFRepos, ev.Repo) {
		err = ignored{"repository " + ev.Repo + " is not watched"}
	}
	s.handle(w, r, ev, err)
}

func (s *Server) mlflow(w http.ResponseWriter, r *http.Request) {
	if s.MLflowSecret == "" {
		http.NotFound(w, r)
		return
	}
	body, err := readBody(w, r)
	if err != nil {
		s.reject(w, r, "mlflow", len(body), "body over 1 MiB")
		return
	}
	maxAge := s.MaxAge
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	now := s.now()
	id, err := VerifyMLflow(r.Header, body, s.MLflowSecret, maxAge, now)
	if err != nil {
		s.reject(w, r, "mlflow", len(body), err.Error())
		return
	}
	// A delivery id accepted before, within the window, is a replay.
	s.mu.Lock()
	if s.deliveries == nil {
		s.deliveries = map[string]time.Time{}
	}
	for d, t := range s.deliveries {
		if now.Sub(t) > 2*maxAge {
			delete(s.deliveries, d)
		}
	}
	_, replay := s.deliveries[id]
	s.mu.Unlock()
	if replay {
		s.reject(w, r, "mlflow", len(body), "replayed delivery "+id)
		return
	}
	ev, err := ParseMLflow(body, s.MLflowAlias)
	ev.Delivery = id
	if err == nil && len(s.MLflowModels) > 0 && !contains(s.MLflowModels, ev.Repo) {
		err = ignored{"registered model " + ev.Repo + " is not watched"}
	}
	if code := s.handle(w, r, ev, err); code/100 == 2 {
		s.mu.Lock()
		s.deliveries[id] = now
		s.mu.Unlock()
	}
}

// handle answers a verified delivery: ignored (200), bad payload (400),
// already released (200), started (202) or could not start (502: the
// registry may retry).
func (s *Server) handle(w http.ResponseWriter, r *http.Request, ev Event, err error) int {
	log := s.log().With("source", ev.Source, "repo", ev.Repo, "revision", ev.Revision, "delivery", ev.Delivery)
	var ign ignored
	switch {
	case errors.As(err, &ign):
		log.Info("webhook ignored", "reason", ign.why)
		reply(w, http.StatusOK, Result{Status: "ignored", Reason: ign.why})
		return http.StatusOK
	case err != nil:
		log.Warn("webhook payload refused", "reason", err.Error())
		reply(w, http.StatusBadRequest, Result{Status: "rejected", Reason: err.Error()})
		return http.StatusBadRequest
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, seen := s.Store.Seen(ev.Keys()...); seen {
		log.Info("webhook ignored", "reason", "already released", "key", k)
		reply(w, http.StatusOK, Result{Status: "ignored", Reason: k + " was already released", Source: ev.Key()})
		return http.StatusOK
	}
	ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
	defer cancel()
	if err := s.Starter.Start(ctx, ev); err != nil {
		log.Error("release not started", "error", err.Error())
		reply(w, http.StatusBadGateway, Result{Status: "error", Reason: err.Error(), Source: ev.Key()})
		return http.StatusBadGateway
	}
	if err := s.Store.Add(Released{At: s.now().UTC(), Source: ev.Source, Run: s.Starter.Describe()}, ev.Keys()...); err != nil {
		log.Error("release started but not recorded: a repeat of this event would start another", "error", err.Error())
	}
	log.Info("release started", "key", ev.Key(), "run", s.Starter.Describe())
	reply(w, http.StatusAccepted, Result{Status: "started", Source: ev.Key()})
	return http.StatusAccepted
}

func contains(l []string, s string) bool {
	for _, e := range l {
		if e == s {
			return true
		}
	}
	return false
}
