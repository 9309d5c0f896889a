package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"unicode"
)

// Message is one chat message of a prompt.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Prompt is the input of one request. A chat target sends Messages (or, when
// there are none, Text as a single user message); a completions target sends
// Text (or, when empty, the messages' contents joined by newlines).
type Prompt struct {
	Text     string    `json:"prompt,omitempty"`
	Messages []Message `json:"messages,omitempty"`
	// MaxTokens overrides the target's max_tokens for this prompt (ShareGPT's
	// reply length, a synthetic output length); 0 keeps the target's.
	MaxTokens int `json:"max_tokens,omitempty"`
	// InputTokens is the prompt's length in tokens when known (synthetic
	// prompts); 0 when unknown.
	InputTokens int `json:"input_tokens,omitempty"`
}

// maxLine bounds one JSONL line (a prompt with a long context).
const maxLine = 64 << 20

// LoadPrompts reads a prompt file: JSON lines (one {"prompt": ...} or
// {"messages": [...]} object per line, the article's benchmark_prompts.jsonl)
// or a ShareGPT-style JSON array of {"conversations": [...]}. The format is
// told by the first non-space byte: '[' is ShareGPT, '{' is JSON lines.
func LoadPrompts(path string) ([]Prompt, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParsePrompts(path, data)
}

// ParsePrompts is LoadPrompts on bytes already read; name is used in errors.
func ParsePrompts(name string, data []byte) ([]Prompt, error) {
	t := bytes.TrimLeft(data, " \t\r\n\ufeff")
	if len(t) > 0 && t[0] == '[' {
		return ParseShareGPT(name, data)
	}
	return ParseJSONL(name, bytes.NewReader(data))
}

// jsonlLine is one line of a JSONL prompt file.
type jsonlLine struct {
	Prompt    *string        `json:"prompt"`
	Messages  []jsonlMessage `json:"messages"`
	MaxTokens *int           `json:"max_tokens"`
}

type jsonlMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// ParseJSONL reads JSON lines of {"prompt": "..."} or {"messages": [...]}
// (an optional "max_tokens" per line). Blank lines are skipped; every other
// line must be one such object. Errors name name:line.
func ParseJSONL(name string, r io.Reader) ([]Prompt, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var out []Prompt
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if line == 1 {
			b = bytes.TrimPrefix(b, []byte("\ufeff"))
		}
		if len(b) == 0 {
			continue
		}
		p, err := parseJSONLLine(b)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%s:%d: line longer than %d MiB", name, line+1, maxLine>>20)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no prompts (expected one {\"prompt\": ...} or {\"messages\": [...]} object per line)", name)
	}
	return out, nil
}

func parseJSONLLine(b []byte) (Prompt, error) {
	if b[0] != '{' {
		return Prompt{}, errors.New(`expected a JSON object {"prompt": ...} or {"messages": [...]}`)
	}
	var l jsonlLine
	if err := json.Unmarshal(b, &l); err != nil {
		return Prompt{}, fmt.Errorf("invalid JSON: %w", jsonErr(err))
	}
	var p Prompt
	switch {
	case l.Prompt != nil && l.Messages != nil:
		return p, errors.New(`both "prompt" and "messages": expected one of them`)
	case l.Prompt != nil:
		if strings.TrimSpace(*l.Prompt) == "" {
			return p, errors.New(`"prompt" is empty`)
		}
		p.Text = *l.Prompt
	case l.Messages != nil:
		if len(l.Messages) == 0 {
			return p, errors.New(`"messages" is empty`)
		}
		for i, m := range l.Messages {
			if m.Role == "" {
				return p, fmt.Errorf(`messages[%d]: missing "role"`, i)
			}
			c, err := messageText(m.Content)
			if err != nil {
				return p, fmt.Errorf("messages[%d].content: %w", i, err)
			}
			p.Messages = append(p.Messages, Message{Role: m.Role, Content: c})
		}
	default:
		return p, errors.New(`expected a "prompt" string or a "messages" list`)
	}
	if l.MaxTokens != nil {
		if *l.MaxTokens < 1 {
			return p, fmt.Errorf(`"max_tokens" must be at least 1, got %d`, *l.MaxTokens)
		}
		p.MaxTokens = *l.MaxTokens
	}
	return p, nil
}

// messageText accepts a content string or OpenAI's list of parts, keeping the
// text parts.
func messageText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", errors.New("missing; expected a string")
	}
	if raw[0] == '"' {
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New(`expected a string or a list of {"type": "text", "text": ...} parts`)
	}
	var sb strings.Builder
	for _, pt := range parts {
		if pt.Type == "text" {
			sb.WriteString(pt.Text)
		}
	}
	return sb.String(), nil
}

// jsonErr shortens encoding/json's messages a little.
func jsonErr(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%v (byte %d)", se, se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("field %q: expected %s, got JSON %s", te.Field, kindName(te.Type), te.Value)
	}
	return err
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Float64, reflect.Float32:
		return "a number"
	}
	return t.String()
}

// shareGPTItem is one conversation of a ShareGPT dump.
type shareGPTItem struct {
	Conversations []struct {
		From  string `json:"from"`
		Value string `json:"value"`
	} `json:"conversations"`
}

// ParseShareGPT reads a ShareGPT-style JSON array of
// {"conversations": [{"from": "human", "value": ...}, {"from": "gpt", ...}]}.
// Each conversation gives one prompt: its first human turn, with MaxTokens
// set to the length of the reply that follows (estimated in tokens, as
// vLLM's benchmark does with a tokenizer). Conversations without a human turn
// followed by a reply are skipped, as in vLLM's benchmark_serving; a file
// with none left is an error. Errors name name:line of the entry.
func ParseShareGPT(name string, data []byte) ([]Prompt, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%s:%d: invalid JSON: %w", name, lineAt(data, dec.InputOffset()), jsonErr(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, fmt.Errorf("%s:1: expected a JSON list of {\"conversations\": [...]} objects", name)
	}
	var out []Prompt
	for i := 0; dec.More(); i++ {
		off := dec.InputOffset()
		for off < int64(len(data)) && bytes.IndexByte([]byte(", \t\r\n"), data[off]) >= 0 {
			off++
		}
		var item shareGPTItem
		if err := dec.Decode(&item); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%s:%d: invalid JSON: the file ends inside entry %d", name, lineAt(data, int64(len(data))), i)
			}
			return nil, fmt.Errorf("%s:%d: entry %d: %w", name, lineAt(data, off), i, jsonErr(err))
		}
		p, ok := shareGPTPrompt(item)
		if ok {
			out = append(out, p)
		}
	}
	if _, err := dec.Token(); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s:%d: invalid JSON: the file ends before the list's closing ']'", name, lineAt(data, int64(len(data))))
		}
		return nil, fmt.Errorf("%s:%d: invalid JSON: %w", name, lineAt(data, dec.InputOffset()), jsonErr(err))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no usable conversations (expected a \"human\" turn followed by a \"gpt\" turn)", name)
	}
	return out, nil
}

func shareGPTPrompt(item shareGPTItem) (Prompt, bool) {
	c := item.Conversations
	for i := 0; i+1 < len(c); i++ {
		if !isHuman(c[i].From) || strings.TrimSpace(c[i].Value) == "" {
			continue
		}
		reply := c[i+1]
		if isHuman(reply.From) {
			continue
		}
		n := CountTokens(reply.Value)
		if n < 1 {
			return Prompt{}, false
		}
		return Prompt{Text: c[i].Value, MaxTokens: n}, true
	}
	return Prompt{}, false
}

func isHuman(from string) bool {
	switch strings.ToLower(from) {
	case "human", "user":
		return true
	}
	return false
}

// lineAt is the 1-based line of byte offset off in data.
func lineAt(data []byte, off int64) int {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	return bytes.Count(data[:off], []byte("\n")) + 1
}

// CountTokens estimates a text's length in tokens without a tokenizer: runs of
// letters or digits count one token per 8 characters (or part), every other
// non-space character one token. It matches modelship sim's tokenizer and
// lands near BPE counts for English.
func CountTokens(s string) int {
	n, run := 0, 0
	for _, r := range s {
		switch {
		case isWordRune(r):
			if run%8 == 0 {
				n++
			}
			run++
		case isSpace(r):
			run = 0
		default:
			run = 0
			n++
		}
	}
	return n
}

func isSpace(r rune) bool { return unicode.IsSpace(r) }

func isWordRune(r rune) bool {
	if r < 0x80 {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// synthWords are common short English words; each is one token in the usual
// BPE vocabularies (and in modelship sim's tokenizer), with its leading space.
var synthWords = strings.Fields(`the of and to in is was that for it with as on be at by this had not are but from
or have an they which one you were all we her she there would their will when who him been has more if no out so
said what up its about than into them can only other new some could time these two may then do first any my now
such like our over man me even most made after also did many before must through back years where much your way
well down should because each just those people how too little state good very make world still own see men work
long get here between both life being under never day same another know while last might us great old year off
come since against go came right used take three`)

// Synthetic makes n prompts of exactly inputTokens words each (one token
// per word in common tokenizers), asking for outputTokens tokens each
// (MaxTokens; set Target.IgnoreEOS for exact output lengths). The same seed
// gives the same prompts; each prompt starts with a distinct number so
// servers with prefix caching cannot reuse one prompt's cache for the next.
func Synthetic(n, inputTokens, outputTokens int, seed int64) ([]Prompt, error) {
	if n < 1 || inputTokens < 1 || outputTokens < 1 {
		return nil, fmt.Errorf("synthetic prompts: count, input and output tokens must be at least 1 (got %d, %d, %d)", n, inputTokens, outputTokens)
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
	out := make([]Prompt, n)
	var sb strings.Builder
	for i := range out {
		sb.Reset()
		fmt.Fprintf(&sb, "%d", i)
		for w := 1; w < inputTokens; w++ {
			sb.WriteByte(' ')
			sb.WriteString(synthWords[rng.IntN(len(synthWords))])
		}
		out[i] = Prompt{Text: sb.String(), MaxTokens: outputTokens, InputTokens: inputTokens}
	}
	return out, nil
}
