package trigger

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Store remembers which model revisions have already been released (or
// handed to the pipeline), so that a registry repeating an event, or two
// registries announcing the same weights, start one release. It is a small
// JSON file:
//
//	{"released": {"hf:org/name@<sha>": {"at": "...", "source": "huggingface"}, ...}}
//
// Keys are the registry's name for the revision (Event.Keys): the Hugging
// Face commit (headSha), the MLflow registered model version, and
// modelship's checkpoint digest ("sha256:...") when known. Remove an entry to
// let the same revision start a release again.
type Store struct {
	path string
	mu   sync.Mutex
	data storeFile
}

type storeFile struct {
	Released map[string]Released `json:"released"`
}

// Released is what the store says about one key.
type Released struct {
	At     time.Time `json:"at"`
	Source string    `json:"source,omitempty"`
	// Run is how the release was started (a workflow dispatch, a command).
	Run string `json:"run,omitempty"`
}

// OpenStore reads the store at path; a missing file is an empty store (it
// is created on the first Add).
func OpenStore(path string) (*Store, error) {
	s := &Store{path: path, data: storeFile{Released: map[string]Released{}}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &s.data); err != nil {
		return nil, fmt.Errorf("%s: not a released-digests store: %v", path, err)
	}
	if s.data.Released == nil {
		s.data.Released = map[string]Released{}
	}
	return s, nil
}

// Seen returns the first of keys already in the store.
func (s *Store) Seen(keys ...string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		if _, ok := s.data.Released[k]; ok && k != "" {
			return k, true
		}
	}
	return "", false
}

// Add records keys and writes the file atomically.
func (s *Store) Add(r Released, keys ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		if k != "" {
			s.data.Released[k] = r
		}
	}
	return s.write()
}

// Keys lists the recorded keys, sorted.
func (s *Store) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.data.Released))
	for k := range s.data.Released {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (s *Store) write() error {
	b, err := json.MarshalIndent(s.data, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), "."+filepath.Base(s.path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), s.path)
}
