package logging

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// Redacted replaces a secret in log output.
const Redacted = "[REDACTED]"

// MinSecretLen is the shortest value a Redactor registers.
const MinSecretLen = 4

// Redactor holds secret values and removes them from text. It is safe for
// concurrent use.
type Redactor struct {
	mu     sync.RWMutex
	values []string // longest first, so a secret containing another goes whole
	gen    uint64   // bumped by Add; handlers rebuild their cached attrs
}

// Default is the process-wide Redactor loggers use unless told otherwise.
var Default = NewRedactor()

// Redact registers secret values with Default.
func Redact(values ...string) { Default.Add(values...) }

// NewRedactor makes a Redactor holding values.
func NewRedactor(values ...string) *Redactor {
	r := &Redactor{}
	r.Add(values...)
	return r
}

// Add registers values (and their URL-escaped forms). Values shorter than
// MinSecretLen are ignored.
func (r *Redactor) Add(values ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range values {
		if len(v) < MinSecretLen {
			continue
		}
		for _, f := range []string{v, url.QueryEscape(v), url.PathEscape(v)} {
			if !slices.Contains(r.values, f) {
				r.values = append(r.values, f)
			}
		}
	}
	slices.SortFunc(r.values, func(a, b string) int { return len(b) - len(a) })
	r.gen++
}

// Values are the registered values (for masking them elsewhere, e.g.
// GitHub Actions' ::add-mask::).
func (r *Redactor) Values() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.values)
}

func (r *Redactor) generation() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.gen
}

// String returns s with every registered value replaced by Redacted.
func (r *Redactor) String(s string) string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, v := range r.values {
		if strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, Redacted)
		}
	}
	return s
}

// Attr returns a with every registered value replaced in its key and value,
// groups included. Errors and other values that would print a secret become
// their redacted text.
func (r *Redactor) Attr(a slog.Attr) slog.Attr {
	a.Key = r.String(a.Key)
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(r.String(v.String()))
	case slog.KindGroup:
		g := v.Group()
		out := make([]slog.Attr, len(g))
		for i, x := range g {
			out[i] = r.Attr(x)
		}
		a.Value = slog.GroupValue(out...)
	case slog.KindAny:
		x := v.Any()
		if err, ok := x.(error); ok {
			a.Value = slog.StringValue(r.String(err.Error()))
			break
		}
		printed := fmt.Sprintf("%+v", x)
		if r.String(printed) != printed {
			a.Value = slog.StringValue(r.String(printed))
			break
		}
		if b, err := json.Marshal(x); err == nil && r.String(string(b)) != string(b) {
			a.Value = slog.StringValue(r.String(string(b)))
			break
		}
		a.Value = v
	default:
		a.Value = v
	}
	return a
}

// NewHandler wraps h so that every registered secret is replaced by
// Redacted in messages and attributes, including those added with
// WithAttrs before the secret was registered.
func NewHandler(h slog.Handler, r *Redactor) slog.Handler {
	return newHandler(h, r, nil)
}

// newHandler is NewHandler that also adds late's attributes (redacted) to
// h before the WithAttrs and WithGroup calls made on the result.
func newHandler(h slog.Handler, r *Redactor, late *Fields) slog.Handler {
	return &handler{base: h, red: r, late: late, cache: &cache{}}
}

// op is one WithGroup (group != "") or WithAttrs call, kept unredacted so it
// can be redacted again when secrets are added.
type op struct {
	group string
	attrs []slog.Attr
}

type handler struct {
	base  slog.Handler
	red   *Redactor
	late  *Fields
	ops   []op
	cache *cache
}

type cache struct {
	mu           sync.Mutex
	gen, lateGen uint64
	h            slog.Handler
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.base.Enabled(ctx, l) }

// inner is base with the late fields and the ops applied, redacted with the
// current secrets.
func (h *handler) inner() slog.Handler {
	gen := h.red.generation()
	h.cache.mu.Lock()
	defer h.cache.mu.Unlock()
	if h.cache.h != nil && h.cache.gen == gen && h.cache.lateGen == h.late.generation() {
		return h.cache.h
	}
	late, lateGen := h.late.snapshot()
	in := h.base
	if len(late) > 0 {
		for i, a := range late {
			late[i] = h.red.Attr(a)
		}
		in = in.WithAttrs(late)
	}
	for _, o := range h.ops {
		if o.group != "" {
			in = in.WithGroup(o.group)
			continue
		}
		attrs := make([]slog.Attr, len(o.attrs))
		for i, a := range o.attrs {
			attrs[i] = h.red.Attr(a)
		}
		in = in.WithAttrs(attrs)
	}
	h.cache.h, h.cache.gen, h.cache.lateGen = in, gen, lateGen
	return in
}

func (h *handler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.red.String(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.red.Attr(a))
		return true
	})
	return h.inner().Handle(ctx, out)
}

func (h *handler) with(o op) *handler {
	ops := append(slices.Clone(h.ops), o)
	return &handler{base: h.base, red: h.red, late: h.late, ops: ops, cache: &cache{}}
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	return h.with(op{attrs: slices.Clone(attrs)})
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(op{group: name})
}
