// Package atomicfile replaces files whole: the content goes to a
// temporary file in the same directory, synced, which is renamed over the
// target, and the directory is synced so the rename survives a crash. A
// reader sees the old file or the new one, never half of either; a failed
// write leaves the old file as it was.
package atomicfile

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// File is a file being written in place of Path: written through its
// *os.File, it replaces Path on Commit; Abort (or a failed Commit) drops
// it.
type File struct {
	*os.File
	Path string
	done bool
}

// Create starts a replacement of path (its directory created when
// missing).
func Create(path string) (*File, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	return &File{File: tmp, Path: path}, nil
}

// Commit puts the written content in place (mode 0644).
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("writing %s: already committed or aborted", f.Path)
	}
	err := f.Chmod(0o644)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), f.Path)
	}
	if err != nil {
		f.Abort()
		return fmt.Errorf("writing %s: %w", f.Path, err)
	}
	f.done = true
	if d, err := os.Open(filepath.Dir(f.Path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Abort drops the replacement unless it was committed; Path stays as it
// was.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.File.Close()
	os.Remove(f.Name())
}

// Write replaces path with what write writes (mode 0644).
func Write(path string, write func(io.Writer) error) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	bw := bufio.NewWriter(f)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Commit()
}

// WriteFile replaces path with data.
func WriteFile(path string, data []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}
