package compose

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/template"
	"go.yaml.in/yaml/v4"
)

// unsetError is a variable without a value or default.
type unsetError struct{ name string }

func (e *unsetError) Error() string {
	return fmt.Sprintf("variable %s is not set and has no default (set it in the environment or an env file, or write ${%s:-default})", e.name, e.name)
}

// unsetVars makes a variable without a value or a default an error
// (compose warns and substitutes "").
func unsetVars(tmpl string, mapping template.Mapping) (string, error) {
	return template.SubstituteWithOptions(tmpl, mapping, template.WithoutLogging,
		template.WithReplacementFunction(func(s string, m template.Mapping, cfg *template.Config) (string, error) {
			v, applied, err := template.DefaultReplacementAppliedFunc(s, m, cfg)
			if err == nil && !applied {
				return "", &unsetError{name: strings.Trim(s, "${}")}
			}
			return v, err
		}))
}

// yamlPos is where the YAML parser compose-go uses (go.yaml.in/yaml/v4)
// puts an error in its message, lines counted from 0: v4.0.0-rc.4 says
// "line L, column C: what" (the last one is the error's place);
// v4.0.0-rc.3, which go.mod pins (actionlint needs it), says "line L:
// what", L being where the block the error breaks starts (the error is
// on that line or further down in the block). The tests pin what a user
// sees.
var (
	yamlLineColumn = regexp.MustCompile(`line (\d+), column (\d+): ([^:]*)$`)
	yamlLine       = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

// yamlError is a YAML parser's error placed in file: FILE:LINE[:COL].
func yamlError(file string, err error) error {
	msg := err.Error()
	if m := yamlLineColumn.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return fmt.Errorf("%s:%d:%s: %s (expected a compose file; the parser said: %v)", file, line+1, m[2], m[3], err)
	}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return fmt.Errorf("%s:%d: %s, on this line or further down in the block that starts here (expected a compose file)", file, line+1, m[2])
	}
	return fmt.Errorf("%s: %w", file, err)
}

// loadError is compose-go's error placed in the file (and line) it is
// about: the first file that does not parse as YAML (FILE:LINE:COL), or
// the first line naming a variable left unset; else compose-go's error
// after the files' names.
func loadError(files []string, err error) error {
	var unset *unsetError
	var required *template.MissingRequiredError
	name := ""
	switch {
	case errors.As(err, &unset):
		name = unset.name
	case errors.As(err, &required):
		name = required.Variable
	}
	for _, f := range files {
		data, rerr := os.ReadFile(f)
		if rerr != nil {
			continue
		}
		if name != "" {
			if line := varLine(data, name); line > 0 {
				return fmt.Errorf("%s:%d: %w", f, line, err)
			}
			continue
		}
		var v any
		if yerr := yaml.Unmarshal(data, &v); yerr != nil {
			return yamlError(f, yerr)
		}
	}
	return fmt.Errorf("compose files %s: %w", strings.Join(files, ", "), err)
}

// varLine is the first line of data that refers to variable name ($NAME
// or ${NAME...}), 0 if none.
func varLine(data []byte, name string) int {
	ref := regexp.MustCompile(`\$(\{` + regexp.QuoteMeta(name) + `\b|` + regexp.QuoteMeta(name) + `\b)`)
	for i, line := range bytes.Split(data, []byte("\n")) {
		if ref.Match(line) {
			return i + 1
		}
	}
	return 0
}
