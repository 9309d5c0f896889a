package main

import (
	"errors"
	"flag"
	"io"
	"reflect"
	"testing"
)

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		pos  []string
		json bool
		n    int
	}{
		{[]string{"PATH", "--json"}, []string{"PATH"}, true, 0},
		{[]string{"--json", "PATH"}, []string{"PATH"}, true, 0},
		{[]string{"A", "-n", "3", "B", "--json"}, []string{"A", "B"}, true, 3},
		{[]string{"A", "--", "-n", "B"}, []string{"A", "-n", "B"}, false, 0},
		{[]string{"--", "--json"}, []string{"--json"}, false, 0},
		{nil, nil, false, 0},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		j := fs.Bool("json", false, "")
		n := fs.Int("n", 0, "")
		pos, err := parseFlags(fs, tc.args)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if !reflect.DeepEqual(pos, tc.pos) || *j != tc.json || *n != tc.n {
			t.Errorf("%q: got %q json=%v n=%d, want %q json=%v n=%d", tc.args, pos, *j, *n, tc.pos, tc.json, tc.n)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := parseFlags(fs, []string{"x", "--help"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: got %v, want flag.ErrHelp", err)
	}
	if _, err := parseFlags(fs, []string{"x", "--nope"}); err == nil {
		t.Errorf("unknown flag: got nil error")
	}
}
