package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/modelship/modelship/checkpoint"
	"github.com/modelship/modelship/internal/gha"
	"github.com/modelship/modelship/internal/progress"
)

func init() {
	register(command{name: "inspect", summary: "describe a checkpoint: format, architecture, parameters, dtype, size, digest", run: runInspect})
}

const inspectUsage = `Usage: modelship inspect PATH [flags]

Describe a model checkpoint and name its exact bytes. PATH is a Hugging Face
style directory (config.json + model.safetensors, or shards listed in
model.safetensors.index.json, plus tokenizer files), a .gguf file, or a
directory holding exactly one .gguf file.

Reports format, architecture, exact parameter count (from tensor shapes),
dtype(s), weight bytes, maximum context length, transformer shape, and the
SHA-256 of every file (as sha256sum prints it) with one checkpoint digest:
"sha256:" + hex SHA-256 over one line "PATH\tSIZE\tSHA256\n" per file, sorted
by relative path. Digests of unchanged files (same absolute path, size,
mtime and inode) are reused from the digest cache.

Exit status: 0 ok, 2 bad flags or not a valid checkpoint.

Flags:
`

func runInspect(ctx context.Context, args []string, s stdio) int {
	fs := newFlagSet("inspect", s, inspectUsage)
	asJSON := fs.Bool("json", false, "print the report as JSON (files, digest, format, parameters, dtype, weight_bytes, shape, ...)")
	noCache := fs.Bool("no-cache", false, "hash every file even if the digest cache knows it, and do not update the cache")
	cacheDir := fs.String("cache-dir", "", "digest cache directory (default $XDG_CACHE_HOME/modelship/digests, i.e. os.UserCacheDir()/modelship/digests)")
	noHash := fs.Bool("no-hash", false, "skip content hashing: no per-file sha256 and no digest (headers are still checked)")
	workers := fs.Int("workers", 0, "files hashed in parallel (0 = number of CPUs)")
	path, code, ok := parseOneArg(fs, args, newUsageErr(s, "inspect", ""), "need exactly one PATH, got %d")
	if !ok {
		return code
	}
	info, opt, cacheNote, err := inspectCheckpoint(ctx, path, !*noHash, !*noCache, *cacheDir, *workers, s.err)
	if err != nil {
		fmt.Fprintf(s.err, "modelship inspect: %v\n", err)
		if errors.Is(err, context.Canceled) {
			return exitFailed
		}
		return exitUsage
	}
	gaOut := s.out // GitHub Actions commands stay off a --json stdout
	if *asJSON {
		gaOut = s.err
	}
	gha.FromEnv(gaOut, s.err).ModelDigest(info.Digest)
	if *asJSON {
		return printJSON(s, "inspect", info)
	}
	printInspect(s.out, info, opt, *noCache, cacheNote)
	return exitOK
}

// inspectCheckpoint inspects path, hashing with the digest cache (unless
// useCache is false) and a progress bar on stderr. A cache that cannot be
// opened or written only costs time: it is a warning, and cacheNote says why.
func inspectCheckpoint(ctx context.Context, path string, hash, useCache bool, cacheDir string, workers int, stderr io.Writer) (info *checkpoint.Info, opt checkpoint.Options, cacheNote string, err error) {
	opt = checkpoint.Options{Hash: hash, Workers: workers}
	if hash && useCache {
		c, err := checkpoint.OpenDigestCache(cacheDir)
		if err != nil {
			cacheNote = err.Error()
			fmt.Fprintf(stderr, "modelship: warning: %v; hashing without a cache\n", err)
		} else {
			opt.Cache = c
		}
	}
	var bar *progress.Bar
	if hash {
		bar = progress.New(stderr, "hashing", 0, progress.Bytes)
		opt.Progress = func(done, total int64) {
			bar.SetTotal(total)
			bar.Set(done)
		}
	}
	info, err = checkpoint.Inspect(ctx, path, opt)
	if bar != nil {
		bar.Done()
	}
	if err == nil && info.Cache != nil && info.Cache.WriteError != "" {
		fmt.Fprintf(stderr, "modelship: warning: %s\n", info.Cache.WriteError)
	}
	return info, opt, cacheNote, err
}

func printInspect(out io.Writer, info *checkpoint.Info, opt checkpoint.Options, noCache bool, cacheNote string) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(w, "%s\t%s\n", k, fmt.Sprintf(format, a...)) }
	row("Path:", "%s", info.Path)
	row("Format:", "%s", info.Format)
	row("Architecture:", "%s", info.Architecture)
	row("Parameters:", "%s", checkpoint.FormatParameters(info.Parameters))
	row("Dtype:", "%s", dtypeSummary(info))
	if info.TorchDtype != "" {
		row("torch_dtype:", "%s", info.TorchDtype)
	}
	row("Weight bytes:", "%s (%s bytes) in %d tensors, %d weight file(s)", progress.FormatBytes(info.WeightBytes), groupDigits(info.WeightBytes), info.Tensors, len(info.WeightFiles))
	if info.MaxContext > 0 {
		row("Max context:", "%s tokens", groupDigits(int64(info.MaxContext)))
	} else {
		row("Max context:", "unknown")
	}
	sh := info.Shape
	row("Shape:", "%d layers, hidden %d, %d heads (%d KV, head_dim %d), intermediate %d, vocab %d",
		sh.NumLayers, sh.HiddenSize, sh.NumAttentionHeads, sh.NumKVHeads, sh.HeadDim, sh.IntermediateSize, sh.VocabSize)
	if info.Digest != "" {
		row("Digest:", "%s", info.Digest)
	}
	switch {
	case !opt.Hash:
		row("Digest cache:", "not used (--no-hash)")
	case noCache:
		row("Digest cache:", "disabled (--no-cache); hashed %d file(s), %s", info.Cache.Hashed, progress.FormatBytes(info.Cache.HashedBytes))
	case opt.Cache == nil:
		row("Digest cache:", "unavailable (%s)", cacheNote)
	default:
		c := info.Cache
		use := "not used: every file hashed"
		if c.Hits > 0 && c.Hashed == 0 {
			use = "used for every file"
		} else if c.Hits > 0 {
			use = fmt.Sprintf("used for %d file(s)", c.Hits)
		}
		row("Digest cache:", "%s (%s; hashed %d file(s), %s)", c.Dir, use, c.Hashed, progress.FormatBytes(c.HashedBytes))
	}
	w.Flush()
	fmt.Fprintf(out, "\nFiles (%d, %s):\n", len(info.Files), progress.FormatBytes(totalSize(info.Files)))
	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, f := range info.Files {
		sum := f.SHA256
		if sum == "" {
			sum = "-"
		}
		fmt.Fprintf(w, "  %s\t  %s\t%s\n", sum, progress.FormatBytes(f.Size), "  "+f.Path)
	}
	w.Flush()
}

func dtypeSummary(info *checkpoint.Info) string {
	if len(info.Dtypes) <= 1 {
		return info.Dtype
	}
	type kv struct {
		d string
		n int64
	}
	var l []kv
	for d, n := range info.Dtypes {
		l = append(l, kv{d, n})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].n > l[j].n || l[i].n == l[j].n && l[i].d < l[j].d })
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = fmt.Sprintf("%s %.1f%%", e.d, 100*float64(e.n)/float64(max(info.Parameters, 1)))
	}
	return info.Dtype + " (" + strings.Join(parts, ", ") + " of parameters)"
}

func totalSize(files []checkpoint.File) int64 {
	var n int64
	for _, f := range files {
		n += f.Size
	}
	return n
}

func groupDigits(n int64) string { return checkpoint.GroupDigits(n) }
