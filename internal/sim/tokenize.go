package sim

import (
	"unicode"
	"unicode/utf8"
)

// Tokenize splits text into the simulator's tokens. The tokenizer is
// deterministic and roughly BPE-like, so counts land near what a real
// tokenizer reports for English text:
//
//   - a run of letters or digits is one token, split every 8 characters
//     (long words cost more than one token, as with BPE);
//   - every other non-space character (punctuation, symbols) is one token;
//   - whitespace is glued to the front of the token that follows it (" Paris"),
//     and trailing whitespace is a token of its own.
//
// Concatenating the tokens gives back text exactly, which is how streamed
// chunks reassemble into the non-streamed reply.
func Tokenize(text string) []string {
	var toks []string
	start := 0 // start of the current token (including leading spaces)
	i := 0
	for i < len(text) {
		// leading whitespace belongs to the next token
		for i < len(text) {
			r, n := utf8.DecodeRuneInString(text[i:])
			if !unicode.IsSpace(r) {
				break
			}
			i += n
		}
		if i >= len(text) {
			break
		}
		r, n := utf8.DecodeRuneInString(text[i:])
		if isWord(r) {
			chars := 0
			for i < len(text) && chars < 8 {
				r, n := utf8.DecodeRuneInString(text[i:])
				if !isWord(r) {
					break
				}
				i += n
				chars++
			}
		} else {
			i += n
		}
		toks = append(toks, text[start:i])
		start = i
	}
	if start < len(text) {
		toks = append(toks, text[start:])
	}
	return toks
}

func isWord(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// CountTokens returns the number of tokens of text (see Tokenize).
func CountTokens(text string) int { return len(Tokenize(text)) }
