// Package textpos turns byte offsets in a file (a JSON decoder's error
// offset, say) into the line and column a person looks for.
package textpos

import "bytes"

// LineCol is the 1-based line and column of byte offset off in data
// (clamped to data).
func LineCol(data []byte, off int64) (line, col int) {
	off = max(0, min(off, int64(len(data))))
	line = 1 + bytes.Count(data[:off], []byte("\n"))
	col = int(off) - bytes.LastIndexByte(data[:off], '\n')
	return line, col
}
