package trigger

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/modelship/modelship/internal/atomicfile"
)

// State is where the release of one revision stands.
type State string

// The states of a revision, in the order it goes through them.
const (
	// Queued: accepted, waiting for its turn. A revision left queued by a
	// stopped trigger is resumed when the trigger starts again.
	Queued State = "queued"
	// Started: being started (recorded before the dispatch or the command,
	// so that a crash can never start it twice) or, for a command,
	// running. A revision left started by a stopped trigger may have
	// started: it is reported at start-up and never run again by itself.
	Started State = "started"
	// Finished: GitHub accepted the workflow_dispatch, or the command
	// exited 0.
	Finished State = "finished"
	// Failed: the release could not start, or the command failed. The
	// next delivery of the event queues it again.
	Failed State = "failed"
)

// Record is what the store says about one revision.
type Record struct {
	State State `json:"state"`
	// Event is the event that queued it, to resume it.
	Event Event `json:"event"`
	// Run is how the release is started (a workflow dispatch, a command).
	Run string `json:"run,omitempty"`
	// Attempts counts the times it was queued (a failed one queues again).
	Attempts int       `json:"attempts,omitempty"`
	QueuedAt time.Time `json:"queued_at"`
	// At is the time of the last change of state.
	At time.Time `json:"at"`
	// Error says why it failed.
	Error string `json:"error,omitempty"`
}

// Store remembers the release of each model revision, queued, started,
// finished or failed, so that a registry repeating an event, or two
// registries announcing the same weights, start one release, and a
// release accepted but not started when the trigger stops is started when
// it comes back. It is a small JSON file, rewritten atomically (a synced
// temporary file renamed over it, then the directory synced) at every
// change:
//
//	{"revisions": {"hf:org/name@<sha>": {"state": "finished", "event": {...}, ...}, ...}}
//
// Keys are Event.Key; an event is also known by its checkpoint digest
// ("sha256:...") when it has one. Remove an entry to let the same revision
// start a release again. The earlier form of the file,
// {"released": {KEY: {"at": ...}}}, is read as finished revisions.
type Store struct {
	path string
	mu   sync.Mutex // held across a change and its write, never across a release
	data storeFile
}

type storeFile struct {
	Revisions map[string]Record `json:"revisions"`
	// Released is the earlier form of the file: keys already released.
	Released map[string]legacyRecord `json:"released,omitempty"`
}

// legacyRecord is an entry of the earlier form of the file.
type legacyRecord struct {
	At     time.Time `json:"at"`
	Source string    `json:"source,omitempty"`
	Run    string    `json:"run,omitempty"`
}

// OpenStore reads the store at path; a missing file is an empty store (it
// is created on the first change).
func OpenStore(path string) (*Store, error) {
	s := &Store{path: path, data: storeFile{Revisions: map[string]Record{}}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &s.data); err != nil {
		return nil, fmt.Errorf("%s: expected the trigger's JSON store {\"revisions\": {...}}: %v", path, err)
	}
	if s.data.Revisions == nil {
		s.data.Revisions = map[string]Record{}
	}
	for k, r := range s.data.Released {
		if _, ok := s.data.Revisions[k]; !ok {
			s.data.Revisions[k] = Record{State: Finished, Event: Event{Source: r.Source}, Run: r.Run, QueuedAt: r.At, At: r.At}
		}
	}
	s.data.Released = nil
	for k, r := range s.data.Revisions {
		switch r.State {
		case Queued, Started, Finished, Failed:
		default:
			return nil, fmt.Errorf("%s: revision %s: state %q: expected queued, started, finished or failed", path, k, r.State)
		}
	}
	return s, nil
}

// Path is the store's file.
func (s *Store) Path() string { return s.path }

// Lookup finds the revision ev names, by its key or its digest, in any
// state but failed; match is the key or digest it was found by.
func (s *Store) Lookup(ev Event) (match string, r Record, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lookup(ev)
}

func (s *Store) lookup(ev Event) (string, Record, bool) {
	for _, k := range ev.Keys() {
		if r, ok := s.data.Revisions[k]; ok && r.State != Failed {
			return k, r, true
		}
	}
	if ev.Digest == "" {
		return "", Record{}, false
	}
	for _, r := range s.data.Revisions {
		if r.Event.Digest == ev.Digest && r.State != Failed {
			return ev.Digest, r, true
		}
	}
	return "", Record{}, false
}

// Queue records ev as queued, unless its revision (or its digest) is
// already queued, started or finished: then it returns what it matched
// and queues nothing. A failed revision is queued again. The change is on
// disk when Queue returns; if it cannot be written, nothing is queued.
func (s *Store) Queue(ev Event, run string, now time.Time) (match string, r Record, queued bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, r, ok := s.lookup(ev); ok {
		return m, r, false, nil
	}
	key := ev.Key()
	prev, had := s.data.Revisions[key]
	r = Record{State: Queued, Event: ev, Run: run, Attempts: prev.Attempts + 1, QueuedAt: now, At: now}
	s.data.Revisions[key] = r
	if err := s.write(); err != nil {
		if had {
			s.data.Revisions[key] = prev
		} else {
			delete(s.data.Revisions, key)
		}
		return "", Record{}, false, err
	}
	return key, r, true, nil
}

// Set moves the revision key to state (why: the error of a failed one)
// and writes the file. The state holds in memory even when the write
// fails.
func (s *Store) Set(key string, state State, why string, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.data.Revisions[key]
	if !ok {
		return fmt.Errorf("store %s: no revision %s", s.path, key)
	}
	r.State, r.Error, r.At = state, why, now
	s.data.Revisions[key] = r
	return s.write()
}

// Next returns the revision queued first, if any.
func (s *Store) Next() (key string, r Record, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, rec := range s.data.Revisions {
		if rec.State != Queued {
			continue
		}
		if !ok || rec.QueuedAt.Before(r.QueuedAt) || rec.QueuedAt.Equal(r.QueuedAt) && k < key {
			key, r, ok = k, rec, true
		}
	}
	return key, r, ok
}

// Get returns the record of key.
func (s *Store) Get(key string) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.data.Revisions[key]
	return r, ok
}

// State returns the state of key, "" when the store does not have it.
func (s *Store) State(key string) State {
	r, _ := s.Get(key)
	return r.State
}

// Keys lists the recorded keys in state, or all of them when state is "",
// sorted.
func (s *Store) Keys(state State) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k, r := range s.data.Revisions {
		if state == "" || r.State == state {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// write replaces the file atomically and durably: a temporary file in the
// same directory, synced, renamed over the store, then the directory
// synced so that the rename survives a crash.
func (s *Store) write() error {
	b, err := json.MarshalIndent(s.data, "", "  ")
	if err != nil {
		return fmt.Errorf("store %s: %v", s.path, err)
	}
	if err := atomicfile.WriteFile(s.path, append(b, '\n')); err != nil {
		return fmt.Errorf("store %s: %v", s.path, err)
	}
	return nil
}
