// Package trigger receives model registry webhooks — Hugging Face Hub and
// MLflow Model Registry — verifies them, checks every value they carry,
// ignores revisions already queued or released, and starts the release
// pipeline (a GitHub workflow_dispatch, or a local command such as a gh
// workflow run) once per revision.
//
// Releases: an accepted event is recorded queued in the Store (on disk
// before the answer), then started by one goroutine, one release at a
// time, on a context of its own: a sender that gives up cancels nothing,
// and its retry, while the revision is queued, started or finished, starts
// nothing. Each revision's state (queued, started, finished, failed) is on
// disk at every step; the started state is written before the release
// starts, so that no crash can start a revision twice. On start-up the
// revisions left queued are resumed; one left started (the trigger stopped
// while starting or running it) may have run, so it is reported and never
// run again by itself: remove its entry from the store to release it again.
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
	// StartWait is how long a webhook whose release is next in line waits
	// for it to start (to answer 502 if it cannot, so that the registry
	// retries) before answering 202 queued; default DefaultStartWait.
	StartWait time.Duration
	Log       *slog.Logger
	Now       func() time.Time

	mu         sync.Mutex // the fields below; never held across a release or a store write
	deliveries map[string]time.Time
	waiters    map[string][]chan error // webhooks waiting for a revision to start
	running    string                  // the key of the release under way
	wake       chan struct{}
	done       chan struct{} // closed when the releases goroutine ends
}

// DefaultStartWait is Server.StartWait's default.
const DefaultStartWait = 10 * time.Second

// startTimeout bounds Starter.Start (a dispatch; a process start).
const startTimeout = 60 * time.Second

// Result is the JSON answer to a webhook.
type Result struct {
	Status string `json:"status"` // started, queued, ignored, rejected, error
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

// handle answers a verified delivery: ignored (200); bad payload (400);
// a value the release needs missing (422); already queued or started (202)
// or finished (200); not recorded (503: the registry may retry); queued
// and started (202), could not start (502: the registry may retry), or
// queued behind other releases (202).
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
	if c, ok := s.Starter.(Checker); ok {
		if err := c.Check(ev); err != nil {
			code := http.StatusBadRequest
			if isMissing(err) {
				code = http.StatusUnprocessableEntity
			}
			log.Warn("webhook refused", "reason", err.Error())
			reply(w, code, Result{Status: "rejected", Reason: err.Error(), Source: ev.Key()})
			return code
		}
	}
	key := ev.Key()
	started := s.await(key)
	defer s.forget(key, started)
	match, rec, queued, err := s.Store.Queue(ev, s.Starter.Describe(), s.now().UTC())
	switch {
	case err != nil:
		log.Error("release not queued", "error", err.Error())
		reply(w, http.StatusServiceUnavailable, Result{Status: "error", Reason: "not queued: " + err.Error(), Source: key})
		return http.StatusServiceUnavailable
	case !queued:
		return s.already(w, log, key, match, rec)
	}
	log.Info("release queued", "key", key, "attempt", rec.Attempts)
	s.poke()
	if !s.nextInLine(key) {
		reply(w, http.StatusAccepted, Result{Status: "queued", Reason: "queued behind the releases before it", Source: key})
		return http.StatusAccepted
	}
	return s.awaitStart(w, r, key, started)
}

// already answers an event whose revision the store has: 200 when it was
// released, 202 while it is queued or started.
func (s *Server) already(w http.ResponseWriter, log *slog.Logger, key, match string, rec Record) int {
	log.Info("webhook ignored", "reason", "already "+string(rec.State), "key", match)
	switch rec.State {
	case Finished:
		reply(w, http.StatusOK, Result{Status: "ignored", Reason: match + " was already released", Source: key})
		return http.StatusOK
	case Started:
		reply(w, http.StatusAccepted, Result{Status: "started", Reason: match + " is already started", Source: key})
	default:
		reply(w, http.StatusAccepted, Result{Status: "queued", Reason: match + " is already queued", Source: key})
	}
	return http.StatusAccepted
}

// awaitStart waits, at most StartWait, for the release of key to start:
// 202 started, 502 if it could not, 202 queued if it has not yet (it
// starts in the background; the sender leaving changes nothing).
func (s *Server) awaitStart(w http.ResponseWriter, r *http.Request, key string, started chan error) int {
	wait := s.StartWait
	if wait <= 0 {
		wait = DefaultStartWait
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case err := <-started:
		if err != nil {
			reply(w, http.StatusBadGateway, Result{Status: "error", Reason: err.Error(), Source: key})
			return http.StatusBadGateway
		}
		reply(w, http.StatusAccepted, Result{Status: "started", Source: key})
	case <-t.C:
		reply(w, http.StatusAccepted, Result{Status: "queued", Reason: "not started within " + wait.String() + ": it starts in the background", Source: key})
	case <-r.Context().Done():
	}
	return http.StatusAccepted
}

// await registers a webhook waiting for key to start; forget removes it.
func (s *Server) await(key string) chan error {
	ch := make(chan error, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiters == nil {
		s.waiters = map[string][]chan error{}
	}
	s.waiters[key] = append(s.waiters[key], ch)
	return ch
}

func (s *Server) forget(key string, ch chan error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.waiters[key]
	for i, c := range l {
		if c == ch {
			l = append(l[:i], l[i+1:]...)
			break
		}
	}
	if len(l) == 0 {
		delete(s.waiters, key)
	} else {
		s.waiters[key] = l
	}
}

// notify tells the webhooks waiting for key whether it started.
func (s *Server) notify(key string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.waiters[key] {
		ch <- err
	}
	delete(s.waiters, key)
}

// nextInLine reports whether the releases goroutine runs and key is the
// only release queued or under way: then it starts at once.
func (s *Server) nextInLine(key string) bool {
	s.mu.Lock()
	idle, running := s.done != nil && (s.running == "" || s.running == key), s.running
	s.mu.Unlock()
	if !idle {
		return false
	}
	for _, k := range s.Store.Keys(Queued) {
		if k != key && k != running {
			return false
		}
	}
	return true
}

// poke wakes the releases goroutine.
func (s *Server) poke() {
	select {
	case s.wakeup() <- struct{}{}:
	default:
	}
}

func (s *Server) wakeup() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wake == nil {
		s.wake = make(chan struct{}, 1)
	}
	return s.wake
}

func (s *Server) setRunning(key string) {
	s.mu.Lock()
	s.running = key
	s.mu.Unlock()
}

func contains(l []string, s string) bool {
	for _, e := range l {
		if e == s {
			return true
		}
	}
	return false
}
