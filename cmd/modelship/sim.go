package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/modelship/modelship/checkpoint"
	"github.com/modelship/modelship/internal/sim"
)

func init() {
	register(command{name: "sim", summary: "run an OpenAI-compatible vLLM simulator for a checkpoint on the CPU", run: runSim})
}

// simExit ends the process for --crash-after; tests replace it.
var simExit = os.Exit

const simUsage = `Usage: modelship sim PATH [flags]
       modelship sim --model PATH [flags]

Serves the checkpoint at PATH (a safetensors directory or a GGUF file) the way
` + "`vllm serve`" + ` would, on the CPU: it loads (inspects) the checkpoint, refusing a
corrupt one with exit code 1 and the bad file named, then answers

  GET  /health               503 while loading, then 200
  GET  /version              {"version": "` + sim.Version + `"}
  GET  /metrics              vLLM's Prometheus metrics (label model_name)
  GET  /v1/models            the served model, vLLM's shape
  POST /v1/chat/completions  and  POST /v1/completions, streamed (SSE) or not

with the replies of PATH/` + sim.TableFile + ` (first entry whose "match" strings all
occur in the last user message or the prompt; else default_reply), or a
built-in table for a GGUF file or a directory without one. Latency (time to
first token, inter-token), load time and faults are simulated; usage counts
come from a deterministic word/punctuation tokenizer.

Stops on SIGTERM/SIGINT: no new connections, in-flight requests finish
(up to --drain-timeout), exit 0.

Flags:
`

// simOptions are sim's flags: the simulator's options, where it listens,
// and the overrides of the response table.
type simOptions struct {
	opt                 sim.Options
	model, host         string
	port                int
	loadTime, ttft, itl simDuration
	jitter              simFloat
	responses           string
	quiet               bool
}

func (o *simOptions) flags(fs *flag.FlagSet) {
	opt := &o.opt
	fs.StringVar(&o.model, "model", "", "checkpoint to serve, instead of the positional PATH (vLLM api_server's --model)")
	fs.StringVar(&o.host, "host", "0.0.0.0", "address to listen on; like vLLM the default is every interface (use 127.0.0.1 to stay local)")
	fs.IntVar(&o.port, "port", 8000, "port to listen on (0 picks a free one; the log line says which)")
	fs.StringVar(&opt.ServedModelName, "served-model-name", "", "model id clients must send (default: PATH as given, like vLLM)")
	fs.Func("served-model-alias", "a further `name` the model answers to and /v1/models lists (repeatable; vLLM's --served-model-name NAME ALIAS...)", func(v string) error {
		opt.Aliases = append(opt.Aliases, v)
		return nil
	})
	fs.IntVar(&opt.MaxModelLen, "max-model-len", 0, "longest prompt + completion in tokens (default: the checkpoint's context length, else 2048)")
	fs.IntVar(&opt.MaxNumSeqs, "max-num-seqs", sim.DefaultMaxNumSeqs, "requests generated at once; more wait in a queue (vllm:num_requests_waiting)")
	fs.StringVar(&opt.APIKey, "api-key", "", "require \"Authorization: Bearer KEY\" on /v1/ routes, like vLLM")
	fs.Int64Var(&opt.Seed, "seed", 0, "seed for latency jitter and --error-rate; same seed + same requests = same timings and failures")
	fs.Var(&o.loadTime, "load-time", "`duration` of the simulated model load, /health answers 503 meanwhile (default: the table's load_seconds)")
	fs.Var(&o.ttft, "ttft", "simulated time to first token, a `duration` (default: the table's latency.ttft_ms)")
	fs.Var(&o.itl, "itl", "simulated inter-token latency, a `duration` (default: the table's latency.itl_ms)")
	fs.Var(&o.jitter, "jitter", "relative spread of every delay, a `fraction` 0..1: each is drawn from d×(1±jitter) (default: the table's latency.jitter)")
	fs.StringVar(&o.responses, "responses", "", "response table to use instead of PATH/"+sim.TableFile+" (strict JSON)")
	fs.Float64Var(&opt.ErrorRate, "error-rate", 0, "fault: this fraction (0..1) of generation requests get HTTP 500, deterministically by --seed and arrival order")
	fs.IntVar(&opt.CrashAfter, "crash-after", 0, "fault: exit with code 1 after this many completed requests (0: never)")
	fs.BoolVar(&opt.NeverReady, "never-ready", false, "fault: never finish loading; /health stays 503")
	fs.DurationVar(&opt.DrainTimeout, "drain-timeout", sim.DefaultDrainTimeout, "on SIGTERM/SIGINT, how long in-flight requests may finish before they are aborted")
	fs.BoolVar(&o.quiet, "disable-log-requests", false, "do not log one line per request (vLLM flag)")
	fs.BoolVar(&o.quiet, "disable-uvicorn-access-log", false, "same as --disable-log-requests (vLLM flag)")
	simIgnoredFlags(fs)
}

// simIgnoredFlags are vLLM flags accepted so one argument list starts
// either engine; they change nothing in the simulator.
func simIgnoredFlags(fs *flag.FlagSet) {
	ignored := []string{"gpu-memory-utilization", "tensor-parallel-size", "pipeline-parallel-size", "dtype", "kv-cache-dtype",
		"quantization", "max-num-batched-tokens", "swap-space", "block-size", "download-dir", "tokenizer", "revision",
		"uvicorn-log-level", "generation-config", "load-format"}
	for _, name := range ignored {
		fs.String(name, "", "ignored (vLLM flag, accepted for compatibility)")
	}
	for _, name := range []string{"trust-remote-code", "enforce-eager", "enable-prefix-caching", "disable-log-stats", "enable-chunked-prefill"} {
		fs.Bool(name, false, "ignored (vLLM flag, accepted for compatibility)")
	}
}

func runSim(ctx context.Context, args []string, s stdio) int {
	var o simOptions
	pos, code, ok := parseOptionsArgs(s, "sim", simUsage, &o, args)
	if !ok {
		return code
	}
	path, code, ok := o.check(pos, newUsageErr(s, "sim", ""))
	if !ok {
		return code
	}
	return o.serve(ctx, path, s)
}

// check returns the checkpoint's path (positional or --model) after
// checking the flags' ranges.
func (o *simOptions) check(pos []string, bad usageErr) (path string, code int, ok bool) {
	path = o.model
	switch {
	case len(pos) == 1 && path == "":
		path = pos[0]
	case len(pos) == 0 && path != "":
	default:
		return "", bad("want one checkpoint PATH (positional or --model), got %d positional arguments and --model %q", len(pos), path), false
	}
	if o.jitter.set && (o.jitter.v > 1 || o.jitter.v < 0) {
		return "", bad("--jitter: expected 0..1, got %g", o.jitter.v), false
	}
	if o.opt.ErrorRate < 0 || o.opt.ErrorRate > 1 {
		return "", bad("--error-rate: expected 0..1, got %g", o.opt.ErrorRate), false
	}
	if o.port < 0 || o.port > 65535 {
		return "", bad("--port: expected 0..65535, got %d", o.port), false
	}
	return path, exitOK, true
}

// table is the response table (--responses, else the checkpoint's own or
// the built-in one) with the flags' overrides.
func (o *simOptions) table(path string) (sim.Table, error) {
	var table sim.Table
	var err error
	if o.responses != "" {
		table, err = sim.LoadTable(o.responses)
	} else {
		table, err = sim.TableFor(path)
	}
	if err != nil {
		return table, err
	}
	if o.loadTime.set {
		table.LoadSeconds = o.loadTime.d.Seconds()
	}
	if o.ttft.set {
		table.Latency.TTFTms = float64(o.ttft.d) / float64(time.Millisecond)
	}
	if o.itl.set {
		table.Latency.ITLms = float64(o.itl.d) / float64(time.Millisecond)
	}
	if o.jitter.set {
		table.Latency.Jitter = o.jitter.v
	}
	return table, nil
}

// serve loads the checkpoint at path and serves it until ctx ends, logging
// the way vLLM does.
func (o *simOptions) serve(ctx context.Context, path string, s stdio) int {
	logw := &lockedWriter{w: s.err}
	logf := func(format string, a ...any) {
		fmt.Fprintf(logw, "INFO %s sim: "+format+"\n", append([]any{time.Now().Format("01-02 15:04:05")}, a...)...)
	}
	logf("loading checkpoint %s", path)
	info, err := checkpoint.Inspect(ctx, path, checkpoint.Options{})
	if err != nil {
		fmt.Fprintf(s.err, "ERROR modelship sim: loading the checkpoint failed: %v\n", err)
		return exitFailed
	}
	table, err := o.table(path)
	if err != nil {
		fmt.Fprintf(s.err, "modelship sim: response table: %v\n", err)
		return exitUsage
	}
	opt := o.opt
	if !o.quiet {
		opt.AccessLog = logw
	}
	opt.OnReady = func() { logf("model loaded; application startup complete") }
	opt.OnCrash = func() {
		fmt.Fprintf(logw, "ERROR modelship sim: simulated engine crash after %d completed requests (--crash-after)\n", opt.CrashAfter)
		simExit(exitFailed)
	}
	srv, err := sim.New(info, table, opt)
	if err != nil {
		fmt.Fprintf(s.err, "modelship sim: %v\n", err)
		return exitUsage
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(o.host, strconv.Itoa(o.port)))
	if err != nil {
		fmt.Fprintf(s.err, "modelship sim: %v\n", err)
		return exitFailed
	}
	logf("%s checkpoint, %s, %d parameters; serving %q (max-model-len %d, max-num-seqs %d); loading takes %s",
		info.Format, info.Architecture, info.Parameters, srv.ModelName(), srv.MaxModelLen(), max(opt.MaxNumSeqs, 1), srv.LoadTime())
	if opt.NeverReady {
		logf("--never-ready: /health will answer 503 forever")
	}
	logf("Uvicorn running on http://%s (Press CTRL+C to quit)", ln.Addr())
	if err := srv.Serve(ctx, ln); err != nil {
		fmt.Fprintf(s.err, "modelship sim: %v\n", err)
		return exitFailed
	}
	logf("shut down")
	return exitOK
}

// lockedWriter serialises writes from concurrent requests to one log.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// simDuration is a duration flag that remembers whether it was given, so an
// unset flag keeps the response table's value.
type simDuration struct {
	d   time.Duration
	set bool
}

func (f *simDuration) String() string {
	if f == nil || !f.set {
		return ""
	}
	return f.d.String()
}

func (f *simDuration) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("expected a duration such as 50ms or 2s")
	}
	if d < 0 {
		return errors.New("expected a duration of at least 0")
	}
	f.d, f.set = d, true
	return nil
}

// simFloat is a float flag that remembers whether it was given.
type simFloat struct {
	v   float64
	set bool
}

func (f *simFloat) String() string {
	if f == nil || !f.set {
		return ""
	}
	return strconv.FormatFloat(f.v, 'g', -1, 64)
}

func (f *simFloat) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return errors.New("expected a number")
	}
	f.v, f.set = v, true
	return nil
}
