// Package sim is an OpenAI-compatible stand-in for `vllm serve` that runs on
// a CPU. It loads (inspects) a real checkpoint, answers chat and completion
// requests from a response table (modelship-sim.json) with vLLM's exact
// response and streaming shapes, simulates time to first token and
// inter-token latency, queues requests above --max-num-seqs, exports vLLM's
// Prometheus metrics, and injects faults (errors, crashes, never ready) on
// demand, so a whole deployment pipeline can be exercised without a GPU.
package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelship/modelship/checkpoint"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Version is what GET /version reports.
const Version = "0.0.0-modelship-sim"

// Defaults used when Options leave a field zero.
const (
	DefaultMaxNumSeqs   = 256              // vLLM's default --max-num-seqs
	DefaultMaxModelLen  = 2048             // when the checkpoint does not say
	DefaultDrainTimeout = 30 * time.Second // in-flight requests after shutdown starts
	maxBodyBytes        = 32 << 20
	maxN                = 128
)

// Options configure a simulated server. Latency and load time come from the
// Table; callers override them by editing the Table.
type Options struct {
	// ServedModelName is the model id clients must send; default the
	// checkpoint path as given (info.Path), as vLLM does.
	ServedModelName string
	// Aliases are further names the model answers to (vLLM's
	// --served-model-name with several values); /v1/models lists them all,
	// responses carry ServedModelName.
	Aliases []string
	// MaxModelLen caps prompt + completion tokens; default info.MaxContext,
	// or DefaultMaxModelLen when unknown.
	MaxModelLen int
	// MaxNumSeqs is how many requests run at once; the rest wait in a queue
	// (vllm:num_requests_waiting). Default DefaultMaxNumSeqs.
	MaxNumSeqs int
	// Seed makes latency jitter and error injection reproducible.
	Seed int64
	// ErrorRate is the fraction (0..1) of generation requests answered with a
	// 500 error. Exactly that fraction of any run of consecutive requests
	// fails; which ones depends only on Seed and arrival order.
	ErrorRate float64
	// CrashAfter > 0 calls OnCrash once, after the CrashAfter-th request
	// completed and its response was flushed. The command exits there.
	CrashAfter int
	OnCrash    func()
	// NeverReady keeps /health at 503 (and generation refused) forever.
	NeverReady bool
	// OnReady, if set, is called once when loading finishes (MarkReady).
	OnReady func()
	// APIKey, when set, is required as "Authorization: Bearer KEY" on /v1/
	// routes, like vLLM's --api-key.
	APIKey string
	// DrainTimeout bounds how long Serve lets in-flight requests finish after
	// its context is cancelled; then they are aborted. Default
	// DefaultDrainTimeout.
	DrainTimeout time.Duration
	// AccessLog, when set, gets one uvicorn-style line per request.
	AccessLog io.Writer
}

// Server is one simulated vLLM server.
type Server struct {
	info     *checkpoint.Info
	table    Table
	opt      Options
	name     string
	maxLen   int
	created  int64
	ready    atomic.Bool
	slots    chan struct{}
	arrivals atomic.Uint64 // generation requests seen, for error injection
	errPhase float64
	done     atomic.Int64 // completed generation requests, for CrashAfter
	crash    sync.Once
	readyOne sync.Once
	m        *metrics
	handler  http.Handler
	logMu    sync.Mutex
}

// New builds a server for an inspected checkpoint. It is not ready until
// MarkReady (Serve does that after the table's load time).
func New(info *checkpoint.Info, table Table, opt Options) (*Server, error) {
	if info == nil {
		return nil, errors.New("sim: no checkpoint info")
	}
	if opt.ErrorRate < 0 || opt.ErrorRate > 1 || math.IsNaN(opt.ErrorRate) {
		return nil, fmt.Errorf("error rate: expected a fraction from 0 to 1, got %g", opt.ErrorRate)
	}
	if opt.MaxNumSeqs < 0 || opt.MaxModelLen < 0 || opt.CrashAfter < 0 {
		return nil, errors.New("max-num-seqs, max-model-len and crash-after must not be negative")
	}
	if opt.MaxNumSeqs == 0 {
		opt.MaxNumSeqs = DefaultMaxNumSeqs
	}
	if opt.DrainTimeout <= 0 {
		opt.DrainTimeout = DefaultDrainTimeout
	}
	s := &Server{info: info, table: table, opt: opt, created: time.Now().Unix()}
	s.name = opt.ServedModelName
	if s.name == "" {
		s.name = info.Path
	}
	s.maxLen = opt.MaxModelLen
	if s.maxLen == 0 {
		s.maxLen = info.MaxContext
	}
	if s.maxLen == 0 {
		s.maxLen = DefaultMaxModelLen
	}
	if info.MaxContext > 0 && s.maxLen > info.MaxContext {
		return nil, fmt.Errorf("max-model-len %d is larger than the model's maximum context length %d", s.maxLen, info.MaxContext)
	}
	s.slots = make(chan struct{}, opt.MaxNumSeqs)
	s.errPhase = rand.New(rand.NewPCG(uint64(opt.Seed), 0x5eed)).Float64()
	s.m = newMetrics(s.name)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", s.health)
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"version": Version})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.m.Reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /v1/models", s.auth(s.models))
	mux.HandleFunc("POST /v1/chat/completions", s.auth(func(w http.ResponseWriter, r *http.Request) { s.generate(w, r, true) }))
	mux.HandleFunc("POST /v1/completions", s.auth(func(w http.ResponseWriter, r *http.Request) { s.generate(w, r, false) }))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"detail": "Not Found"})
	})
	s.handler = s.logged(mux)
	return s, nil
}

// Handler serves the vLLM API: /health, /version, /metrics, /v1/models,
// /v1/chat/completions, /v1/completions.
func (s *Server) Handler() http.Handler { return s.handler }

// MarkReady ends simulated loading: /health answers 200 and generation is
// served. It does nothing with Options.NeverReady.
func (s *Server) MarkReady() {
	if s.opt.NeverReady {
		return
	}
	s.readyOne.Do(func() {
		s.ready.Store(true)
		if s.opt.OnReady != nil {
			s.opt.OnReady()
		}
	})
}

// Ready reports whether loading has finished.
func (s *Server) Ready() bool { return s.ready.Load() }

// ModelName is the served model name.
func (s *Server) ModelName() string { return s.name }

// MaxModelLen is the effective context length.
func (s *Server) MaxModelLen() int { return s.maxLen }

// LoadTime is the simulated load time from the table.
func (s *Server) LoadTime() time.Duration {
	return time.Duration(s.table.LoadSeconds * float64(time.Second))
}

// Serve answers on ln until ctx is cancelled: it marks the server ready
// after the table's load time, and on cancellation stops accepting, lets
// in-flight requests finish for up to DrainTimeout (then aborts them) and
// returns nil. It returns early only if the listener fails.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hard, abort := context.WithCancel(context.Background())
	defer abort()
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return hard },
	}
	loadTimer := time.AfterFunc(s.LoadTime(), s.MarkReady)
	defer loadTimer.Stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	dctx, cancel := context.WithTimeout(context.Background(), s.opt.DrainTimeout)
	defer cancel()
	if err := srv.Shutdown(dctx); err != nil {
		abort() // streams still running past the drain timeout: stop them
		srv.Close()
	}
	<-errc
	return nil
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	if s.opt.APIKey == "" {
		return h
	}
	want := "Bearer " + s.opt.APIKey
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != want {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "Unauthorized"})
			return
		}
		h(w, r)
	}
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	list := modelList{Object: "list"}
	for _, name := range append([]string{s.name}, s.opt.Aliases...) {
		list.Data = append(list.Data, s.card(name))
	}
	writeJSON(w, http.StatusOK, list)
}

// card is name's entry in /v1/models, as vLLM lists each served name.
func (s *Server) card(name string) modelCard {
	return modelCard{
		ID: name, Object: "model", Created: s.created, OwnedBy: "vllm", Root: s.info.Path,
		MaxModelLen: s.maxLen,
		Permission: []modelPermission{{
			ID: "modelperm-" + randomHex(), Object: "model_permission", Created: s.created,
			AllowSampling: true, AllowLogprobs: true, AllowView: true, Organization: "*",
		}},
	}
}

// seq is one sequence being generated: a choice of the response.
type seq struct {
	index  int
	prompt int
	toks   []string
	finish string // "stop" or "length"
}

// generate serves /v1/chat/completions (chat) and /v1/completions.
func (s *Server) generate(w http.ResponseWriter, r *http.Request, chat bool) {
	arrival := time.Now()
	if !s.ready.Load() {
		writeError(w, http.StatusServiceUnavailable, "ServiceUnavailableError", "The model is still loading.")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequestError", "reading the request body: "+err.Error())
		return
	}
	var req genRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "BadRequestError", "invalid JSON body: "+err.Error())
		return
	}
	if req.Model != "" && req.Model != s.name && !slices.Contains(s.opt.Aliases, req.Model) {
		writeError(w, http.StatusNotFound, "NotFoundError", fmt.Sprintf("The model `%s` does not exist.", req.Model))
		return
	}
	seqs, status, msg := s.plan(&req, chat)
	if status != 0 {
		writeError(w, status, "BadRequestError", msg)
		return
	}
	if s.injectError() {
		writeError(w, http.StatusInternalServerError, "InternalServerError", "simulated engine failure (--error-rate)")
		return
	}

	// Queue for one of MaxNumSeqs slots.
	ctx := r.Context()
	s.m.waiting.Inc()
	select {
	case s.slots <- struct{}{}:
		s.m.waiting.Dec()
	case <-ctx.Done():
		s.m.waiting.Dec()
		s.m.Success.WithLabelValues("abort").Inc()
		return
	}
	s.m.Running.Inc()
	s.setKV()
	defer func() {
		<-s.slots
		s.m.Running.Dec()
		s.setKV()
	}()

	rng := s.rng(body)
	promptTokens, steps := 0, 0
	for _, q := range seqs {
		promptTokens += q.prompt
		steps = max(steps, len(q.toks))
	}
	s.m.PromptTokens.Add(float64(promptTokens))

	var stream *streamer
	if req.Stream {
		stream = newStreamer(w, s, chat, req.StreamOptions != nil && req.StreamOptions.IncludeUsage)
	}
	generated := 0
	last := arrival
	for step := 0; step < steps; step++ {
		d := s.delay(rng, s.table.Latency.ITLms)
		if step == 0 {
			d = s.delay(rng, s.table.Latency.TTFTms)
		}
		if !sleep(ctx, d) {
			s.m.GenerationTokens.Add(float64(generated))
			s.m.Success.WithLabelValues("abort").Inc()
			return
		}
		now := time.Now()
		if step == 0 {
			s.m.TTFT.Observe(now.Sub(arrival).Seconds())
		} else {
			s.m.ITL.Observe(now.Sub(last).Seconds())
			s.m.TPOT.Observe(now.Sub(last).Seconds())
		}
		last = now
		for _, q := range seqs {
			if step < len(q.toks) {
				generated++
			}
		}
		if stream != nil {
			if err := stream.step(seqs, step); err != nil {
				s.m.GenerationTokens.Add(float64(generated))
				s.m.Success.WithLabelValues("abort").Inc()
				return
			}
		}
	}
	s.m.GenerationTokens.Add(float64(generated))
	u := usage{PromptTokens: promptTokens, CompletionTokens: generated, TotalTokens: promptTokens + generated}
	// Counted before the last bytes go out, so a client that has read its
	// reply already sees it in /metrics; the crash comes after the flush.
	s.m.E2E.Observe(time.Since(arrival).Seconds())
	s.m.Success.WithLabelValues(seqs[0].finish).Inc()
	n := s.done.Add(1)
	crash := s.opt.CrashAfter > 0 && n >= int64(s.opt.CrashAfter) && s.opt.OnCrash != nil
	if stream != nil {
		stream.finish(seqs, u)
	} else if chat {
		resp := chatResponse{ID: "chatcmpl-" + randomHex(), Object: "chat.completion", Created: time.Now().Unix(), Model: s.name, Usage: u}
		for _, q := range seqs {
			resp.Choices = append(resp.Choices, chatChoice{Index: q.index, Message: message{Role: "assistant", Content: strings.Join(q.toks, ""), ToolCalls: []any{}}, FinishReason: q.finish})
		}
		writeJSON(w, http.StatusOK, resp)
	} else {
		resp := completionResponse{ID: "cmpl-" + randomHex(), Object: "text_completion", Created: time.Now().Unix(), Model: s.name, Usage: &u}
		for _, q := range seqs {
			f := q.finish
			resp.Choices = append(resp.Choices, completionChoice{Index: q.index, Text: strings.Join(q.toks, ""), FinishReason: &f})
		}
		writeJSON(w, http.StatusOK, resp)
	}
	if crash {
		http.NewResponseController(w).Flush()
		s.crash.Do(s.opt.OnCrash)
	}
}

// plan validates a request and works out every sequence to generate. On a
// bad request it returns an HTTP status and vLLM's message.
func (s *Server) plan(req *genRequest, chat bool) (seqs []seq, status int, msg string) {
	var ins []input
	if chat {
		in, err := chatInput(req.Messages)
		if err != nil {
			return nil, http.StatusBadRequest, err.Error()
		}
		ins = []input{in}
	} else {
		var err error
		if ins, err = completionInputs(req.Prompt); err != nil {
			return nil, http.StatusBadRequest, err.Error()
		}
	}
	n := 1
	if req.N != nil {
		n = *req.N
	}
	if n < 1 || n > maxN {
		return nil, http.StatusBadRequest, fmt.Sprintf("n must be from 1 to %d, got %d.", maxN, n)
	}
	if req.Temperature != nil && *req.Temperature < 0 {
		return nil, http.StatusBadRequest, fmt.Sprintf("temperature must be non-negative, got %g.", *req.Temperature)
	}
	if req.TopP != nil && (*req.TopP <= 0 || *req.TopP > 1) {
		return nil, http.StatusBadRequest, fmt.Sprintf("top_p must be in (0, 1], got %g.", *req.TopP)
	}
	stops, err := stopStrings(req.Stop)
	if err != nil {
		return nil, http.StatusBadRequest, err.Error()
	}
	mt := req.MaxTokens
	if chat && req.MaxCompletionTokens != nil {
		mt = req.MaxCompletionTokens
	}
	if mt != nil && *mt < 1 {
		return nil, http.StatusBadRequest, fmt.Sprintf("max_tokens must be at least 1, got %d.", *mt)
	}
	kind := "messages"
	if !chat {
		kind = "prompt"
	}
	for i, in := range ins {
		limit := s.maxLen - in.tokens
		if mt == nil {
			if in.tokens >= s.maxLen {
				return nil, http.StatusBadRequest, fmt.Sprintf("This model's maximum context length is %d tokens. However, you requested %d tokens in the %s, Please reduce the length of the %s.", s.maxLen, in.tokens, kind, kind)
			}
		} else {
			if in.tokens+*mt > s.maxLen {
				return nil, http.StatusBadRequest, fmt.Sprintf("This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the %s, %d in the completion). Please reduce the length of the %s or completion.", s.maxLen, in.tokens+*mt, in.tokens, kind, *mt, kind)
			}
			limit = *mt
		}
		reply := s.table.Reply(in.text)
		for _, st := range stops {
			if k := strings.Index(reply, st); k >= 0 {
				reply = reply[:k]
			}
		}
		toks := Tokenize(reply)
		finish := "stop"
		if len(toks) > limit {
			toks, finish = toks[:limit], "length"
		}
		for j := 0; j < n; j++ {
			seqs = append(seqs, seq{index: i*n + j, prompt: in.tokens, toks: toks, finish: finish})
		}
	}
	// The prompt is counted once per prompt, not once per choice.
	for k := range seqs {
		if seqs[k].index%n != 0 {
			seqs[k].prompt = 0
		}
	}
	return seqs, 0, ""
}

// injectError decides, from arrival order and Seed alone, whether this
// request fails: request i fails when floor((i+phase)*rate) steps up, so any
// run of k requests has floor or ceil of k*rate failures.
func (s *Server) injectError() bool {
	rate := s.opt.ErrorRate
	if rate <= 0 {
		return false
	}
	i := float64(s.arrivals.Add(1) - 1)
	return math.Floor((i+1+s.errPhase)*rate) > math.Floor((i+s.errPhase)*rate)
}

// rng is the request's random source: seeded from Seed and the request body,
// so identical requests get identical timings whatever runs beside them.
func (s *Server) rng(body []byte) *rand.Rand {
	h := fnv.New64a()
	h.Write(body)
	return rand.New(rand.NewPCG(uint64(s.opt.Seed), h.Sum64()))
}

func (s *Server) delay(rng *rand.Rand, ms float64) time.Duration {
	j := s.table.Latency.Jitter
	f := 1 + j*(2*rng.Float64()-1)
	return time.Duration(ms * f * float64(time.Millisecond))
}

func (s *Server) setKV() {
	// Gauge values are not readable; approximate from the slot channel.
	u := float64(len(s.slots)) / float64(cap(s.slots))
	s.m.kvUsage.Set(u)
	s.m.gpuCache.Set(u)
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, errorBody{Error: apiError{Message: msg, Type: typ, Code: status}})
}

func randomHex() string {
	return fmt.Sprintf("%016x%016x", rand.Uint64(), rand.Uint64())
}

// logged writes a uvicorn-style access line per request to AccessLog.
func (s *Server) logged(h http.Handler) http.Handler {
	if s.opt.AccessLog == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		s.logMu.Lock()
		fmt.Fprintf(s.opt.AccessLog, "INFO:     %s - \"%s %s %s\" %d %s\n", r.RemoteAddr, r.Method, r.URL.Path, r.Proto, rec.status, http.StatusText(rec.status))
		s.logMu.Unlock()
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
