package checkpoint

import "fmt"

// Error is a problem with one file (or the checkpoint path itself). Its
// message reads "checkpoint PATH: problem".
type Error struct {
	Path string // the file, as the caller named it (joined onto the path given to Inspect)
	Err  error
}

func (e *Error) Error() string { return "checkpoint " + e.Path + ": " + e.Err.Error() }

// Unwrap returns the underlying problem.
func (e *Error) Unwrap() error { return e.Err }

func errorf(path, format string, args ...any) error {
	return &Error{Path: path, Err: fmt.Errorf(format, args...)}
}
