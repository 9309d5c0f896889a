package gha

import (
	"fmt"
	"os"
	"strings"
)

// ParseOutputs reads a GITHUB_OUTPUT (or GITHUB_ENV) file the way the
// Actions runner does: each entry is either "name=value" on one line or
// "name<<DELIMITER", the value's lines, then DELIMITER on a line of its own.
// Empty lines between entries are skipped. A later entry for the same name
// wins. Errors name the line.
func ParseOutputs(data string) (map[string]string, error) {
	out := map[string]string{}
	lines := strings.Split(strings.ReplaceAll(data, "\r\n", "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if line == "" {
			continue
		}
		eq := strings.Index(line, "=")
		hd := strings.Index(line, "<<")
		switch {
		case hd >= 0 && (eq < 0 || hd < eq):
			name, delim := line[:hd], line[hd+2:]
			if name == "" || delim == "" {
				return nil, fmt.Errorf("line %d: expected name<<DELIMITER, got %q", i+1, line)
			}
			var val []string
			end := -1
			for j := i + 1; j < len(lines); j++ {
				if lines[j] == delim {
					end = j
					break
				}
				val = append(val, lines[j])
			}
			if end < 0 {
				return nil, fmt.Errorf("line %d: output %s: no closing delimiter %q", i+1, name, delim)
			}
			out[name] = strings.Join(val, "\n")
			i = end
		case eq > 0:
			out[line[:eq]] = line[eq+1:]
		default:
			return nil, fmt.Errorf("line %d: expected name=value or name<<DELIMITER, got %q", i+1, line)
		}
	}
	return out, nil
}

// ReadOutputs reads and parses a GITHUB_OUTPUT file (see ParseOutputs).
func ReadOutputs(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := ParseOutputs(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}
