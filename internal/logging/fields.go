package logging

import (
	"log/slog"
	"strings"
	"sync"
)

// Fields are attributes on every JSON line of the loggers New makes with
// them (Options.Fields) that are known only after the logger is made, such
// as a model digest computed in the background: lines logged after Set
// carry the value, lines before it lack the key. They come right after
// Options.Attrs, outside any group.
type Fields struct {
	mu    sync.RWMutex
	gen   uint64
	attrs []slog.Attr
}

// Set puts key=value on every later line, replacing an earlier value of
// key.
func (f *Fields) Set(key, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen++
	for i, a := range f.attrs {
		if a.Key == key {
			f.attrs[i].Value = slog.StringValue(value)
			return
		}
	}
	f.attrs = append(f.attrs, slog.String(key, value))
}

// generation is a number that changes with every Set (0 for nil).
func (f *Fields) generation() uint64 {
	if f == nil {
		return 0
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.gen
}

// snapshot is a copy of the current attributes and their generation.
func (f *Fields) snapshot() ([]slog.Attr, uint64) {
	if f == nil {
		return nil, 0
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return append([]slog.Attr(nil), f.attrs...), f.gen
}

// ecsAliases are the ECS names of the bare keys the serving proxy and the
// gateway log (see Options.Namespace).
var ecsAliases = map[string]string{
	"err":    KeyError,
	"error":  KeyError,
	"method": "http.request.method",
	"path":   "url.path",
	"pid":    "process.pid",
}

// namespaced is ecsAttr that also moves a bare top-level key (one without
// a dot) to its ECS name (ecsAliases) or else under ns ("modelship.serve":
// "took" becomes "modelship.serve.took"). Dotted keys are already named.
func namespaced(ns string) func([]string, slog.Attr) slog.Attr {
	return func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) > 0 {
			return a
		}
		switch a.Key {
		case slog.TimeKey, slog.LevelKey, slog.MessageKey:
			return ecsAttr(groups, a)
		}
		if strings.Contains(a.Key, ".") || a.Key == "" {
			return a
		}
		if k, ok := ecsAliases[a.Key]; ok {
			a.Key = k
		} else {
			a.Key = ns + "." + a.Key
		}
		return a
	}
}
