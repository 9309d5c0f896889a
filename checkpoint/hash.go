package checkpoint

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// hashBufSize is each hashing worker's read buffer. Memory use is
// workers × hashBufSize whatever the file sizes.
const hashBufSize = 1 << 20

// maxWorkers bounds hashing parallelism (and so memory: 16 MiB of buffers).
const maxWorkers = 16

// Digest returns the checkpoint digest of files: "sha256:" followed by the
// hex SHA-256 of one line per file, sorted by path (byte order),
//
//	<path>\t<size in decimal>\t<sha256 hex>\n
//
// where path is slash-separated and relative to the checkpoint root. For
// example a checkpoint holding only config.json (2 bytes "{}") has digest
// sha256 of "config.json\t2\t44136fa3...\n". Every file must carry SHA256.
func Digest(files []File) string {
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	h := sha256.New()
	var line []byte
	for _, f := range sorted {
		line = append(line[:0], f.Path...)
		line = append(line, '\t')
		line = strconv.AppendInt(line, f.Size, 10)
		line = append(line, '\t')
		line = append(line, f.SHA256...)
		line = append(line, '\n')
		h.Write(line)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// validDigestPath reports whether p can be encoded in a Digest line.
func validDigestPath(p string) bool { return !strings.ContainsAny(p, "\t\n") }

// hashJob is one file to hash.
type hashJob struct {
	abs, display string // path to open, path for errors
	size         int64
	sum          *string
}

// hashFiles computes the SHA-256 of every job, in parallel across files
// (each file is read sequentially with one reused buffer per worker).
// progress, if set, is called (never concurrently) with bytes hashed so far.
func hashFiles(ctx context.Context, jobs []hashJob, workers int, progress func(done, total int64)) error {
	if len(jobs) == 0 {
		return nil
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, maxWorkers, len(jobs))
	// Largest first, so one big file does not start last.
	order := make([]int, len(jobs))
	var total int64
	for i := range order {
		order[i] = i
		total += jobs[i].size
	}
	sort.SliceStable(order, func(a, b int) bool { return jobs[order[a]].size > jobs[order[b]].size })

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next    atomic.Int64
		done    atomic.Int64
		pmu     sync.Mutex
		errOnce sync.Once
		first   error
		wg      sync.WaitGroup
	)
	report := func(n int64) {
		d := done.Add(n)
		if progress != nil {
			pmu.Lock()
			progress(d, total)
			pmu.Unlock()
		}
	}
	fail := func(err error) {
		errOnce.Do(func() { first = err; cancel() })
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, hashBufSize)
			for {
				i := int(next.Add(1)) - 1
				if i >= len(order) || ctx.Err() != nil {
					return
				}
				j := &jobs[order[i]]
				sum, err := hashFile(ctx, j, buf, report)
				if err != nil {
					fail(err)
					return
				}
				*j.sum = sum
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

func hashFile(ctx context.Context, j *hashJob, buf []byte, report func(int64)) (string, error) {
	f, err := os.Open(j.abs)
	if err != nil {
		return "", openError(j.display, err)
	}
	defer f.Close()
	h := sha256.New()
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		m, err := f.Read(buf)
		if m > 0 {
			h.Write(buf[:m])
			n += int64(m)
			report(int64(m))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", errorf(j.display, "reading: %v", unwrapPath(err))
		}
	}
	if n != j.size {
		return "", errorf(j.display, "changed while hashing: size was %d, read %d bytes", j.size, n)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
