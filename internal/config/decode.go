package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is one problem in a config file, with where it is.
type Error struct {
	File   string
	Line   int // 1-based; 0 when the problem has no place (a missing key)
	Column int
	Path   string // dotted key path, e.g. serving.engine
	Msg    string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads and validates a config file and fills in defaults.
func Load(file string) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", file, err)
	}
	return Parse(file, data)
}

// Parse reads a config from data; file is used in messages and to resolve
// relative paths. Every problem found is reported, joined.
func Parse(file string, data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlSyntaxError(file, err)
	}
	d := &decoder{file: file, nodes: map[string]*yaml.Node{}}
	c := &Config{File: file}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, &Error{File: file, Msg: "empty file: expected a mapping with at least model.path"}
	}
	d.decode(root.Content[0], reflect.ValueOf(c).Elem(), "")
	if len(d.errs) == 0 {
		c.applyDefaults(d.given)
		c.validate(d)
	}
	if len(d.errs) > 0 {
		return nil, errors.Join(d.errs...)
	}
	c.pos = make(map[string][2]int, len(d.nodes))
	for p, n := range d.nodes {
		c.pos[p] = [2]int{n.Line, n.Column}
	}
	return c, nil
}

// yamlSyntaxError turns yaml.v3's "yaml: line 3: ..." into file:3: ....
func yamlSyntaxError(file string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.Index(rest, ":"); i > 0 {
			if n, convErr := strconv.Atoi(rest[:i]); convErr == nil {
				return &Error{File: file, Line: n, Column: 1, Msg: "invalid YAML: " + strings.TrimSpace(rest[i+1:])}
			}
		}
	}
	return &Error{File: file, Msg: "invalid YAML: " + msg}
}

// decoder maps YAML nodes onto the Config structs by their yaml tags,
// refusing anything the structs do not name, and remembers where each value
// was so later checks can point at it.
type decoder struct {
	file  string
	nodes map[string]*yaml.Node
	errs  []error
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	e := &Error{File: d.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

// at returns the node a path was read from, or the nearest parent's.
func (d *decoder) at(path string) *yaml.Node {
	for {
		if n, ok := d.nodes[path]; ok {
			return n
		}
		i := strings.LastIndex(path, ".")
		if i < 0 {
			return nil
		}
		path = path[:i]
	}
}

// given reports whether the file gives a value (not null) at path: a
// default must not hide an explicit 0 that is out of range.
func (d *decoder) given(path string) bool {
	n, ok := d.nodes[path]
	return ok && !(n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var (
	durationType   = reflect.TypeOf(Duration(0))
	secretType     = reflect.TypeOf(Secret{})
	canaryStepType = reflect.TypeOf(CanaryStep{})
)

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.nodes[path] = n
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // leave the zero value; defaults fill it
	}
	switch v.Type() {
	case durationType:
		if !d.scalar(n, path, "a duration like 90s") {
			return
		}
		var dur Duration
		if err := dur.set(n.Value); err != nil {
			d.errorf(n, path, "%v", err)
			return
		}
		if dur < 0 {
			d.errorf(n, path, "expected a duration of zero or more, got %s", n.Value)
			return
		}
		v.Set(reflect.ValueOf(dur))
		return
	case secretType:
		if !d.scalar(n, path, "a secret reference (env:NAME or file:PATH)") {
			return
		}
		s, err := ParseSecret(n.Value)
		if err != nil {
			d.errorf(n, path, "%v", err)
			return
		}
		v.Set(reflect.ValueOf(s))
		return
	case canaryStepType: // a percent alone, or {percent, bake, pause}
		if n.Kind == yaml.ScalarNode {
			d.decode(n, v.FieldByName("Percent"), path)
			return
		}
		if n.Kind != yaml.MappingNode {
			d.errorf(n, path, "expected a percent like 25 or {percent: 25, bake: 2m, pause: true}, got %s", kindName(n))
			return
		}
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, path, "expected a mapping, got %s", kindName(n))
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				d.errorf(k, path, "expected a string key, got %s", kindName(k))
				continue
			}
			if v.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
				d.errorf(k, join(path, k.Value), "key given twice")
				continue
			}
			elem := reflect.New(v.Type().Elem()).Elem()
			target := elem
			if elem.Kind() == reflect.Pointer {
				elem.Set(reflect.New(elem.Type().Elem()))
				target = elem.Elem()
			}
			d.nodes[join(path, k.Value)] = k
			d.decode(val, target, join(path, k.Value))
			v.SetMapIndex(reflect.ValueOf(k.Value), elem)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "expected a list, got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		d.decode(n, p.Elem(), path)
		v.Set(p)
	case reflect.String:
		if d.scalar(n, path, "a string") {
			v.SetString(n.Value)
		}
	case reflect.Int:
		if !d.scalar(n, path, "an integer") {
			return
		}
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if err != nil || n.Tag != "!!int" {
			d.errorf(n, path, "expected an integer, got %q", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		if !d.scalar(n, path, "a number") {
			return
		}
		f, err := strconv.ParseFloat(n.Value, 64)
		if err != nil || (n.Tag != "!!int" && n.Tag != "!!float") {
			d.errorf(n, path, "expected a number, got %q", n.Value)
			return
		}
		v.SetFloat(f)
	case reflect.Bool:
		if !d.scalar(n, path, "true or false") {
			return
		}
		if n.Tag != "!!bool" {
			d.errorf(n, path, "expected true or false, got %q", n.Value)
			return
		}
		v.SetBool(n.Value == "true")
	default:
		panic("config: unsupported field kind " + v.Kind().String())
	}
}

func (d *decoder) scalar(n *yaml.Node, path, want string) bool {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "expected %s, got %s", want, kindName(n))
		return false
	}
	return true
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", kindName(n))
		return
	}
	fields := map[string][]int{}
	var names []string
	var collect func(t reflect.Type, index []int)
	collect = func(t reflect.Type, index []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")
			at := append(slices.Clone(index), i)
			if f.Anonymous && slices.Contains(tag[1:], "inline") && f.Type.Kind() == reflect.Struct {
				collect(f.Type, at)
				continue
			}
			if tag[0] == "" || tag[0] == "-" {
				continue
			}
			fields[tag[0]] = at
			names = append(names, tag[0])
		}
	}
	collect(v.Type(), nil)
	sort.Strings(names)
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		fi, ok := fields[k.Value]
		if !ok {
			where := path
			if where == "" {
				where = "the top level"
			}
			d.errorf(k, join(path, k.Value), "unknown key %q in %s (expected one of: %s)", k.Value, where, strings.Join(names, ", "))
			continue
		}
		if seen[k.Value] {
			d.errorf(k, join(path, k.Value), "key given twice")
			continue
		}
		seen[k.Value] = true
		d.nodes[join(path, k.Value)] = k
		d.decode(val, v.FieldByIndex(fi), join(path, k.Value))
	}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}
