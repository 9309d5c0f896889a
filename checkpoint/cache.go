package checkpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/modelship/modelship/internal/atomicfile"
)

// DigestCache remembers file digests between runs so that inspecting an
// unchanged checkpoint does not re-read its weights. An entry is reused only
// when the file's absolute path, size, modification time (ns) and inode all
// match. The store is one JSON file per checkpoint directory, named by the
// SHA-256 of the checkpoint's absolute path, replaced atomically (temp file
// + rename). An unreadable or corrupt cache file is ignored and rewritten.
type DigestCache struct {
	dir string
}

// DefaultCacheDir is $XDG_CACHE_HOME/modelship/digests (os.UserCacheDir).
func DefaultCacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("digest cache: %v", err)
	}
	return filepath.Join(base, "modelship", "digests"), nil
}

// OpenDigestCache opens (creating if needed) the cache in dir.
func OpenDigestCache(dir string) (*DigestCache, error) {
	if dir == "" {
		d, err := DefaultCacheDir()
		if err != nil {
			return nil, err
		}
		dir = d
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("digest cache %s: %v", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("digest cache %s: %v", dir, unwrapPath(err))
	}
	return &DigestCache{dir: abs}, nil
}

// Dir returns the cache directory.
func (c *DigestCache) Dir() string { return c.dir }

const cacheVersion = 1

type cacheFile struct {
	Version int          `json:"version"`
	Root    string       `json:"root"`
	Files   []cacheEntry `json:"files"`
}

type cacheEntry struct {
	Path    string `json:"path"` // absolute
	Size    int64  `json:"size"`
	MtimeNs int64  `json:"mtime_ns"`
	Inode   uint64 `json:"inode"`
	SHA256  string `json:"sha256"`
}

func (c *DigestCache) fileFor(root string) string {
	sum := sha256.Sum256([]byte(root))
	return filepath.Join(c.dir, hex.EncodeToString(sum[:16])+".json")
}

// load returns the entries stored for the checkpoint at root (absolute),
// keyed by absolute path. Any problem yields an empty map.
func (c *DigestCache) load(root string) map[string]cacheEntry {
	out := map[string]cacheEntry{}
	data, err := os.ReadFile(c.fileFor(root))
	if err != nil {
		return out
	}
	var cf cacheFile
	if json.Unmarshal(data, &cf) != nil || cf.Version != cacheVersion || cf.Root != root {
		return out
	}
	for _, e := range cf.Files {
		if len(e.SHA256) == 64 && isHex(e.SHA256) {
			out[e.Path] = e
		}
	}
	return out
}

// store atomically replaces the entries for root.
func (c *DigestCache) store(root string, entries []cacheEntry) error {
	data, err := json.Marshal(cacheFile{Version: cacheVersion, Root: root, Files: entries})
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(c.fileFor(root), data); err != nil {
		return fmt.Errorf("digest cache: %v", err)
	}
	return nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
