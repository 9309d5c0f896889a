package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/modelship/modelship/internal/sim/simtable"
	"github.com/modelship/modelship/internal/textpos"
)

// TableFile is the name of the response table inside a checkpoint directory.
const TableFile = "modelship-sim.json"

// Table, Entry and Latency are declared in simtable, a package without
// dependencies, so that internal/testmodels writes its tables with the same
// types (it cannot import sim: sim imports checkpoint, whose tests import
// testmodels).
type (
	Table   = simtable.Table
	Entry   = simtable.Entry
	Latency = simtable.Latency
)

// DefaultTable is used for checkpoints without a modelship-sim.json (a GGUF
// file, or a directory without the table).
func DefaultTable() Table {
	return Table{
		Responses: []Entry{
			{Match: []string{"capital", "france"}, Reply: "The capital of France is Paris."},
			{Match: []string{"2+2"}, Reply: "2+2 equals 4."},
			{Match: []string{"hello"}, Reply: "Hello! How can I help you today?"},
		},
		DefaultReply: "I am a simulated model served by modelship sim.",
		Latency:      Latency{TTFTms: 20, ITLms: 5, Jitter: 0.1},
		LoadSeconds:  0.5,
	}
}

// ParseTable parses a response table strictly: unknown fields, trailing data,
// negative or non-finite numbers, empty match lists and a missing
// default_reply are errors naming the field.
func ParseTable(data []byte) (Table, error) {
	var t Table
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			line, col := textpos.LineCol(data, se.Offset)
			return Table{}, fmt.Errorf("line %d column %d: %v", line, col, err)
		case errors.As(err, &te):
			line, col := textpos.LineCol(data, te.Offset)
			return Table{}, fmt.Errorf("line %d column %d: field %q: expected %s, got JSON %s", line, col, te.Field, te.Type, te.Value)
		case errors.Is(err, io.EOF):
			return Table{}, errors.New("empty file: expected a JSON object")
		}
		return Table{}, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Table{}, errors.New("unexpected data after the JSON object")
	}
	if strings.TrimSpace(t.DefaultReply) == "" {
		return Table{}, errors.New(`field "default_reply": expected a non-empty string`)
	}
	for i, e := range t.Responses {
		if len(e.Match) == 0 {
			return Table{}, fmt.Errorf(`field "responses[%d].match": expected at least one string`, i)
		}
		for j, m := range e.Match {
			if m == "" {
				return Table{}, fmt.Errorf(`field "responses[%d].match[%d]": expected a non-empty string`, i, j)
			}
		}
		if e.Reply == "" {
			return Table{}, fmt.Errorf(`field "responses[%d].reply": expected a non-empty string`, i)
		}
	}
	for _, f := range []struct {
		name string
		v    float64
		max  float64
	}{
		{"latency.ttft_ms", t.Latency.TTFTms, 3.6e6},
		{"latency.itl_ms", t.Latency.ITLms, 3.6e6},
		{"latency.jitter", t.Latency.Jitter, 1},
		{"load_seconds", t.LoadSeconds, 3600},
	} {
		if math.IsNaN(f.v) || f.v < 0 || f.v > f.max {
			return Table{}, fmt.Errorf("field %q: expected a number from 0 to %g, got %g", f.name, f.max, f.v)
		}
	}
	return t, nil
}

// LoadTable reads and strictly parses a response table file; errors name the
// file.
func LoadTable(path string) (Table, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Table{}, err
	}
	t, err := ParseTable(data)
	if err != nil {
		return Table{}, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// TableFor returns the response table of a checkpoint: PATH/modelship-sim.json
// when PATH is a directory holding one, otherwise DefaultTable.
func TableFor(path string) (Table, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Table{}, err
	}
	if !fi.IsDir() {
		return DefaultTable(), nil
	}
	p := filepath.Join(path, TableFile)
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return DefaultTable(), nil
	}
	return LoadTable(p)
}
