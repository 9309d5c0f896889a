package trigger

import (
	"context"
	"log/slog"
)

// Start reports what the store holds from an earlier run and starts the
// releases goroutine: it resumes the revisions left queued, then starts
// each revision queued, oldest first, one at a time, until ctx ends. A
// revision left started by a trigger that stopped is reported and not run
// again (it may have started: a dispatch GitHub received, a command that
// ran part of a release). Releases run on a context that ctx ending does
// not cancel: the one under way when ctx ends runs to its end (Wait waits
// for it), and those still queued stay queued for the next start. Call
// Start once, before serving.
func (s *Server) Start(ctx context.Context) {
	s.report()
	done := make(chan struct{})
	s.mu.Lock()
	s.done = done
	s.mu.Unlock()
	go s.work(ctx, done)
}

// Wait waits for the releases goroutine to end, after Start's context
// ended: for the release under way to end.
func (s *Server) Wait() {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done != nil {
		<-done
	}
}

// report logs the revisions an earlier run left queued (resumed) or
// started (not run again).
func (s *Server) report() {
	log := s.log().With("store", s.Store.Path())
	for _, k := range s.Store.Keys(Queued) {
		r, _ := s.Store.Get(k)
		log.Info("resuming queued release", "key", k, "queued_at", r.QueuedAt, "attempt", r.Attempts)
	}
	for _, k := range s.Store.Keys(Started) {
		r, _ := s.Store.Get(k)
		log.Warn("release left started by a trigger that stopped: not run again, it may have started; remove its entry from the store to release it again",
			"key", k, "started_at", r.At, "run", r.Run)
	}
}

func (s *Server) work(ctx context.Context, done chan struct{}) {
	defer close(done)
	run := context.WithoutCancel(ctx)
	for ctx.Err() == nil {
		key, rec, ok := s.Store.Next()
		if !ok {
			select {
			case <-s.wakeup():
			case <-ctx.Done():
			}
			continue
		}
		s.release(run, key, rec.Event)
	}
}

// release starts the revision key, records each step and tells the
// webhook waiting for it whether it started.
func (s *Server) release(ctx context.Context, key string, ev Event) {
	s.setRunning(key)
	defer s.setRunning("")
	log := s.log().With("source", ev.Source, "repo", ev.Repo, "revision", ev.Revision, "key", key, "run", s.Starter.Describe())
	if err := ev.Validate(); err != nil { // an entry edited by hand
		s.fail(log, key, "release refused: the store's event is not valid", err)
		return
	}
	if err := s.Store.Set(key, Started, "", s.now().UTC()); err != nil {
		// Not on disk as started: a crash now would start it again.
		s.fail(log, key, "release not started: its started state could not be recorded", err)
		return
	}
	sctx, cancel := context.WithTimeout(ctx, startTimeout)
	end, err := s.Starter.Start(sctx, ev)
	cancel()
	if err != nil {
		s.fail(log, key, "release not started", err)
		return
	}
	if end == nil { // nothing more to follow: finished once started
		s.record(log, key, Finished, nil)
		log.Info("release started")
		s.notify(key, nil)
		return
	}
	log.Info("release started")
	s.notify(key, nil)
	err = end()
	s.record(log, key, finalState(err), err)
	if err != nil {
		log.Error("release failed", "error", err.Error())
		return
	}
	log.Info("release finished")
}

func finalState(err error) State {
	if err != nil {
		return Failed
	}
	return Finished
}

// fail records key failed, logs why and tells its webhook.
func (s *Server) fail(log *slog.Logger, key, msg string, err error) {
	log.Error(msg, "error", err.Error())
	s.record(log, key, Failed, err)
	s.notify(key, err)
}

// record moves key to state, logging a store that cannot be written.
func (s *Server) record(log *slog.Logger, key string, state State, why error) {
	msg := ""
	if why != nil {
		msg = why.Error()
	}
	if err := s.Store.Set(key, state, msg, s.now().UTC()); err != nil {
		log.Error("state not recorded", "state", string(state), "error", err.Error())
	}
}
