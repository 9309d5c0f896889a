package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	gguf "github.com/gpustack/gguf-parser-go"
)

// Options controls Inspect.
type Options struct {
	// Hash computes every file's SHA-256 and Info.Digest. Without it Inspect
	// still parses and checks every header (config, safetensors, GGUF).
	Hash bool
	// Cache, if not nil, supplies and records file digests.
	Cache *DigestCache
	// Progress, if set, is called with the bytes hashed so far and the total
	// to hash (files served from the cache are not counted). Calls never
	// overlap.
	Progress func(done, total int64)
	// Workers is the number of files hashed in parallel; 0 means
	// runtime.GOMAXPROCS.
	Workers int
}

const (
	configName = "config.json"
	indexName  = "model.safetensors.index.json"
	singleName = "model.safetensors"
)

// entry is one file found under the checkpoint root.
type entry struct {
	rel string // slash-separated
	fi  fs.FileInfo
}

// Inspect recognises and checks the checkpoint at path: a Hugging Face
// directory (config.json + model.safetensors or an index and shards), a
// .gguf file, or a directory holding exactly one .gguf file. Errors are
// *Error naming the offending file.
func Inspect(ctx context.Context, path string, opt Options) (*Info, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, openError(path, err)
	}
	info := &Info{Path: path, Dtypes: map[string]int64{}}
	var root string
	var entries []entry
	if fi.Mode().IsRegular() {
		if !strings.EqualFold(filepath.Ext(path), ".gguf") && !hasGGUFMagic(path) {
			return nil, errorf(path, "not a checkpoint: expected a directory with config.json and model.safetensors, or a .gguf file")
		}
		root = filepath.Dir(path)
		info.Format = FormatGGUF
		if entries, err = ggufFiles(path, fi); err != nil {
			return nil, err
		}
		for _, e := range entries {
			info.WeightFiles = append(info.WeightFiles, e.rel)
		}
		if err := inspectGGUF(path, info); err != nil {
			return nil, err
		}
	} else if fi.IsDir() {
		root = path
		if entries, err = listFiles(path); err != nil {
			return nil, err
		}
		if err := inspectDir(path, entries, info); err != nil {
			return nil, err
		}
	} else {
		return nil, errorf(path, "not a checkpoint: %s is neither a directory nor a regular file", fi.Mode().Type())
	}
	finishDtype(info)

	info.Files = make([]File, len(entries))
	for i, e := range entries {
		info.Files[i] = File{Path: e.rel, Size: e.fi.Size()}
	}
	if opt.Hash {
		if err := hashCheckpoint(ctx, root, entries, info, opt); err != nil {
			return nil, err
		}
	}
	return info, nil
}

// ggufFiles returns the entries of a GGUF file: itself, or for a split
// model (NAME-0000K-of-0000N.gguf) every split, which must all exist.
func ggufFiles(path string, fi fs.FileInfo) ([]entry, error) {
	splits := gguf.CompleteShardGGUFFilename(filepath.Base(path))
	if splits == nil {
		return []entry{{rel: filepath.Base(path), fi: fi}}, nil
	}
	var out []entry
	for i, s := range splits {
		p := filepath.Join(filepath.Dir(path), s)
		sfi, err := os.Stat(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, errorf(p, "does not exist (split %d of %d of %s)", i+1, len(splits), filepath.Base(path))
			}
			return nil, openError(p, err)
		}
		if !sfi.Mode().IsRegular() {
			return nil, errorf(p, "is not a regular file (%s)", typeName(sfi.Mode()))
		}
		out = append(out, entry{rel: s, fi: sfi})
	}
	return out, nil
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]bool{}
	for _, x := range a {
		m[x] = true
	}
	for _, x := range b {
		if !m[x] {
			return false
		}
	}
	return true
}

// listFiles returns every regular file under root, sorted, skipping names
// that start with "." (.git, .cache/huggingface). Symlinks to files are
// followed (the Hugging Face cache links snapshot files to blobs); symlinks to
// directories are skipped. A dangling symlink or a special file is an error.
func listFiles(root string) ([]entry, error) {
	var out []entry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return openError(p, err)
		}
		if p == root {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		fi, err := os.Stat(p)
		if err != nil {
			if d.Type()&fs.ModeSymlink != 0 && errors.Is(err, fs.ErrNotExist) {
				target, _ := os.Readlink(p)
				return errorf(p, "dangling symlink to %s", target)
			}
			return openError(p, err)
		}
		if fi.IsDir() {
			return nil // symlink to a directory
		}
		if !fi.Mode().IsRegular() {
			return errorf(p, "is not a regular file (%s)", typeName(fi.Mode()))
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if !validDigestPath(rel) {
			return errorf(p, "file name contains a tab or newline")
		}
		out = append(out, entry{rel: rel, fi: fi})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rel < out[j].rel })
	return out, nil
}

func inspectDir(dir string, entries []entry, info *Info) error {
	has := map[string]bool{}
	var ggufs []string
	for _, e := range entries {
		has[e.rel] = true
		if !strings.Contains(e.rel, "/") && strings.EqualFold(filepath.Ext(e.rel), ".gguf") {
			ggufs = append(ggufs, e.rel)
		}
	}
	isHF := false
	for _, n := range []string{configName, indexName, singleName} {
		if _, err := os.Lstat(filepath.Join(dir, n)); err == nil {
			isHF = true
		}
	}
	if !isHF {
		if len(ggufs) > 1 {
			// Accept the splits of one model (NAME-00001-of-0000N.gguf).
			if splits := gguf.CompleteShardGGUFFilename(ggufs[0]); splits != nil && sameSet(splits, ggufs) {
				info.Format = FormatGGUF
				info.WeightFiles = splits
				return inspectGGUF(filepath.Join(dir, splits[0]), info)
			}
		}
		switch len(ggufs) {
		case 1:
			info.Format = FormatGGUF
			info.WeightFiles = ggufs
			return inspectGGUF(filepath.Join(dir, ggufs[0]), info)
		case 0:
			return errorf(dir, "not a checkpoint: no config.json, model.safetensors, model.safetensors.index.json or .gguf file")
		default:
			return errorf(dir, "holds %d .gguf files (%s); name the one to inspect", len(ggufs), strings.Join(ggufs, ", "))
		}
	}
	info.Format = FormatSafetensors
	cfgPath := filepath.Join(dir, configName)
	data, err := readRegular(cfgPath)
	if err != nil {
		return err
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return &Error{Path: cfgPath, Err: err}
	}
	info.Architecture = cfg.Architecture
	info.Shape = cfg.Shape
	info.MaxContext = cfg.MaxContext
	info.TorchDtype = cfg.TorchDtype

	indexPath := filepath.Join(dir, indexName)
	if _, err := os.Lstat(indexPath); err == nil {
		return inspectShards(dir, indexPath, has, info)
	}
	single := filepath.Join(dir, singleName)
	if _, err := os.Lstat(single); err != nil {
		return errorf(dir, "has config.json but neither model.safetensors nor model.safetensors.index.json")
	}
	if err := regular(single); err != nil {
		return err
	}
	st, err := ReadSafetensorsHeader(single)
	if err != nil {
		return err
	}
	info.WeightFiles = []string{singleName}
	addTensors(info, st)
	return nil
}

func inspectShards(dir, indexPath string, has map[string]bool, info *Info) error {
	data, err := readRegular(indexPath)
	if err != nil {
		return err
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		return errorf(indexPath, "not valid JSON with a weight_map of tensor name to shard file: %v", err)
	}
	if len(idx.WeightMap) == 0 {
		return errorf(indexPath, "weight_map is missing or empty")
	}
	byShard := map[string][]string{}
	for tensor, shard := range idx.WeightMap {
		byShard[shard] = append(byShard[shard], tensor)
	}
	shards := make([]string, 0, len(byShard))
	for s := range byShard {
		shards = append(shards, s)
	}
	sort.Strings(shards)
	seen := map[string]string{}
	for _, shard := range shards {
		clean := filepath.ToSlash(filepath.Clean(filepath.FromSlash(shard)))
		if filepath.IsAbs(shard) || clean == ".." || strings.HasPrefix(clean, "../") {
			return errorf(indexPath, "shard %q is outside the checkpoint directory", shard)
		}
		p := filepath.Join(dir, filepath.FromSlash(clean))
		if !has[clean] {
			if _, err := os.Lstat(p); err != nil {
				return errorf(indexPath, "names shard %q, which does not exist", shard)
			}
			if err := regular(p); err != nil {
				return err
			}
		}
		st, err := ReadSafetensorsHeader(p)
		if err != nil {
			return err
		}
		inShard := map[string]bool{}
		for _, t := range st.Tensors {
			if other, dup := seen[t.Name]; dup {
				return errorf(p, "tensor %q is also in %s", t.Name, other)
			}
			seen[t.Name] = clean
			inShard[t.Name] = true
		}
		names := byShard[shard]
		sort.Strings(names)
		for _, n := range names {
			if !inShard[n] {
				return errorf(indexPath, "maps tensor %q to %s, which does not contain it", n, shard)
			}
		}
		info.WeightFiles = append(info.WeightFiles, clean)
		addTensors(info, st)
	}
	return nil
}

func addTensors(info *Info, st *Safetensors) {
	for _, t := range st.Tensors {
		n := t.Elements()
		info.Parameters += n
		info.Dtypes[t.Dtype] += n
		info.Tensors++
	}
	info.WeightBytes += st.DataLen
}

// finishDtype sets Info.Dtype to the dtype holding the most parameters.
func finishDtype(info *Info) {
	best := int64(-1)
	for d, n := range info.Dtypes {
		if n > best || n == best && d < info.Dtype {
			info.Dtype, best = d, n
		}
	}
}

func hashCheckpoint(ctx context.Context, root string, entries []entry, info *Info, opt Options) error {
	rep := &CacheReport{}
	info.Cache = rep
	var absRoot string
	cached := map[string]cacheEntry{}
	if opt.Cache != nil {
		rep.Dir = opt.Cache.Dir()
		a, err := filepath.Abs(root)
		if err != nil {
			return errorf(root, "%v", err)
		}
		absRoot = a
		cached = opt.Cache.load(absRoot)
	}
	keys := make([]cacheEntry, len(entries))
	var jobs []hashJob
	for i, e := range entries {
		abs := filepath.Join(absRoot, filepath.FromSlash(e.rel))
		keys[i] = cacheEntry{Path: abs, Size: e.fi.Size(), MtimeNs: e.fi.ModTime().UnixNano(), Inode: inode(e.fi)}
		if c, ok := cached[abs]; ok && c.Size == keys[i].Size && c.MtimeNs == keys[i].MtimeNs && c.Inode == keys[i].Inode {
			info.Files[i].SHA256 = c.SHA256
			rep.Hits++
			continue
		}
		jobs = append(jobs, hashJob{
			abs:     filepath.Join(root, filepath.FromSlash(e.rel)),
			display: filepath.Join(root, filepath.FromSlash(e.rel)),
			size:    e.fi.Size(),
			sum:     &info.Files[i].SHA256,
		})
		rep.Hashed++
		rep.HashedBytes += e.fi.Size()
	}
	if err := hashFiles(ctx, jobs, opt.Workers, opt.Progress); err != nil {
		return err
	}
	info.Digest = Digest(info.Files)
	if opt.Cache != nil && (len(jobs) > 0 || len(cached) != len(entries)) {
		for i := range keys {
			keys[i].SHA256 = info.Files[i].SHA256
		}
		if err := opt.Cache.store(absRoot, keys); err != nil {
			rep.WriteError = err.Error()
		}
	}
	return nil
}

// readRegular reads a small file that must be a regular file.
func readRegular(p string) ([]byte, error) {
	if err := regular(p); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, openError(p, err)
	}
	return data, nil
}

// regular checks that p exists and is a regular file (after symlinks).
func regular(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		if lfi, lerr := os.Lstat(p); lerr == nil && lfi.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			return errorf(p, "dangling symlink to %s", target)
		}
		return openError(p, err)
	}
	if fi.IsDir() {
		return errorf(p, "is a directory, expected a file")
	}
	if !fi.Mode().IsRegular() {
		return errorf(p, "is not a regular file (%s)", typeName(fi.Mode()))
	}
	return nil
}

func hasGGUFMagic(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [4]byte
	_, err = f.ReadAt(b[:], 0)
	return err == nil && string(b[:]) == "GGUF"
}

// openError turns an os error for p into an *Error with a plain message.
func openError(p string, err error) error {
	var ce *Error
	if errors.As(err, &ce) {
		return err
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return errorf(p, "does not exist")
	case errors.Is(err, fs.ErrPermission):
		return errorf(p, "cannot be read: permission denied")
	case errors.Is(err, syscall.EISDIR):
		return errorf(p, "is a directory, expected a file")
	}
	return errorf(p, "cannot be read: %v", unwrapPath(err))
}

// unwrapPath strips the path from *fs.PathError so messages do not repeat it.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func typeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return fmt.Sprint(m.Type())
}
