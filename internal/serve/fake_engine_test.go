package serve

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"testing"
)

// TestMain lets the test binary double as a fake engine: Run tests start it
// with MODELSHIP_FAKE_ENGINE=1 and the engine arguments EngineArgs built.
func TestMain(m *testing.M) {
	if os.Getenv("MODELSHIP_FAKE_ENGINE") == "1" {
		os.Exit(fakeEngine(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeEngine is a tiny vLLM stand-in. It serves /health, /version,
// /v1/models, /v1/completions, a streaming /v1/chat/completions whose second
// chunk waits for POST /release, and POST /crash (exit 7). It appends what
// happens ("stream done", "signal terminated") to $MODELSHIP_FAKE_ENGINE_LOG
// so tests can check the order of events.
//
//	MODELSHIP_FAKE_ENGINE_EXIT=N        exit N at once, as a broken engine would
//	MODELSHIP_FAKE_ENGINE_IGNORE_TERM=1 ignore SIGTERM (tests the kill path)
func fakeEngine(args []string) int {
	var logMu sync.Mutex
	event := func(format string, a ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		f, err := os.OpenFile(os.Getenv("MODELSHIP_FAKE_ENGINE_LOG"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return
		}
		fmt.Fprintf(f, format+"\n", a...)
		f.Close()
	}
	if v := os.Getenv("MODELSHIP_FAKE_ENGINE_EXIT"); v != "" {
		n, _ := strconv.Atoi(v)
		fmt.Fprintln(os.Stderr, "fake engine: failing on purpose")
		return n
	}
	var port, name string
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "--port":
			port = args[i+1]
		case "--served-model-name":
			name = args[i+1]
		}
	}
	event("args %q", args)

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		for s := range sigs {
			event("signal %s", s)
			if s == syscall.SIGHUP || os.Getenv("MODELSHIP_FAKE_ENGINE_IGNORE_TERM") == "1" {
				continue
			}
			os.Exit(0)
		}
	}()

	release := make(chan struct{})
	var releaseOnce sync.Once
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"version":"0.0-fake"}`)
	})
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": []any{map[string]any{"id": name, "object": "model"}}})
	})
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"object":"text_completion","choices":[{"index":0,"text":"!","finish_reason":"length"}]}`)
	})
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"chunk\":1}\n\n")
		w.(http.Flusher).Flush()
		event("stream started")
		select {
		case <-release:
		case <-r.Context().Done():
			event("stream cancelled")
			return
		}
		fmt.Fprint(w, "data: {\"chunk\":2}\n\ndata: [DONE]\n\n")
		w.(http.Flusher).Flush()
		event("stream done")
	})
	mux.HandleFunc("POST /release", func(w http.ResponseWriter, r *http.Request) {
		releaseOnce.Do(func() { close(release) })
	})
	mux.HandleFunc("POST /crash", func(w http.ResponseWriter, r *http.Request) {
		event("crash")
		os.Exit(7)
	})
	err := http.ListenAndServe("127.0.0.1:"+port, mux)
	fmt.Fprintln(os.Stderr, "fake engine:", err)
	return 1
}
