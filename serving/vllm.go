package serving

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// vllmJSON is vLLM's `serve` command line and startup refusals, recorded
// from vLLM's source at the release of the pinned image (see the file's
// "source").
//
//go:embed vllm.json
var vllmJSON []byte

// Rules are an engine's command line and startup refusals, as recorded in
// vllm.json.
type Rules struct {
	Engine      string `json:"engine"`
	Version     string `json:"version"`
	VersionNote string `json:"version_note"`
	// Image is the engine image of that version.
	Image     string    `json:"image"`
	ImageBase ImageBase `json:"image_base"`
	Source    Source    `json:"source"`
	ExitCodes struct {
		// Usage is the exit status of a refused command line (argparse: 2).
		Usage int `json:"usage"`
		// Startup is the exit status of a refusal at startup.
		Startup int `json:"startup"`
	} `json:"exit_codes"`
	// UsageMessages are argparse's words for a refused command line, with
	// %s for the flag and value: unknown, invalid_choice, invalid_type.
	UsageMessages map[string]string `json:"usage_messages"`
	Flags         []Flag            `json:"flags"`
	StartupRules  []StartupRule     `json:"startup_rules"`

	byName map[string]*Flag
}

// ImageBase is what the engine image is built on: the binary modelship
// copies into it must run there.
type ImageBase struct {
	OS    string `json:"os"`
	Glibc string `json:"glibc"`
	CUDA  string `json:"cuda"`
	From  string `json:"source"`
}

// Source is where the rules were read.
type Source struct {
	Repository string   `json:"repository"`
	Commit     string   `json:"commit"`
	Files      []string `json:"files"`
}

// Flag is one command-line flag of `vllm serve`.
type Flag struct {
	Name    string   `json:"name"`
	Aliases []string `json:"aliases"`
	// Type of the value: int, float, str, bool, json or human-int (an int
	// that may be written 32k, 1M, ...).
	Type    string   `json:"type"`
	Choices []string `json:"choices"`
	// ChoicesEnforced: argparse refuses a value not in Choices; otherwise
	// the list is only the known set (vLLM may check it at startup).
	ChoicesEnforced bool `json:"choices_enforced"`
	// Nullable flags use vLLM's optional_type converter, whose message for
	// a bad value differs from argparse's.
	Nullable   bool `json:"nullable"`
	Deprecated bool `json:"deprecated"`
	// Nargs is argparse's nargs: "" one value, "?" an optional one, "+" one
	// or more, "*" any number.
	Nargs string `json:"nargs"`
	// Boolean is "store_true" (no value) or "optional" (--x and --no-x, no
	// value); "" for a flag with a value.
	Boolean string `json:"boolean"`
	From    string `json:"source"`
}

// StartupRule is a refusal vLLM makes while starting, after the command
// line parsed.
type StartupRule struct {
	ID       string `json:"id"`
	From     string `json:"source"`
	Function string `json:"function"`
	// Message is vLLM's own words, with %s/%d placeholders.
	Message string `json:"message"`
}

// The startup rules modelship applies (config check, the simulator).
const (
	RuleMaxModelLen    = "max-model-len-above-context"
	RuleTensorParallel = "tensor-parallel-divides-heads"
	RuleKVCache        = "kv-cache-one-sequence"
	RuleQuantization   = "quantization-unknown"
)

var (
	vllmOnce  sync.Once
	vllmRules *Rules
)

// VLLM returns the recorded rules of the pinned vLLM release. The data is
// part of the binary; a malformed file is a build defect and panics.
func VLLM() *Rules {
	vllmOnce.Do(func() {
		r, err := ParseRules(vllmJSON)
		if err != nil {
			panic("serving: vllm.json: " + err.Error())
		}
		vllmRules = r
	})
	return vllmRules
}

// ParseRules reads a rules file such as vllm.json.
func ParseRules(data []byte) (*Rules, error) {
	var r Rules
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, err
	}
	if r.Version == "" || r.Source.Commit == "" || len(r.Flags) == 0 {
		return nil, fmt.Errorf("want version, source.commit and flags")
	}
	r.byName = map[string]*Flag{}
	for i := range r.Flags {
		f := &r.Flags[i]
		for _, n := range append([]string{f.Name}, f.Aliases...) {
			r.byName[n] = f
		}
		if f.Boolean == "optional" && strings.HasPrefix(f.Name, "--") {
			r.byName["--no-"+f.Name[2:]] = f
		}
	}
	for _, id := range []string{RuleMaxModelLen, RuleTensorParallel, RuleKVCache, RuleQuantization} {
		if r.Rule(id) == nil {
			return nil, fmt.Errorf("startup rule %q missing", id)
		}
	}
	return &r, nil
}

// Flag looks a flag up by name or alias ("--max-model-len", "-tp"); vLLM
// reads underscores in long flags as dashes.
func (r *Rules) Flag(name string) *Flag {
	f, _ := r.lookup(name)
	return f
}

// lookup finds a flag as vLLM's parser does: underscores read as dashes,
// and (argparse's allow_abbrev) an unambiguous prefix of a long flag;
// form is the full option string matched ("--no-x" for a negated one).
func (r *Rules) lookup(name string) (*Flag, string) {
	if !strings.HasPrefix(name, "--") {
		return r.byName[name], name
	}
	name = "--" + strings.ReplaceAll(name[2:], "_", "-")
	if f := r.byName[name]; f != nil {
		return f, name
	}
	var found *Flag
	var form string
	for opt, f := range r.byName {
		if strings.HasPrefix(opt, "--") && strings.HasPrefix(opt, name) {
			if found != nil && found != f {
				return nil, "" // ambiguous: argparse refuses it
			}
			found, form = f, opt
		}
	}
	return found, form
}

// Rule is the startup rule with this id, or nil.
func (r *Rules) Rule(id string) *StartupRule {
	for i := range r.StartupRules {
		if r.StartupRules[i].ID == id {
			return &r.StartupRules[i]
		}
	}
	return nil
}

// UsageError is a command line vLLM's parser refuses: it prints Msg and
// exits with Code (2).
type UsageError struct {
	Flag string
	Msg  string
	Code int
}

func (e *UsageError) Error() string { return e.Msg }

// StartupError is a refusal vLLM makes at startup: Rule names which one,
// Msg is vLLM's message, Code the exit status (1).
type StartupError struct {
	Rule string
	Msg  string
	Code int
}

func (e *StartupError) Error() string { return e.Msg }

// Startup is a StartupError for rule id with vLLM's message filled in
// (each %s takes the next argument, printed as Python prints it).
func (r *Rules) Startup(id string, args ...any) *StartupError {
	msg := id
	if rule := r.Rule(id); rule != nil {
		strs := make([]any, len(args))
		for i, a := range args {
			strs[i] = fmt.Sprint(a)
		}
		msg = fmt.Sprintf(rule.Message, strs...)
	}
	return &StartupError{Rule: id, Msg: msg, Code: r.ExitCodes.Startup}
}

// usage is argparse's refusal of kind (a key of usage_messages), the
// flag named as argparse names it: every option string, joined by "/".
func (r *Rules) usage(flag, kind string, args ...any) *UsageError {
	format, ok := r.UsageMessages[kind]
	if !ok {
		format = kind + ": %v"
	}
	if f := r.Flag(flag); f != nil && kind != "unknown" && len(args) > 0 {
		names := append([]string{f.Name}, f.Aliases...)
		if f.Boolean == "optional" {
			names = []string{f.Name, "--no-" + strings.TrimPrefix(f.Name, "--")}
		}
		args[0] = strings.Join(names, "/")
	}
	return &UsageError{Flag: flag, Msg: fmt.Sprintf(format, args...), Code: r.ExitCodes.Usage}
}

// typeWord is how argparse names a flag's converter in "invalid TYPE
// value".
var typeWord = map[string]string{"int": "int", "float": "float", "human-int": "human_readable_int", "json": "loads", "bool": "bool"}

// Invocation is a parsed vLLM command line.
type Invocation struct {
	// Model is the checkpoint: `vllm serve MODEL`'s positional argument,
	// or --model.
	Model string
	// Values maps each flag given (by its canonical name) to its values:
	// none for a boolean flag, whose Bool records which form was given.
	Values map[string][]string
	// Bools records a boolean flag's setting: --x true, --no-x false.
	Bools map[string]bool
}

// Value is the last value given for flag, and whether it was given.
func (in *Invocation) Value(flag string) (string, bool) {
	v, ok := in.Values[flag]
	if !ok || len(v) == 0 {
		return "", ok
	}
	return v[len(v)-1], true
}

// Int is flag's value as an integer (human-readable forms such as 32k
// allowed), 0 when not given.
func (in *Invocation) Int(flag string) int {
	v, _ := in.Value(flag)
	n, _ := parseHumanInt(v)
	return n
}

// Float is flag's value as a number, 0 when not given.
func (in *Invocation) Float(flag string) float64 {
	v, _ := in.Value(flag)
	f, _ := strconv.ParseFloat(v, 64)
	return f
}

// Parse reads a vLLM command line, without the program: for `vllm serve
// MODEL --flag ...` give it from MODEL on (serve=true, the model is
// positional); for `python3 -m vllm.entrypoints.openai.api_server --model
// M ...` give the flags (serve=false). It refuses, as vLLM's argparse
// does, an unknown flag, a missing value, a value of the wrong type or not
// among the choices, and a stray positional argument.
func (r *Rules) Parse(args []string, serve bool) (*Invocation, error) {
	in := &Invocation{Values: map[string][]string{}, Bools: map[string]bool{}}
	var stray []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !isFlag(a) {
			if serve && in.Model == "" && len(stray) == 0 {
				in.Model = a
			} else {
				stray = append(stray, a)
			}
			continue
		}
		name, val, hasVal := strings.Cut(a, "=")
		f, form := r.lookup(name)
		if f == nil {
			stray = append(stray, a)
			// Its value, if any, is stray too, as argparse reports it.
			for i+1 < len(args) && !isFlag(args[i+1]) && !hasVal {
				i++
				stray = append(stray, args[i])
			}
			continue
		}
		canon := f.Name
		if f.Boolean != "" {
			if hasVal {
				return nil, r.usage(name, "ignored_value", name, val)
			}
			in.Bools[canon] = form != "--no-"+strings.TrimPrefix(f.Name, "--")
			in.Values[canon] = nil
			continue
		}
		var vals []string
		switch {
		case hasVal:
			vals = []string{val}
		case f.Nargs == "+" || f.Nargs == "*":
			for i+1 < len(args) && !isFlag(args[i+1]) {
				i++
				vals = append(vals, args[i])
			}
			if len(vals) == 0 && f.Nargs == "+" {
				return nil, r.usage(name, "expected_values", name)
			}
		case i+1 < len(args) && !isFlag(args[i+1]):
			i++
			vals = []string{args[i]}
		case f.Nargs == "?":
		default:
			return nil, r.usage(name, "expected_value", name)
		}
		for _, v := range vals {
			if err := r.checkValue(f, name, v); err != nil {
				return nil, err
			}
		}
		in.Values[canon] = append(in.Values[canon], vals...)
	}
	if model, ok := in.Value("--model"); ok && model != "" && in.Model == "" {
		in.Model = model
	}
	if len(stray) > 0 {
		return nil, r.usage(stray[0], "unknown", strings.Join(stray, " "))
	}
	return in, nil
}

// isFlag: argparse takes "-x" as a flag unless it looks like a negative
// number.
func isFlag(a string) bool {
	if !strings.HasPrefix(a, "-") || a == "-" {
		return false
	}
	_, err := strconv.ParseFloat(a, 64)
	return err != nil
}

func (r *Rules) checkValue(f *Flag, name, v string) error {
	var ok bool
	switch f.Type {
	case "int":
		_, err := strconv.Atoi(v)
		ok = err == nil
	case "human-int":
		_, err := parseHumanInt(v)
		ok = err == nil || (f.Name == "--max-model-len" && v == "auto")
	case "float":
		_, err := strconv.ParseFloat(v, 64)
		ok = err == nil
	case "json":
		ok = json.Valid([]byte(v))
	case "bool":
		ok = slices.Contains([]string{"true", "false", "True", "False", "1", "0", "yes", "no"}, v)
	default:
		ok = true
	}
	if !ok {
		if f.Nullable {
			return r.usage(name, "invalid_type_nullable", name, v, "<class '"+typeWord[f.Type]+"'>")
		}
		return r.usage(name, "invalid_type", name, typeWord[f.Type], v)
	}
	// Conversion comes before the choices, as in argparse.
	if f.ChoicesEnforced && len(f.Choices) > 0 && !slices.Contains(f.Choices, v) {
		q := make([]string, len(f.Choices))
		for i, c := range f.Choices {
			q[i] = "'" + c + "'"
			if _, err := strconv.Atoi(c); err == nil && (f.Type == "int" || f.Type == "human-int") {
				q[i] = c
			}
		}
		return r.usage(name, "invalid_choice", name, v, strings.Join(q, ", "))
	}
	return nil
}

// parseHumanInt reads vLLM's human-readable integers: 4096; 25.6k, 1m,
// 1g, 1t (decimal: ×1e3, 1e6, 1e9, 1e12, decimals allowed); 32K, 1M, 1G,
// 1T (binary: ×2^10 ... 2^40, whole numbers only).
func parseHumanInt(v string) (int, error) {
	v = strings.TrimSpace(v)
	if n, err := strconv.Atoi(v); err == nil {
		return n, nil
	}
	bad := fmt.Errorf("not an integer: %q", v)
	if len(v) < 2 {
		return 0, bad
	}
	num, suffix := v[:len(v)-1], v[len(v)-1]
	if m, ok := map[byte]float64{'k': 1e3, 'm': 1e6, 'g': 1e9, 't': 1e12}[suffix]; ok {
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || f < 0 {
			return 0, bad
		}
		return int(f * m), nil
	}
	if shift, ok := map[byte]uint{'K': 10, 'M': 20, 'G': 30, 'T': 40}[suffix]; ok {
		n, err := strconv.Atoi(num)
		if err != nil || n < 0 {
			return 0, bad
		}
		return n << shift, nil
	}
	return 0, bad
}

// Owned are the flags modelship itself sets from the contract: engine-args
// may not give them (the model, where it listens, the served names).
var Owned = []string{"--model", "--host", "--port", "--served-model-name", "--uds"}

// Problem is a setting vLLM would refuse, by its key in the `serving:`
// section (engine-args[N] for one of the free-form flags).
type Problem struct {
	Key string
	Msg string
}

// Check refuses what vLLM's command-line parser would refuse in s, before
// anything starts: a value not among a flag's choices or of the wrong type,
// an unknown flag in engine-args, a flag modelship sets itself, or one that
// has its own setting.
func (r *Rules) Check(s Settings) []Problem {
	var out []Problem
	for _, f := range fields {
		v := f.get(&s)
		if v == "" || f.Flag == "" {
			continue
		}
		fl := r.Flag(f.Flag)
		if fl == nil {
			out = append(out, Problem{f.Key, fmt.Sprintf("vLLM %s has no flag %s", r.Version, f.Flag)})
			continue
		}
		if fl.Boolean != "" {
			continue
		}
		if err := r.checkValue(fl, f.Flag, v); err != nil {
			out = append(out, Problem{f.Key, fmt.Sprintf("vLLM %s would refuse it: %v", r.Version, err)})
		}
	}
	own := map[string]string{}
	for _, f := range fields {
		if f.Flag != "" {
			own[f.Flag] = f.Key
		}
	}
	values := 0 // how many more values the last flag takes (-1: any number)
	for i := 0; i < len(s.EngineArgs); i++ {
		a := s.EngineArgs[i]
		key := fmt.Sprintf("engine-args[%d]", i)
		if !isFlag(a) {
			if values != 0 {
				values--
				continue
			}
			out = append(out, Problem{key, fmt.Sprintf("expected a vLLM flag such as --enforce-eager, got %q (the model is given by model.path)", a)})
			continue
		}
		name, _, inline := strings.Cut(a, "=")
		fl := r.Flag(name)
		values = 0
		if fl != nil && fl.Boolean == "" && !inline {
			switch fl.Nargs {
			case "+", "*":
				values = -1
			default:
				values = 1
			}
		}
		if fl == nil {
			out = append(out, Problem{key, fmt.Sprintf("vLLM %s has no flag %s (vllm serve would exit with \"unrecognized arguments\")", r.Version, name)})
			continue
		}
		if slices.Contains(Owned, fl.Name) {
			out = append(out, Problem{key, fmt.Sprintf("%s is set by modelship from the serving contract (model.path, model.served-name, the image's port); remove it", fl.Name)})
		}
		if k, ok := own[fl.Name]; ok {
			out = append(out, Problem{key, fmt.Sprintf("%s has its own setting: use serving.%s", fl.Name, k)})
		}
	}
	if len(out) > 0 {
		return out
	}
	// The free-form flags must parse as vLLM parses them.
	if _, err := r.Parse(s.EngineArgs, false); err != nil {
		out = append(out, Problem{"engine-args", err.Error()})
	}
	return out
}

// ModelFacts are what the startup rules need of a checkpoint.
type ModelFacts struct {
	// ContextLen is the model's longest sequence (max_position_embeddings
	// and friends); 0 when unknown.
	ContextLen int
	// AttentionHeads is num_attention_heads; 0 when unknown.
	AttentionHeads int
}

// CheckModel applies the startup rules that need only the checkpoint:
// max-model-len above the model's context, tensor-parallel-size not
// dividing the attention heads, and a quantization method vLLM does not
// have (argparse lets any string through; the model config refuses it).
// The KV-cache rule needs the GPUs and is applied where they are known
// (fit).
func (r *Rules) CheckModel(s Settings, m ModelFacts) []*StartupError {
	var out []*StartupError
	if m.ContextLen > 0 && s.MaxModelLen > m.ContextLen {
		out = append(out, r.Startup(RuleMaxModelLen, s.MaxModelLen, "max_position_embeddings", m.ContextLen, "None"))
	}
	if tp := s.TensorParallelSize; tp > 1 && m.AttentionHeads > 0 && m.AttentionHeads%tp != 0 {
		out = append(out, r.Startup(RuleTensorParallel, m.AttentionHeads, tp))
	}
	if q := s.Quantization; q != "" {
		if f := r.Flag("--quantization"); f != nil && len(f.Choices) > 0 && !slices.Contains(f.Choices, q) {
			out = append(out, r.Startup(RuleQuantization, q, "['"+strings.Join(f.Choices, "', '")+"']"))
		}
	}
	return out
}

// FromInvocation is the Settings an Invocation carries (the inverse of
// Flags for the flags that have a setting); the rest stay in EngineArgs.
func (r *Rules) FromInvocation(in *Invocation) Settings {
	var s Settings
	s.MaxModelLen = in.Int("--max-model-len")
	s.GPUMemoryUtilization = in.Float("--gpu-memory-utilization")
	s.TensorParallelSize = in.Int("--tensor-parallel-size")
	s.MaxNumSeqs = in.Int("--max-num-seqs")
	s.Dtype, _ = in.Value("--dtype")
	s.Quantization, _ = in.Value("--quantization")
	s.KVCacheDtype, _ = in.Value("--kv-cache-dtype")
	if b, ok := in.Bools["--enable-prefix-caching"]; ok {
		s.EnablePrefixCaching = &b
	}
	s.TrustRemoteCode = in.Bools["--trust-remote-code"]
	s.ChatTemplate, _ = in.Value("--chat-template")
	return s
}
