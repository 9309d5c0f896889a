// Package ecsref checks log lines against the Elastic Common Schema field
// reference: the name and type of every ECS field of the version
// logging.ECSVersion names, taken from the elastic/ecs repository's
// generated/csv/fields.csv (ecs_fields_8.11.0.txt says which commit). The
// tests of modelship's loggers use it on the lines those loggers really
// write.
package ecsref

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

//go:embed ecs_fields_8.11.0.txt
var reference string

// Version is the ECS version of the reference.
const Version = "8.11.0"

// Custom is the prefix of modelship's own fields, which ECS leaves to
// users (ECS defines no "modelship" field set).
const Custom = "modelship."

// Fields maps every ECS field name to its type (keyword, long, date...).
func Fields() map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(reference, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, typ, _ := strings.Cut(line, " ")
		m[name] = typ
	}
	return m
}

// jsonKind is the JSON type an ECS type takes in a log line: "string",
// "number", "bool" or "object".
func jsonKind(ecsType string) string {
	switch ecsType {
	case "long", "integer", "short", "byte", "unsigned_long", "float", "double", "half_float", "scaled_float":
		return "number"
	case "boolean":
		return "bool"
	case "object", "flattened", "nested", "geo_point":
		return "object"
	}
	return "string" // keyword, constant_keyword, wildcard, match_only_text, text, date, ip, version
}

// kindOf is the JSON type of a decoded value.
func kindOf(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case float64, json.Number:
		return "number"
	case bool:
		return "bool"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	return "null"
}

// Checker checks the lines of one or more loggers: field names, their JSON
// types, and that no name is both a value and the parent of another name
// (Elasticsearch maps "a.b" as an object inside "a": a line with "a" as a
// value and one with "a.b" cannot share an index).
type Checker struct {
	ecs   map[string]string
	kinds map[string]string // every name seen -> its JSON type
}

// NewChecker returns a Checker over the ECS reference.
func NewChecker() *Checker {
	return &Checker{ecs: Fields(), kinds: map[string]string{}}
}

// Line checks one JSON log line: every field outside modelship.* must be an
// ECS field with a compatible JSON type, every modelship.* field must not
// be an ECS name, and a name must keep one JSON type across the lines
// checked. Nested objects are checked by their dotted names.
func (c *Checker) Line(line []byte) []error {
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		return []error{fmt.Errorf("not a JSON object: %v: %s", err, line)}
	}
	var errs []error
	fields := flatten("", m, map[string]any{})
	for _, name := range sortedKeys(fields) {
		if err := c.field(name, fields[name]); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func (c *Checker) field(name string, v any) error {
	kind := kindOf(v)
	if kind == "array" || kind == "null" {
		return fmt.Errorf("%s: a JSON %s; log lines carry scalar values", name, kind)
	}
	if prev, ok := c.kinds[name]; ok && prev != kind {
		return fmt.Errorf("%s: a JSON %s here, a %s on another line (Elasticsearch maps a field once)", name, kind, prev)
	}
	c.kinds[name] = kind
	if strings.HasPrefix(name, Custom) {
		if typ, ok := c.ecs[name]; ok {
			return fmt.Errorf("%s: custom field clashes with the ECS field of type %s", name, typ)
		}
		return nil
	}
	typ, ok := c.ecs[name]
	if !ok {
		return fmt.Errorf("%s: not an ECS %s field and not under %s", name, Version, Custom)
	}
	if want := jsonKind(typ); want != kind {
		return fmt.Errorf("%s: a JSON %s, but ECS type %s wants a JSON %s", name, kind, typ, want)
	}
	return nil
}

// Conflicts lists the names seen both as a value and as the parent of
// another name, over every line checked so far.
func (c *Checker) Conflicts() []error {
	var errs []error
	for _, name := range sortedKeys(c.kinds) {
		for p := parent(name); p != ""; p = parent(p) {
			if _, ok := c.kinds[p]; ok {
				errs = append(errs, fmt.Errorf("%s is a value on one line and the parent of %s on another", p, name))
			}
		}
	}
	return errs
}

// Names are the field names seen so far.
func (c *Checker) Names() []string { return sortedKeys(c.kinds) }

func parent(name string) string {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return ""
	}
	return name[:i]
}

// flatten puts the leaves of m into out under their dotted names.
func flatten(prefix string, m map[string]any, out map[string]any) map[string]any {
	for k, v := range m {
		name := k
		if prefix != "" {
			name = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
			flatten(name, sub, out)
			continue
		}
		out[name] = v
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
