package checkpoint

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// TestMain removes the large benchmark fixtures once all benchmarks ran.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range benchDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

var (
	benchDirs []string
	benchOnce sync.Once
	benchDir  string
	benchErr  error
)

const (
	benchShards    = 4
	benchShardSize = 1 << 30
)

// shards4x1GiB writes, once per process, a checkpoint directory with four
// 1 GiB files (cheap pseudo-random content) that stays in the page cache.
func shards4x1GiB(b *testing.B) string {
	benchOnce.Do(func() {
		benchDir, benchErr = os.MkdirTemp("", "modelship-bench-")
		if benchErr != nil {
			return
		}
		benchDirs = append(benchDirs, benchDir)
		buf := make([]byte, 1<<20)
		r := uint64(1)
		for i := 0; i < benchShards; i++ {
			f, err := os.Create(filepath.Join(benchDir, fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, benchShards)))
			if err != nil {
				benchErr = err
				return
			}
			for off := 0; off < benchShardSize; off += len(buf) {
				for j := 0; j < len(buf); j += 8 {
					r ^= r << 13
					r ^= r >> 7
					r ^= r << 17
					buf[j] = byte(r)
				}
				if _, err := f.Write(buf); err != nil {
					benchErr = err
					return
				}
			}
			if benchErr = f.Close(); benchErr != nil {
				return
			}
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchDir
}

func benchJobs(dir string) []hashJob {
	entries, _ := os.ReadDir(dir)
	jobs := make([]hashJob, len(entries))
	sums := make([]string, len(entries))
	for i, e := range entries {
		fi, _ := e.Info()
		p := filepath.Join(dir, e.Name())
		jobs[i] = hashJob{abs: p, display: p, size: fi.Size(), sum: &sums[i]}
	}
	return jobs
}

// BenchmarkHash4x1GiB hashes four 1 GiB files already in the page cache,
// in parallel across files (the way Inspect hashes shards), and reports
// GB/s (10^9 bytes per second). Run with:
//
//	go test -run='^$' -bench=Hash4x1GiB -benchtime=3x ./checkpoint/
//
// The sha256sum sub-benchmark runs coreutils sha256sum on the same files
// one after another, for comparison.
func BenchmarkHash4x1GiB(b *testing.B) {
	dir := shards4x1GiB(b)
	total := int64(benchShards * benchShardSize)
	for _, w := range []int{1, 0} {
		name := fmt.Sprintf("workers=%d", w)
		if w == 0 {
			name = "workers=GOMAXPROCS"
		}
		b.Run(name, func(b *testing.B) {
			jobs := benchJobs(dir)
			if err := hashFiles(context.Background(), jobs, w, nil); err != nil { // warm the page cache
				b.Fatal(err)
			}
			b.SetBytes(total)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := hashFiles(context.Background(), jobs, w, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
	b.Run("sha256sum", func(b *testing.B) {
		path, err := exec.LookPath("sha256sum")
		if err != nil {
			b.Skip("sha256sum not installed")
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		b.SetBytes(total)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if out, err := exec.Command(path, files...).CombinedOutput(); err != nil {
				b.Fatalf("sha256sum: %v: %s", err, out)
			}
		}
		b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
	})
}

// BenchmarkInspectCached100Files inspects a 100-file checkpoint whose digests
// are all in the cache (the second `modelship inspect` of an unchanged
// checkpoint) and reports ms per inspect. Run with:
//
//	go test -run='^$' -bench=InspectCached100Files ./checkpoint/
func BenchmarkInspectCached100Files(b *testing.B) {
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "config.json"), okConfig, 0o644)
	weightMap := ""
	for i := 0; i < 97; i++ {
		name := fmt.Sprintf("model-%05d-of-00097.safetensors", i+1)
		os.WriteFile(filepath.Join(dir, name), st(fmt.Sprintf(`{"t%d":{"dtype":"F16","shape":[4096],"data_offsets":[0,8192]}}`, i), 8192), 0o644)
		if i > 0 {
			weightMap += ","
		}
		weightMap += fmt.Sprintf(`"t%d":%q`, i, name)
	}
	os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), []byte(`{"weight_map":{`+weightMap+`}}`), 0o644)
	os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(`{}`), 0o644)
	cache, err := OpenDigestCache(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	opt := Options{Hash: true, Cache: cache}
	first, err := Inspect(context.Background(), dir, opt)
	if err != nil {
		b.Fatal(err)
	}
	if len(first.Files) != 100 {
		b.Fatalf("%d files, want 100", len(first.Files))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		info, err := Inspect(context.Background(), dir, opt)
		if err != nil {
			b.Fatal(err)
		}
		if info.Cache.Hits != 100 || info.Digest != first.Digest {
			b.Fatalf("cache hits %d", info.Cache.Hits)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/inspect")
}
