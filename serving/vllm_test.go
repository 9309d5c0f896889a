package serving

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

// sampleValue is a value vLLM's parser accepts for f.
func sampleValue(f *Flag) string {
	if len(f.Choices) > 0 {
		return f.Choices[0]
	}
	switch f.Type {
	case "int", "human-int":
		return "2"
	case "float":
		return "0.5"
	case "json":
		return `{}`
	case "bool":
		return "true"
	}
	return "x"
}

// badValue is a value vLLM's parser refuses for f, or "" when every string
// is accepted.
func badValue(f *Flag) string {
	switch f.Type {
	case "int", "human-int", "float":
		return "many"
	case "json":
		return "{not json"
	case "bool":
		return "maybe"
	}
	if f.ChoicesEnforced && len(f.Choices) > 0 {
		return "not-a-choice"
	}
	return ""
}

// TestRulesFile checks the recorded data is complete enough to use: it
// names its vLLM version, image and source commit, and has the flags the
// serving settings become.
func TestRulesFile(t *testing.T) {
	r := VLLM()
	if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(r.Source.Commit) {
		t.Errorf("source.commit = %q, want a full commit hash", r.Source.Commit)
	}
	if !strings.HasSuffix(r.Image, ":"+r.Version) {
		t.Errorf("image %q is not vLLM %s: the image, the data and the stand-in must name one version", r.Image, r.Version)
	}
	if r.ExitCodes.Usage != 2 || r.ExitCodes.Startup == 0 {
		t.Errorf("exit codes = %+v, want usage 2 (argparse) and a non-zero startup status", r.ExitCodes)
	}
	for _, f := range fields {
		if f.Flag != "" && r.Flag(f.Flag) == nil {
			t.Errorf("setting %s becomes %s, which vLLM %s does not have", f.Key, f.Flag, r.Version)
		}
	}
	if len(r.Flags) < 50 {
		t.Errorf("only %d flags recorded; vllm serve has well over 100", len(r.Flags))
	}
}

// TestParseEveryFlag goes through every recorded flag: its sample value is
// accepted, a bad value is refused with argparse's exit status naming the
// flag, and an unknown flag is refused.
func TestParseEveryFlag(t *testing.T) {
	r := VLLM()
	for i := range r.Flags {
		f := &r.Flags[i]
		t.Run(f.Name, func(t *testing.T) {
			var args []string
			switch {
			case f.Boolean != "":
				args = []string{f.Name}
			case f.Nargs == "?":
				args = []string{f.Name}
			default:
				args = []string{f.Name, sampleValue(f)}
			}
			in, err := r.Parse(append([]string{"/models/current"}, args...), true)
			if err != nil {
				t.Fatalf("Parse(%q) = %v, want accepted", args, err)
			}
			if _, ok := in.Values[f.Name]; !ok {
				t.Errorf("Parse(%q) did not record %s", args, f.Name)
			}
			if f.Boolean == "optional" {
				in, err := r.Parse([]string{"--no-" + strings.TrimPrefix(f.Name, "--")}, false)
				if err != nil || in.Bools[f.Name] {
					t.Errorf("--no-%s: err %v, value %v; want accepted and false", f.Name[2:], err, in.Bools[f.Name])
				}
			}
			if bad := badValue(f); bad != "" && f.Boolean == "" {
				_, err := r.Parse([]string{f.Name, bad}, false)
				var ue *UsageError
				if !errors.As(err, &ue) || ue.Code != 2 || !strings.Contains(ue.Msg, f.Name) {
					t.Errorf("Parse(%s %s) = %v, want a usage error (exit 2) naming the flag", f.Name, bad, err)
				}
			}
		})
	}
	for _, args := range [][]string{{"--no-such-flag"}, {"--no-such-flag", "3"}, {"/m", "extra-positional"}} {
		_, err := r.Parse(args, true)
		var ue *UsageError
		if !errors.As(err, &ue) || ue.Code != 2 || !strings.Contains(ue.Msg, "unrecognized arguments") {
			t.Errorf("Parse(%q) = %v, want unrecognized arguments (exit 2)", args, err)
		}
	}
}

func TestParseForms(t *testing.T) {
	r := VLLM()
	in, err := r.Parse([]string{"/m", "--max_model_len=4k", "-tp", "2", "--served-model-name", "a", "b", "--enable-prefix-caching"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if in.Model != "/m" || in.Int("--max-model-len") != 4000 || in.Int("--tensor-parallel-size") != 2 ||
		strings.Join(in.Values["--served-model-name"], ",") != "a,b" || !in.Bools["--enable-prefix-caching"] {
		t.Errorf("parsed %+v", in)
	}
	// argparse's unambiguous prefixes, and vLLM's human-readable ints.
	in, err = r.Parse([]string{"/m", "--enforce", "--max-num-batched-tokens", "32K", "--no-enable-prefix"}, true)
	if err != nil || in.Int("--max-num-batched-tokens") != 32768 || in.Bools["--enable-prefix-caching"] {
		t.Errorf("abbreviations: %+v, %v", in, err)
	}
	for _, bad := range [][]string{{"--max-num-batched-tokens", "1.5K"}, {"--max-num-batched-tokens", "auto"}, {"--max-model-len", "lots"}} {
		if _, err := r.Parse(bad, false); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if _, err := r.Parse([]string{"--max-model-len", "auto"}, false); err != nil {
		t.Errorf("--max-model-len auto: %v", err)
	}
	in, err = r.Parse([]string{"--model", "/m", "--port", "9"}, false)
	if err != nil || in.Model != "/m" {
		t.Errorf("api_server form: %+v, %v", in, err)
	}
}

func TestCheckModel(t *testing.T) {
	r := VLLM()
	m := ModelFacts{ContextLen: 2048, AttentionHeads: 32}
	for _, tt := range []struct {
		s    Settings
		rule string
	}{
		{Settings{MaxModelLen: 2048, TensorParallelSize: 2}, ""},
		{Settings{MaxModelLen: 4096}, RuleMaxModelLen},
		{Settings{TensorParallelSize: 3}, RuleTensorParallel},
	} {
		got := r.CheckModel(tt.s, m)
		switch {
		case tt.rule == "" && len(got) > 0:
			t.Errorf("%+v: refused %v", tt.s, got[0])
		case tt.rule != "" && (len(got) != 1 || got[0].Rule != tt.rule):
			t.Errorf("%+v: got %v, want rule %s", tt.s, got, tt.rule)
		case tt.rule != "" && (strings.Contains(got[0].Msg, "%!") || got[0].Code != r.ExitCodes.Startup):
			t.Errorf("%+v: message %q code %d", tt.s, got[0].Msg, got[0].Code)
		}
	}
}

func TestCheckSettings(t *testing.T) {
	r := VLLM()
	for _, tt := range []struct {
		name string
		s    Settings
		key  string // "" = accepted
		want string
	}{
		{"good", Settings{Dtype: "bfloat16", KVCacheDtype: "fp8", EngineArgs: []string{"--enforce-eager", "--max-num-batched-tokens", "8192"}}, "", ""},
		{"bad dtype", Settings{Dtype: "float8"}, "dtype", "invalid choice"},
		{"quantization is checked at startup, not by the parser", Settings{Quantization: "zip"}, "", ""},
		{"unknown engine arg", Settings{EngineArgs: []string{"--no-such-flag"}}, "engine-args[0]", "has no flag --no-such-flag"},
		{"engine arg of the wrong type", Settings{EngineArgs: []string{"--max-num-batched-tokens", "lots"}}, "engine-args", "--max-num-batched-tokens"},
		{"owned flag", Settings{EngineArgs: []string{"--port", "9000"}}, "engine-args[0]", "set by modelship"},
		{"setting given twice", Settings{EngineArgs: []string{"--max-model-len", "10"}}, "engine-args[0]", "serving.max-model-len"},
		{"positional", Settings{EngineArgs: []string{"model"}}, "engine-args[0]", "expected a vLLM flag"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := r.Check(tt.s)
			if tt.key == "" {
				if len(p) > 0 {
					t.Fatalf("refused: %+v", p)
				}
				return
			}
			if len(p) == 0 || p[0].Key != tt.key || !strings.Contains(p[0].Msg, tt.want) {
				t.Fatalf("got %+v, want %s: ...%s...", p, tt.key, tt.want)
			}
		})
	}
}
