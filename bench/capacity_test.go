package bench_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelship/modelship/bench"
	"github.com/modelship/modelship/bench/metrics"
)

// BenchmarkCapacity measures how many streamed requests per second the load
// generator sustains against `modelship sim` (TTFT 0, ITL 0, 8 output tokens
// per request) on loopback, and its own cost per request (CPU time from
// getrusage, allocations). The simulator runs as a separate process so the
// two are measured apart; both share the machine's cores. When wrk is
// installed it is run against the same endpoint with the same request body
// for comparison. Run it with bench/capacity.sh, or:
//
//	go test ./bench/ -run '^$' -bench '^BenchmarkCapacity$' -benchtime 1x -v
//
// MODELSHIP_CAPACITY_ENDPOINT uses a server already running instead;
// MODELSHIP_CAPACITY_CONCURRENCY (default 32) and
// MODELSHIP_CAPACITY_SECONDS (default 5) set the load.
func BenchmarkCapacity(b *testing.B) {
	conc := envInt("MODELSHIP_CAPACITY_CONCURRENCY", 32)
	secs := envInt("MODELSHIP_CAPACITY_SECONDS", 5)
	endpoint := os.Getenv("MODELSHIP_CAPACITY_ENDPOINT")
	simPID := 0
	if endpoint == "" {
		endpoint, simPID = startSimProcess(b)
	}
	prompt := bench.Prompt{Text: "Tell me about yourself."} // the default reply: 8+ tokens
	c, err := bench.NewClient(bench.Target{Endpoint: endpoint, MaxTokens: 8}, conc)
	if err != nil {
		b.Fatal(err)
	}
	var s *metrics.Summary
	var cpu time.Duration
	var simCPU time.Duration
	var allocs uint64
	for b.Loop() {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		cpu0 := selfCPU()
		sim0 := procCPU(simPID)
		ch, err := c.Attack(context.Background(), []bench.Prompt{prompt},
			bench.Load{Mode: bench.Concurrency, Concurrency: conc, Duration: time.Duration(secs) * time.Second, Warmup: 4 * conc}, nil)
		if err != nil {
			b.Fatal(err)
		}
		a := metrics.NewAggregator(metrics.SLO{})
		n := 0
		for r := range ch {
			a.Add(r)
			n++
		}
		cpu = selfCPU() - cpu0
		simCPU = procCPU(simPID) - sim0
		runtime.ReadMemStats(&m1)
		allocs = (m1.Mallocs - m0.Mallocs) / uint64(max(n, 1))
		s = a.Close()
		cpu /= time.Duration(max(n, 1))
		simCPU /= time.Duration(max(n, 1))
	}
	if s.Failed > 0 {
		b.Fatalf("%d of %d requests failed: %v", s.Failed, s.Requests, s.Failures)
	}
	if s.OutputTokens != int64(s.Succeeded)*8 {
		b.Fatalf("%d output tokens for %d requests; want 8 each", s.OutputTokens, s.Succeeded)
	}
	b.ReportMetric(s.RequestsPerSec, "req/s")
	b.ReportMetric(s.OutputTokensPerSec, "out_tok/s")
	b.ReportMetric(float64(cpu)/1e3, "client_cpu_us/req")
	b.ReportMetric(float64(allocs), "client_allocs/req")
	if simPID > 0 {
		b.ReportMetric(float64(simCPU)/1e3, "sim_cpu_us/req")
	}
	b.ReportMetric(s.E2EL.Median*1e3, "median_e2el_ms")

	wrkRate, wrkNote := runWrk(b, c, &prompt, conc, secs)
	if wrkRate > 0 {
		b.ReportMetric(wrkRate, "wrk_req/s")
		b.ReportMetric(s.RequestsPerSec/wrkRate, "ratio_vs_wrk")
	}
	fmt.Printf("\ncapacity: %d connections, %d s, 8 output tokens per request, endpoint %s\n", conc, secs, endpoint)
	fmt.Printf("  %-28s %12s %14s %16s\n", "client", "requests/s", "out tokens/s", "client CPU/req")
	fmt.Printf("  %-28s %12.0f %14.0f %13.1f µs\n", "modelship bench (streamed)", s.RequestsPerSec, s.OutputTokensPerSec, float64(cpu)/1e3)
	if wrkRate > 0 {
		fmt.Printf("  %-28s %12.0f %14.0f %16s\n", "wrk (same body, no parsing)", wrkRate, wrkRate*8, "-")
		fmt.Printf("  ratio modelship/wrk: %.2f\n", s.RequestsPerSec/wrkRate)
	} else {
		fmt.Printf("  wrk: %s\n", wrkNote)
	}
	if simPID > 0 {
		fmt.Printf("  simulator CPU per request: %.1f µs (separate process)\n", float64(simCPU)/1e3)
	}
	fmt.Printf("  median E2EL %.2f ms, p99 %.2f ms; %d allocations/request in the client\n", s.E2EL.Median*1e3, s.E2EL.P99*1e3, allocs)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is another process's user+system CPU time from /proc (0 when
// unknown).
func procCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name: utime and stime are
	// fields 14 and 15 (1-based), in clock ticks (100 per second on Linux).
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

// startSimProcess builds modelship and starts `modelship sim` on a free
// loopback port with no latency; it returns the base URL and the PID.
func startSimProcess(b *testing.B) (string, int) {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "modelship")
	build := exec.Command("go", "build", "-o", bin, "../cmd/modelship")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building modelship: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "sim", goodModel, "--host", "127.0.0.1", "--port", strconv.Itoa(port),
		"--ttft", "0s", "--itl", "0s", "--load-time", "0s", "--disable-log-requests", "--max-num-seqs", "1024")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return url, cmd.Process.Pid
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("simulator not ready after 20s: %s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var wrkRate = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

// runWrk runs wrk with one thread and conc connections, POSTing the same
// streamed request body, and returns its requests/s (0 and why when it
// could not run).
func runWrk(b *testing.B, c *bench.Client, p *bench.Prompt, conc, secs int) (float64, string) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		return 0, "not installed (apt-get install -y wrk)"
	}
	script := filepath.Join(b.TempDir(), "post.lua")
	lua := fmt.Sprintf("wrk.method = \"POST\"\nwrk.body = %s\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Accept\"] = \"text/event-stream\"\n",
		strconv.Quote(string(c.Body(p))))
	if err := os.WriteFile(script, []byte(lua), 0o644); err != nil {
		b.Fatal(err)
	}
	out, err := exec.Command(wrk, "-t1", "-c", strconv.Itoa(conc), "-d", fmt.Sprintf("%ds", secs), "-s", script, c.URL()).CombinedOutput()
	if err != nil {
		return 0, fmt.Sprintf("failed: %v: %s", err, out)
	}
	m := wrkRate.FindSubmatch(out)
	if m == nil {
		return 0, "no Requests/sec in its output: " + string(out)
	}
	if bytes.Contains(out, []byte("Non-2xx")) {
		return 0, "non-2xx answers: " + string(out)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v, ""
}
