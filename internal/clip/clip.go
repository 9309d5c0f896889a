// Package clip shortens text for messages, reports and logs: a response
// body in an error, an answer in a report, a reason in a table. What is cut
// is marked with "…", and a cut never splits a UTF-8 sequence.
package clip

import (
	"strings"
	"unicode/utf8"
)

// Ellipsis marks where text was cut.
const Ellipsis = "…"

// Bytes returns s when it is at most n bytes long, else its first n bytes
// (fewer, back to the start of a rune) and Ellipsis.
func Bytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n = max(n, 0)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + Ellipsis
}

// Runes returns s when it has at most n runes, else its first n runes and
// Ellipsis.
func Runes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:max(n, 0)]) + Ellipsis
}

// Line is s on one line, every run of white space (newlines included) one
// space and none at either end, clipped to n runes (Runes).
func Line(s string, n int) string {
	return Runes(strings.Join(strings.Fields(s), " "), n)
}
