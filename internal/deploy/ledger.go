package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Event is one line of the ledger.
type Event struct {
	Time    time.Time `json:"time"`
	Event   string    `json:"event"` // started, ready, switched, verified, rolled-back, failed, live, interrupted, pruned, shadow, canary-step, canary-aborted, canary-promoted
	Release *Release  `json:"release"`
	Detail  string    `json:"detail,omitempty"`
}

// Ledger appends release events to a JSONL file for audit. It is a copy:
// the target's own records are the history; the ledger also keeps what
// happened on the way (every switch and rollback). A nil *Ledger records
// nothing.
type Ledger struct {
	Path string
	mu   sync.Mutex
}

// DefaultLedgerPath is $XDG_STATE_HOME/modelship/releases.jsonl, or
// ~/.local/state/modelship/releases.jsonl.
func DefaultLedgerPath() string {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return filepath.Join(os.TempDir(), "modelship", "releases.jsonl")
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "modelship", "releases.jsonl")
}

// Append writes one event as a line (O_APPEND: lines from concurrent
// processes do not interleave).
func (l *Ledger) Append(ev Event) error {
	if l == nil || l.Path == "" {
		return nil
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(l.Path), 0o755); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	f, err := os.OpenFile(l.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("ledger %s: %w", l.Path, err)
	}
	// On disk before the deploy goes on: the audit trail of a host that
	// loses power mid-deploy still says what was done.
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("ledger %s: %w", l.Path, err)
	}
	return f.Close()
}
