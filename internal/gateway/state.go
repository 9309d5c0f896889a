package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/modelship/modelship/internal/atomicfile"
)

// StateFile is the content of the --state file.
type StateFile struct {
	Active     string    `json:"active"`
	Previous   string    `json:"previous,omitempty"`
	SwitchedAt time.Time `json:"switched_at,omitzero"`
}

var errNoStateFile = errors.New("no state file")

// ReadStateFile reads a state file. A missing file wraps errNoStateFile
// (New then starts from Options.Upstream); anything else that is wrong is
// an error naming the file and field.
func ReadStateFile(path string) (*StateFile, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", errNoStateFile, path)
	}
	if err != nil {
		return nil, fmt.Errorf("gateway state file: %w", err)
	}
	st, err := ParseStateFile(data)
	if err != nil {
		return nil, fmt.Errorf("gateway state file %s: %w", path, err)
	}
	return st, nil
}

// ParseStateFile parses a state file strictly: unknown fields, trailing
// data and upstreams that are not base http(s) URLs are errors.
func ParseStateFile(data []byte) (*StateFile, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var st StateFile
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("not a gateway state (want {\"active\": URL, \"previous\": URL, \"switched_at\": RFC 3339}): %v", err)
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON object")
	}
	if st.Active != "" {
		if _, err := ParseUpstream(st.Active); err != nil {
			return nil, fmt.Errorf("field active: %v", err)
		}
	}
	if st.Previous != "" {
		if _, err := ParseUpstream(st.Previous); err != nil {
			return nil, fmt.Errorf("field previous: %v", err)
		}
	}
	return &st, nil
}

// persistLocked writes the state file atomically (temporary file in the
// same directory, fsync, rename, fsync of the directory). g.mu is held.
func (g *Gateway) persistLocked() error {
	if g.statePath == "" {
		return nil
	}
	st := StateFile{Active: g.Active(), Previous: g.previous, SwitchedAt: g.switchedAt}
	data, _ := json.MarshalIndent(st, "", "  ")
	if err := atomicfile.WriteFile(g.statePath, append(data, '\n')); err != nil {
		return fmt.Errorf("gateway state: %w", err)
	}
	return nil
}
