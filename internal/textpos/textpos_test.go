package textpos

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestLineCol(t *testing.T) {
	data := []byte("ab\ncd\n\nef")
	for _, c := range []struct {
		off       int64
		line, col int
	}{{0, 1, 1}, {1, 1, 2}, {3, 2, 1}, {4, 2, 2}, {7, 4, 1}, {9, 4, 3}, {99, 4, 3}, {-5, 1, 1}} {
		if l, col := LineCol(data, c.off); l != c.line || col != c.col {
			t.Errorf("LineCol(%d) = %d:%d, want %d:%d", c.off, l, col, c.line, c.col)
		}
	}
}

func TestJSONError(t *testing.T) {
	for _, c := range []struct {
		data string
		into any
		want string // line:col msg, or msg alone when there is no position
	}{
		{"{\n  \"a\": 1,,\n}", new(any), `2:10 invalid character ',' looking for beginning of object key string`},
		{`{"a": {"b": "many"}}`, new(struct{ A struct{ B int } }), `1:18 field "A.B": expected int, got JSON string`},
		{"[1,\n", new(any), `2:1 unexpected end of JSON input`},
	} {
		err := json.Unmarshal([]byte(c.data), c.into)
		line, col, msg, ok := JSONError([]byte(c.data), err)
		if got := fmt.Sprintf("%d:%d %s", line, col, msg); !ok || got != c.want {
			t.Errorf("JSONError(%q) = %s, %v; want %s", c.data, got, ok, c.want)
		}
	}
	dec := json.NewDecoder(strings.NewReader("[1,"))
	var v any
	err := dec.Decode(&v)
	if line, col, msg, ok := JSONError([]byte("[1,"), err); !ok || line != 1 || col != 4 || msg != "unexpected end of JSON input" {
		t.Errorf("decoder's unexpected EOF: %d:%d %q %v", line, col, msg, ok)
	}
	if _, _, msg, ok := JSONError(nil, errors.New("read failed")); ok || msg != "read failed" {
		t.Errorf("no position: %q %v", msg, ok)
	}
}
