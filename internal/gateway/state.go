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

// StateFile is the content of the --state file: what a restarted gateway
// must serve as before. A file without Canary (one written before the
// split was kept, or with no canary in force) loads as having none.
type StateFile struct {
	Active     string    `json:"active"`
	Previous   string    `json:"previous,omitempty"`
	SwitchedAt time.Time `json:"switched_at,omitzero"`
	// Canary is the split in force and the operator's control of its
	// rollout, kept so that a gateway restarted mid-canary goes on
	// splitting at the same percent (a sticky header's values keep their
	// side) and a promote or abort asked before the restart is not lost.
	// The shadow mirror is not kept: its counts cannot be, so a restart
	// ends it (the deploy's shadow step then fails, naming the restart).
	Canary *CanaryState `json:"canary,omitempty"`
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
		return nil, fmt.Errorf("not a gateway state (want {\"active\": URL, \"previous\": URL, \"switched_at\": RFC 3339, \"canary\": {\"upstream\": URL, \"percent\": P, \"sticky_header\": NAME, \"since\": RFC 3339, \"control\": ACTION}}): %v", err)
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
	if st.Canary != nil {
		if err := checkStateCanary(st.Canary, st.Active); err != nil {
			return nil, err
		}
	}
	return &st, nil
}

// checkStateCanary checks the canary of a state file whose active
// upstream is active: what SetCanary and SetControl would have accepted.
func checkStateCanary(c *CanaryState, active string) error {
	up, err := ParseUpstream(c.Upstream)
	switch {
	case err != nil:
		return fmt.Errorf("field canary.upstream: %v", err)
	case active == "":
		return errors.New("field canary: a canary with no active release to split from (field active is empty)")
	case sameUpstream(up.String(), active):
		return fmt.Errorf("field canary.upstream: %s is the active release; a canary must be another one", up)
	case !(c.Percent > 0 && c.Percent <= 100):
		return fmt.Errorf("field canary.percent: %v is not above 0 and at most 100 (no canary is written without the field)", c.Percent)
	case c.Since.IsZero():
		return errors.New("field canary.since: missing; want the RFC 3339 time the percent took effect")
	}
	if err := checkStickyHeader(c.StickyHeader); err != nil {
		return fmt.Errorf("field canary.%v", err)
	}
	if err := checkAction(c.Control); err != nil {
		return fmt.Errorf("field canary.control: %v", err)
	}
	return nil
}

// sameUpstream reports whether a and b, both valid upstreams, are one.
func sameUpstream(a, b string) bool {
	ua, _ := ParseUpstream(a)
	ub, _ := ParseUpstream(b)
	return ua.String() == ub.String()
}

// persistLocked writes the state file atomically (temporary file in the
// same directory, fsync, rename, fsync of the directory): the active
// upstream, and the canary split in force with the rollout's control.
// g.mu is held; every change of these calls it.
func (g *Gateway) persistLocked() error {
	if g.statePath == "" {
		return nil
	}
	st := StateFile{Active: g.Active(), Previous: g.previous, SwitchedAt: g.switchedAt}
	if g.canary.Load() != nil {
		st.Canary = g.canaryStateLocked()
	}
	data, _ := json.MarshalIndent(st, "", "  ")
	if err := atomicfile.WriteFile(g.statePath, append(data, '\n')); err != nil {
		return fmt.Errorf("gateway state: %w", err)
	}
	return nil
}
