package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/modelship/modelship/internal/testenv"
)

const simModels = "../../testdata/models/"

var simAddr = regexp.MustCompile(`running on (http://127\.0\.0\.1:\d+)`)

// startSim runs `modelship sim ARGS` in process and returns its base URL,
// its log, a stop function and the channel its exit code arrives on.
func startSim(t *testing.T, args ...string) (url string, log *testenv.SyncBuffer, stop func(), code chan int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log = &testenv.SyncBuffer{}
	code = make(chan int, 1)
	go func() {
		code <- run(ctx, append([]string{"sim"}, args...), stdio{in: strings.NewReader(""), out: io.Discard, err: log})
	}()
	waitUntil(t, code, log, "sim listening", func() bool {
		m := simAddr.FindStringSubmatch(log.String())
		if m != nil {
			url = m[1]
		}
		return m != nil
	})
	t.Cleanup(cancel)
	return url, log, cancel, code
}

func simChat(t *testing.T, url, model, text string) (int, string) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"model": model, "messages": []map[string]string{{"role": "user", "content": text}}})
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	body, _ := io.ReadAll(resp.Body)
	json.Unmarshal(body, &r)
	if len(r.Choices) == 0 {
		return resp.StatusCode, string(body)
	}
	return resp.StatusCode, r.Choices[0].Message.Content
}

// waitHealthy waits for the sim started by startSim (its exit code on
// code, its log in log) to answer /health with 200.
func waitHealthy(t *testing.T, url string, code <-chan int, log fmt.Stringer) {
	t.Helper()
	waitUntil(t, code, log, "/health answering 200", func() bool {
		resp, err := http.Get(url + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

func TestSimServesCheckpoint(t *testing.T) {
	path := simModels + "good"
	// The vLLM-only flags are accepted so one argument list starts either engine.
	url, log, stop, code := startSim(t, path, "--host", "127.0.0.1", "--port", "0", "--load-time", "0", "--ttft", "0s", "--itl", "0s",
		"--gpu-memory-utilization", "0.9", "--tensor-parallel-size", "1", "--dtype", "auto", "--enforce-eager")
	waitHealthy(t, url, code, log)
	// The served name defaults to PATH as given.
	if c, got := simChat(t, url, path, "What is the capital of France?"); c != 200 || got != "The capital of France is Paris." {
		t.Fatalf("chat: %d %q", c, got)
	}
	if c, got := simChat(t, url, "other", "hi"); c != 404 || !strings.Contains(got, "The model `other` does not exist.") {
		t.Fatalf("wrong model: %d %s", c, got)
	}
	stop()
	if c := <-code; c != exitOK {
		t.Fatalf("exit %d after SIGTERM-like cancel, want 0:\n%s", c, log.String())
	}
	out := log.String()
	for _, want := range []string{"loading checkpoint " + path, "application startup complete", `"POST /v1/chat/completions HTTP/1.1" 200 OK`, "shut down"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestSimModelFlagAndResponses(t *testing.T) {
	url, log, stop, code := startSim(t, "--model", simModels+"regressed", "--served-model-name", "m", "--host", "127.0.0.1", "--port", "0",
		"--load-time", "0s", "--ttft", "0s", "--itl", "0s", "--disable-log-requests")
	waitHealthy(t, url, code, log)
	if c, got := simChat(t, url, "m", "capital of france?"); c != 200 || got != "The capital of France is Lyon." {
		t.Fatalf("regressed: %d %q", c, got)
	}
	stop()
	<-code
}

func TestSimRefusesCorruptCheckpoint(t *testing.T) {
	var errb bytes.Buffer
	c := run(context.Background(), []string{"sim", simModels + "corrupt", "--host", "127.0.0.1", "--port", "0"}, stdio{out: io.Discard, err: &errb})
	want := filepath.Join(simModels+"corrupt", "model.safetensors")
	if c != exitFailed || !strings.Contains(errb.String(), want) || strings.Contains(errb.String(), "running on") {
		t.Fatalf("exit %d, want 1 naming %s before listening:\n%s", c, want, errb.String())
	}
}

func TestSimCrashAfter(t *testing.T) {
	exited := make(chan int, 1)
	old := simExit
	simExit = func(code int) { exited <- code }
	defer func() { simExit = old }()
	url, log, stop, code := startSim(t, simModels+"good", "--host", "127.0.0.1", "--port", "0", "--load-time", "0", "--ttft", "0s", "--itl", "0s", "--crash-after", "2")
	defer func() { stop(); <-code }()
	waitHealthy(t, url, code, log)
	simChat(t, url, simModels+"good", "one")
	select {
	case c := <-exited:
		t.Fatalf("exited %d after 1 request", c)
	default:
	}
	// The response of the last request still reaches the client.
	if c, got := simChat(t, url, simModels+"good", "2+2?"); c != 200 || got != "2+2 = 4." {
		t.Fatalf("crashing request: %d %q", c, got)
	}
	if c := <-exited; c != exitFailed {
		t.Fatalf("crash exit code %d, want 1", c)
	}
}

func TestSimUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, exitOK, "-crash-after int"},
		{[]string{simModels + "good", "--ttft", "-5ms"}, exitUsage, "-ttft"},
		{[]string{}, exitUsage, "want one checkpoint PATH"},
		{[]string{"a", "--model", "b"}, exitUsage, "want one checkpoint PATH"},
		{[]string{"a", "b"}, exitUsage, "want one checkpoint PATH"},
		{[]string{simModels + "good", "--error-rate", "2"}, exitUsage, "--error-rate"},
		{[]string{simModels + "good", "--jitter", "1.5"}, exitUsage, "--jitter"},
		{[]string{simModels + "good", "--bogus"}, exitUsage, "flag provided but not defined"},
		{[]string{simModels + "good", "--responses", "nope.json"}, exitUsage, "nope.json"},
		{[]string{"/does/not/exist"}, exitFailed, "/does/not/exist"},
	} {
		var errb bytes.Buffer
		c := run(context.Background(), append([]string{"sim"}, tc.args...), stdio{out: io.Discard, err: &errb})
		if c != tc.code || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("sim %q: exit %d, want %d with %q:\n%s", tc.args, c, tc.code, tc.want, errb.String())
		}
	}
	var errb bytes.Buffer
	run(context.Background(), []string{"sim", "--help"}, stdio{out: io.Discard, err: &errb})
	for _, f := range []string{"-host", "-port", "-served-model-name", "-max-model-len", "-max-num-seqs", "-load-time", "-ttft", "-itl",
		"-jitter", "-seed", "-error-rate", "-never-ready", "-drain-timeout", "-gpu-memory-utilization", "-tensor-parallel-size", "-dtype", "-model"} {
		if !strings.Contains(errb.String(), "  "+f) {
			t.Errorf("--help does not explain %s", f)
		}
	}
}
