package checkpoint

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestDigestCache(t *testing.T) {
	d := hfDir(t, map[string][]byte{"config.json": okConfig, "model.safetensors": st(okTensor, 8), "tokenizer.json": []byte("{}")})
	cache, err := OpenDigestCache(filepath.Join(t.TempDir(), "c"))
	if err != nil {
		t.Fatal(err)
	}
	inspect := func() *Info {
		t.Helper()
		info, err := Inspect(context.Background(), d, Options{Hash: true, Cache: cache})
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	first := inspect()
	if first.Cache.Hits != 0 || first.Cache.Hashed != 3 || first.Cache.Dir != cache.Dir() {
		t.Errorf("first run: %+v", first.Cache)
	}
	second := inspect()
	if second.Cache.Hits != 3 || second.Cache.Hashed != 0 || second.Digest != first.Digest {
		t.Errorf("second run: %+v digest %s vs %s", second.Cache, second.Digest, first.Digest)
	}

	// Same size, new content and mtime: must be re-hashed, not served stale.
	p := filepath.Join(d, "tokenizer.json")
	os.WriteFile(p, []byte("[]"), 0o644)
	future := time.Now().Add(time.Hour)
	os.Chtimes(p, future, future)
	third := inspect()
	if third.Cache.Hits != 2 || third.Cache.Hashed != 1 || third.Digest == first.Digest {
		t.Errorf("after change: %+v", third.Cache)
	}
	uncached, err := Inspect(context.Background(), d, Options{Hash: true})
	if err != nil {
		t.Fatal(err)
	}
	if uncached.Digest != third.Digest {
		t.Errorf("cached digest %s != fresh %s", third.Digest, uncached.Digest)
	}

	// A corrupt cache file is ignored and rewritten.
	entries, _ := os.ReadDir(cache.Dir())
	if len(entries) != 1 {
		t.Fatalf("cache holds %d files, want 1", len(entries))
	}
	cf := filepath.Join(cache.Dir(), entries[0].Name())
	os.WriteFile(cf, []byte("{not json"), 0o644)
	fourth := inspect()
	if fourth.Cache.Hits != 0 || fourth.Digest != third.Digest || fourth.Cache.WriteError != "" {
		t.Errorf("corrupt cache: %+v", fourth.Cache)
	}
	if fifth := inspect(); fifth.Cache.Hits != 3 {
		t.Errorf("cache not rewritten after corruption: %+v", fifth.Cache)
	}
	// Entries with a wrong hash length are dropped rather than trusted.
	os.WriteFile(cf, []byte(`{"version":1,"root":"`+cache.Dir()+`","files":[]}`), 0o644)
	if sixth := inspect(); sixth.Cache.Hits != 0 {
		t.Errorf("cache for another root was used: %+v", sixth.Cache)
	}
}

func TestDigestCacheUnwritable(t *testing.T) {
	d := hfDir(t, map[string][]byte{"config.json": okConfig, "model.safetensors": st(okTensor, 8)})
	cache, err := OpenDigestCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(cache.Dir()) // writes now fail: a file is in the way
	os.WriteFile(cache.Dir(), nil, 0o644)
	info, err := Inspect(context.Background(), d, Options{Hash: true, Cache: cache})
	if err != nil {
		t.Fatalf("a cache write failure must not be fatal: %v", err)
	}
	if info.Cache.WriteError == "" || info.Digest == "" {
		t.Errorf("want a write error reported and a digest: %+v", info.Cache)
	}
}

func TestDefaultCacheDir(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "/x/cache")
	if d, err := DefaultCacheDir(); err != nil || d != "/x/cache/modelship/digests" {
		t.Errorf("DefaultCacheDir = %q, %v", d, err)
	}
}
