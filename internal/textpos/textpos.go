// Package textpos turns byte offsets in a file (a JSON decoder's error
// offset, say) into the line and column a person looks for.
package textpos

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// LineCol is the 1-based line and column of byte offset off in data
// (clamped to data).
func LineCol(data []byte, off int64) (line, col int) {
	off = max(0, min(off, int64(len(data))))
	line = 1 + bytes.Count(data[:off], []byte("\n"))
	col = int(off) - bytes.LastIndexByte(data[:off], '\n')
	return line, col
}

// JSONError places err, an error encoding/json returned for data, at the
// line and column of the byte the decoder stopped at (its offset counts the
// bytes read, the bad one included), and says it: err's text, with a type
// error as `field "a.b": expected int, got JSON string`, and an unexpected
// end of input placed just after data's last byte. ok is false when err
// carries no position; msg is then err's text.
func JSONError(data []byte, err error) (line, col int, msg string, ok bool) {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		line, col = stopped(data, se.Offset)
		return line, col, err.Error(), true
	case errors.As(err, &te):
		msg = err.Error()
		if te.Field != "" {
			msg = fmt.Sprintf("field %q: expected %s, got JSON %s", te.Field, te.Type, te.Value)
		}
		line, col = stopped(data, te.Offset)
		return line, col, msg, true
	case errors.Is(err, io.ErrUnexpectedEOF):
		line, col = LineCol(data, int64(len(data)))
		return line, col, "unexpected end of JSON input", true
	}
	return 0, 0, err.Error(), false
}

// stopped is the line and column of the last of the first off bytes of data
// (a decoder's offset counts the bad byte; when that is a newline, the
// position is the start of the next line).
func stopped(data []byte, off int64) (line, col int) {
	line, col = LineCol(data, off)
	return line, max(col-1, 1)
}
