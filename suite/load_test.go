package suite

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadArticleUnchanged(t *testing.T) {
	s, err := Load("../testdata/suites/validation_cases.json")
	if err != nil {
		t.Fatal(err)
	}
	if s.Format != FormatArticle || len(s.Cases) != 6 {
		t.Fatalf("format %s, %d cases; want article-json, 6", s.Format, len(s.Cases))
	}
	c := s.Cases[0]
	if c.Name != "capital-of-france" || c.Line != 2 || c.MaxTokens != 32 || !c.Chat() || c.Temperature != 0 || c.Seed != DefaultSeed {
		t.Errorf("first case: %+v", c)
	}
	if len(c.Assertions) != 1 || c.Assertions[0].Kind != "icontains" || c.Assertions[0].Value != "Paris" {
		t.Errorf("expected_keywords should become icontains: %+v", c.Assertions)
	}
	kv := s.Cases[5]
	if kv.Name != "kv-cache" || kv.Line != 35 || len(kv.Assertions) != 2 {
		t.Errorf("kv-cache: %+v", kv)
	}
	if water := s.Cases[4]; len(water.Messages) != 2 || water.Messages[0].Role != "system" {
		t.Errorf("water-formula messages: %+v", water.Messages)
	}
}

func TestLoadExampleYAML(t *testing.T) {
	s, err := Load("../testdata/suites/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s.Format != FormatYAML || s.PassThreshold != 1 || s.Defaults.MaxTokens != 64 || s.Defaults.Seed != 1234 {
		t.Errorf("suite: %+v", s)
	}
	byName := map[string]*Case{}
	for _, c := range s.Cases {
		byName[c.Name] = c
	}
	if c := byName["capital-of-france"]; c == nil || c.MaxTokens != 32 || len(c.Assertions) != 7 || c.Assertions[0].Line == 0 {
		t.Errorf("capital-of-france: %+v", c)
	}
	if c := byName["kv-cache-stable"]; c == nil || c.Repeat != 3 || c.PassRate != 1 {
		t.Errorf("kv-cache-stable: %+v", c)
	}
	if c := byName["completion-capital"]; c == nil || c.Chat() || c.Prompt == "" || c.MaxTokens != 64 {
		t.Errorf("completion-capital: %+v", c)
	}
}

const okCase = "cases:\n  - name: a\n    messages: [{role: user, content: hi}]\n"

// TestLoadErrors checks that each bad input is refused with the file, line
// and column (or case) and what was expected.
func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, file, data string
		want             []string // each must occur in the error
	}{
		{"empty file", "s.yaml", "  \n", []string{"s.yaml: empty suite"}},
		{"yaml syntax", "s.yaml", okCase + "    prompt: a: b\n", []string{"s.yaml:4: invalid YAML: mapping values are not allowed in this context"}},
		{"no cases", "s.yaml", "name: x\n", []string{"s.yaml:1:1: empty suite: no cases"}},
		{"empty cases", "s.yaml", "cases: []\n", []string{"s.yaml: empty suite: no cases"}},
		{"empty json list", "s.json", "[]", []string{"s.json: empty suite: no cases"}},
		{"top-level scalar", "s.yaml", "hello\n", []string{"s.yaml:1:1: expected a suite"}},
		{"unknown top key", "s.yaml", "pass_threshold: 0.9\n" + okCase, []string{`s.yaml:1:1: unknown key "pass_threshold" in suite (did you mean "pass-threshold"?)`}},
		{"unknown case key", "s.yaml", okCase + "    expected: x\n", []string{`s.yaml:4:5: case "a": unknown key "expected" in case (did you mean "expect"?)`}},
		{"unknown assertion", "s.yaml", okCase + "    expect:\n      - contians: Paris\n", []string{`s.yaml:5:9: case "a": unknown assertion "contians" (did you mean "contains"?)`}},
		{"bad regex", "s.yaml", okCase + "    expect:\n      - regex: '(['\n", []string{`s.yaml:5:16: case "a": regex "([" does not compile`}},
		{"invalid schema", "s.yaml", okCase + "    expect:\n      - json-schema: {type: 5}\n", []string{`s.yaml:5:22: case "a": json-schema is not a valid schema: at '/type'`}},
		{"schema string not json", "s.yaml", okCase + "    expect:\n      - json-schema: 'type: object'\n", []string{`s.yaml:5:22: case "a": json-schema: expected a schema`}},
		{"two assertions in one item", "s.yaml", okCase + "    expect:\n      - {contains: a, regex: b}\n", []string{`s.yaml:5:9: case "a": expect[0]: expected one assertion`}},
		{"case without name", "s.yaml", "cases:\n  - messages: [{role: user, content: hi}]\n", []string{"s.yaml:2:5: cases[0]: missing name"}},
		{"case without messages", "s.yaml", "cases:\n  - name: a\n", []string{`s.yaml:2:5: case "a": missing messages (a chat completion) or prompt`}},
		{"messages and prompt", "s.yaml", okCase + "    prompt: x\n", []string{`case "a": both messages and prompt`}},
		{"bad role", "s.yaml", "cases:\n  - name: a\n    messages: [{role: robot, content: hi}]\n", []string{`s.yaml:3:23: case "a": messages[0].role: "robot" is not a role`}},
		{"duplicate names", "s.yaml", okCase + "  - name: a\n    prompt: x\n", []string{`s.yaml:4:5: case "a": duplicate case name (first at line 2)`}},
		{"repeat without pass-rate", "s.yaml", okCase + "    repeat: 3\n", []string{`case "a": repeat: 3 needs a pass-rate`}},
		{"pass-rate out of range", "s.yaml", okCase + "    repeat: 3\n    pass-rate: 120%\n", []string{`s.yaml:5:16: case "a": pass-rate: expected a fraction in (0, 1]`}},
		{"max-tokens not a number", "s.yaml", okCase + "    max-tokens: lots\n", []string{`s.yaml:4:17: case "a": max-tokens: expected a whole number ≥ 1, got "lots"`}},
		{"max-latency bad", "s.yaml", okCase + "    expect:\n      - max-latency: fast\n", []string{`s.yaml:5:22: case "a": max-latency: expected a positive duration`}},
		{"every problem reported", "s.yaml", "cases:\n  - name: a\n  - name: a\n    prompt: x\n    expect: [{regex: '('}]\n", []string{`s.yaml:2:5: case "a": missing messages`, `s.yaml:5:22: case "a": regex`, "duplicate case name"}},
		{"json syntax", "s.json", "[\n  {\"name\": \"a\",\n  \"messages\": [}\n]", []string{"s.json:3:", "invalid JSON"}},
		{"json unknown field", "s.json", `[{"name": "a", "messages": [{"role": "user", "content": "x"}], "expected": ["x"]}]`, []string{`s.json:1: case "a": unknown field "expected"; the article's format has name, messages, max_tokens, expected_keywords`}},
		{"json wrong type", "s.json", "[\n {\"name\": \"a\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_tokens\": \"32\"}]", []string{`s.json:2: case "a": max_tokens: expected a whole number, got string`}},
		{"json no name", "s.json", `[{"messages": [{"role": "user", "content": "x"}]}]`, []string{"s.json:1: case 1: missing name"}},
		{"json no messages", "s.json", "[\n {\"name\": \"a\"}\n]", []string{`s.json:2: case "a": missing messages`}},
		{"json duplicate", "s.json", "[\n {\"name\": \"a\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}]},\n {\"name\": \"a\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n]", []string{`s.json:3: case "a": duplicate case name (first at line 2)`}},
		{"json not objects", "s.json", `[1]`, []string{"s.json:1: case 1: expected an object"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.file, []byte(tt.data))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error:\n%v\nwant it to contain:\n%s", err, w)
				}
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !os.IsNotExist(err) {
		t.Errorf("got %v, want a not-exist error", err)
	}
}

func TestParseFraction(t *testing.T) {
	for in, want := range map[string]float64{"1": 1, "0.9": 0.9, "90%": 0.9, "100%": 1, " 50 %": 0.5} {
		if got, err := ParseFraction(in); err != nil || got != want {
			t.Errorf("ParseFraction(%q) = %g, %v; want %g", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "1.5", "101%", "-1", "x", "NaN", ""} {
		if _, err := ParseFraction(in); err == nil {
			t.Errorf("ParseFraction(%q): no error", in)
		}
	}
}

// FuzzParse checks that no input crashes the loaders and that an accepted
// suite is usable: named, non-empty cases that are chat or completion.
func FuzzParse(f *testing.F) {
	for _, p := range []string{"../testdata/suites/validation_cases.json", "../testdata/suites/example.yaml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(okCase + "    expect:\n      - json-schema: {type: object}\n      - regex: a+\n"))
	f.Add([]byte(`[{"name":"a","messages":[{"role":"user","content":"x"}],"expected_keywords":["k"]}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("fuzz", data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if len(s.Cases) == 0 {
			t.Fatal("accepted a suite without cases")
		}
		for _, c := range s.Cases {
			if c.Name == "" || c.Repeat < 1 || c.MaxTokens < 1 || (c.Chat() == (c.Prompt != "")) {
				t.Fatalf("accepted a bad case: %+v", c)
			}
			for _, a := range c.Assertions {
				a.Check(&Answer{Text: "x"})
			}
		}
	})
}
