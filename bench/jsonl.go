package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// WriteJSONL writes r as one line of JSON, the format ReadJSONL reads, so
// one command's results can feed another (as vegeta's attack | report).
func WriteJSONL(w io.Writer, r *Result) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// ReadJSONL reads results written by WriteJSONL, one per line, calling fn
// for each (fn's error stops the read and is returned). Blank lines are
// skipped; errors name name:line.
func ReadJSONL(r io.Reader, name string, fn func(*Result) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var res Result
		if b[0] != '{' {
			return fmt.Errorf("%s:%d: expected a JSON object (one result per line)", name, line)
		}
		if err := json.Unmarshal(b, &res); err != nil {
			return fmt.Errorf("%s:%d: %w", name, line, jsonErr(err))
		}
		if res.Start.IsZero() {
			return fmt.Errorf("%s:%d: result without \"start\"", name, line)
		}
		if res.TTFT < 0 || res.E2EL < 0 || res.InputTokens < 0 || res.OutputTokens < 0 {
			return fmt.Errorf("%s:%d: negative latency or token count", name, line)
		}
		if err := fn(&res); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("%s:%d: line longer than %d MiB", name, line+1, maxLine>>20)
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
