package serve

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/modelship/modelship/internal/buildinfo"
	"github.com/modelship/modelship/serving"
)

// ExitError reports that the engine exited without being asked to.
type ExitError struct {
	Code   int    // the engine's exit status; -1 when a signal killed it
	Signal string // the signal that killed it, if any
	Err    error  // what exec reported
}

func (e *ExitError) Error() string {
	if e.Signal != "" {
		return "engine was killed by signal " + e.Signal
	}
	return "engine exited on its own with status " + strconv.Itoa(e.Code)
}

func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode is the status modelship should exit with so that the container
// reports the engine's failure: the engine's own status, 128+N when signal N
// killed it (as a shell reports), and 1 when it exited 0, since a server that
// stops by itself has failed.
func (e *ExitError) ExitCode() int {
	var xe *exec.ExitError
	if errors.As(e.Err, &xe) {
		if ws, ok := xe.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
	}
	if e.Code > 0 {
		return e.Code
	}
	return 1
}

func exitError(err error) *ExitError {
	e := &ExitError{Err: err}
	var xe *exec.ExitError
	if errors.As(err, &xe) {
		e.Code = xe.ExitCode()
		if ws, ok := xe.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			e.Signal = ws.Signal().String()
		}
	}
	return e
}

// Run starts the engine, serves the proxy on the public address and blocks
// until it is time to stop:
//
//   - SIGTERM or SIGINT (or ctx being cancelled, treated as SIGTERM): stop
//     accepting connections, let in-flight requests finish for up to
//     DrainTimeout (a second signal cuts the drain short), then send the
//     signal to the engine, wait up to StopTimeout, and kill it. Returns nil
//     when the engine stopped in time.
//   - SIGHUP is forwarded to the engine at once.
//   - The engine exiting on its own closes the server and returns an
//     *ExitError with its status.
//
// Run never kills an engine for being slow to start; it logs progress while
// waiting.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	started := time.Now()
	if cfg.EnginePort == 0 {
		port, err := freePort()
		if err != nil {
			return fmt.Errorf("pick an engine port: %w", err)
		}
		cfg.EnginePort = port
	}
	deployedAt := cfg.DeployedAt
	if deployedAt.IsZero() {
		deployedAt = started
	}
	info := VersionInfo{
		ReleaseID:        cfg.ReleaseID,
		ServedModelName:  cfg.servedName(),
		ModelPath:        cfg.ModelPath,
		Digest:           cfg.ModelDigest,
		Image:            cfg.Image,
		ImageDigest:      cfg.ImageDigest,
		GitSHA:           cfg.GitSHA,
		DeployedAt:       deployedAt.UTC().Format(time.RFC3339),
		ModelshipVersion: buildinfo.String(),
		Engine:           cfg.Engine,
	}
	program, argv := Command(cfg)
	info.EngineArgv = argv
	switch {
	case cfg.ModelDigest != "":
		info.DigestStatus = DigestProvided
	case cfg.Digest != nil:
		info.DigestStatus = DigestComputing
	default:
		info.DigestStatus = DigestUnknown
	}
	engineURL := &url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.EnginePort))}
	proxy := NewProxy(engineURL, info)
	proxy.Logger = log
	proxy.APIKey = cfg.APIKey
	proxy.AdminToken = cfg.AdminToken
	defer proxy.closeRoute()
	proxy.DrainHold = cfg.DrainHold
	proxy.API = APIFor(cfg.Engine)
	if proxy.API.NoMetrics {
		proxy.MeasureCompletions(info.ServedModelName)
	}
	env := engineEnviron(os.Environ())
	if cfg.Engine == EngineOllama {
		var own []string
		var mf string
		var cleanup func()
		var err error
		if env, own, mf, cleanup, err = ollamaEngine(cfg, program, env, proxy, log); err != nil {
			return fmt.Errorf("engine ollama: %w", err)
		}
		defer cleanup()
		proxy.mu.Lock()
		proxy.info.EngineEnv, proxy.info.EngineModelfile = own, mf
		proxy.mu.Unlock()
	}
	if cfg.ReadyTTL > 0 {
		proxy.ReadyTTL = cfg.ReadyTTL
	}

	ln := cfg.Listener
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))
		if err != nil {
			return fmt.Errorf("listen on the public port: %w", err)
		}
	}

	sigs := cfg.Signals
	if sigs == nil {
		ch := make(chan os.Signal, 4)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		defer signal.Stop(ch)
		sigs = ch
	}

	cmd := exec.Command(program, argv[1:]...)
	cmd.Args = argv // for sim, argv[0] "vllm" makes modelship the simulator
	cmd.Env = append(env, cfg.EngineEnv...)
	cmd.Stdout, cmd.Stderr = cfg.Stdout, cfg.Stderr
	if cmd.Stdout == nil {
		cmd.Stdout = os.Stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = 2 * time.Second // do not hang on output pipes a grandchild keeps open
	log.Info("starting engine", "engine", cfg.Engine, "model", info.ServedModelName, "engine_addr", engineURL.Host, "cmd", serving.JoinWords(argv))
	if err := cmd.Start(); err != nil {
		ln.Close()
		return fmt.Errorf("start engine %q: %w", program, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	srv := &http.Server{
		Handler:           proxy,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ConnContext:       ConnContext,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	if cfg.AdminSocket != "" {
		admin, err := listenAdmin(cfg.AdminSocket)
		if err != nil {
			srv.Close()
			(&runner{cfg: cfg, log: log, cmd: cmd, exited: exited}).stopEngine(syscall.SIGTERM)
			return err
		}
		asrv := &http.Server{Handler: proxy.AdminHandler(), ReadHeaderTimeout: 10 * time.Second}
		go asrv.Serve(admin)
		defer asrv.Close() // also removes the socket file
	}
	log.Info("listening", "addr", ln.Addr().String(), "pid", cmd.Process.Pid)

	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	if info.DigestStatus == DigestComputing {
		go func() {
			t := time.Now()
			d, err := cfg.Digest(bg, cfg.ModelPath)
			if bg.Err() != nil {
				return
			}
			proxy.SetDigest(d, err)
			if err != nil {
				log.Warn("model digest failed", "path", cfg.ModelPath, "err", err)
				return
			}
			log.Info("model digest computed", "digest", d, "took", time.Since(t).Round(time.Millisecond).String())
		}()
	}
	go waitForEngine(bg, log, proxy, cfg.ProgressInterval, started)

	r := &runner{cfg: cfg, log: log, cmd: cmd, exited: exited, srv: srv, sigs: sigs}
	for {
		select {
		case err := <-exited:
			srv.Close()
			e := exitError(err)
			log.Error("engine exited on its own; stopping", "status", e.Code, "signal", e.Signal, "err", err, "uptime", time.Since(started).Round(time.Second).String())
			return e
		case err := <-serveErr:
			log.Error("public server failed; stopping engine", "err", err)
			r.stopEngine(syscall.SIGTERM)
			return fmt.Errorf("serve: %w", err)
		case <-ctx.Done():
			return r.shutdown(syscall.SIGTERM, "context done")
		case s := <-sigs:
			if isStop(s) {
				return r.shutdown(s, s.String())
			}
			r.forward(s)
		}
	}
}

func isStop(s os.Signal) bool { return s == syscall.SIGTERM || s == os.Interrupt }

type runner struct {
	cfg    Config
	log    *slog.Logger
	cmd    *exec.Cmd
	exited chan error
	srv    *http.Server
	sigs   <-chan os.Signal
}

func (r *runner) forward(s os.Signal) {
	r.log.Info("forwarding signal to engine", "signal", s.String())
	if err := r.cmd.Process.Signal(s); err != nil {
		r.log.Warn("forward signal", "signal", s.String(), "err", err)
	}
}

// shutdown drains the public server, then stops the engine with sig.
func (r *runner) shutdown(sig os.Signal, why string) error {
	r.log.Info("draining: refusing new connections, waiting for in-flight requests", "reason", why, "drain_timeout", r.cfg.DrainTimeout.String())
	t := time.Now()
	drainCtx, cancel := context.WithTimeout(context.Background(), r.cfg.DrainTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.srv.Shutdown(drainCtx) }()
drain:
	for {
		select {
		case err := <-done:
			if err != nil {
				r.log.Warn("drain timed out; closing remaining connections", "after", time.Since(t).Round(time.Millisecond).String())
				r.srv.Close()
			} else {
				r.log.Info("drained", "took", time.Since(t).Round(time.Millisecond).String())
			}
			break drain
		case s := <-r.sigs:
			if isStop(s) {
				r.log.Warn("second signal: cutting the drain short", "signal", s.String())
				r.srv.Close()
				cancel()
				<-done
				break drain
			}
			r.forward(s)
		case err := <-r.exited:
			r.srv.Close()
			e := exitError(err)
			r.log.Error("engine exited while draining", "status", e.Code, "signal", e.Signal, "err", err)
			return e
		}
	}
	return r.stopEngine(sig)
}

// stopEngine sends sig to the engine and kills its process group if it has
// not exited after StopTimeout.
func (r *runner) stopEngine(sig os.Signal) error {
	r.log.Info("stopping engine", "signal", sig.String(), "stop_timeout", r.cfg.StopTimeout.String())
	t := time.Now()
	if err := r.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		r.log.Warn("signal engine", "err", err)
	}
	timer := time.NewTimer(r.cfg.StopTimeout)
	defer timer.Stop()
	select {
	case err := <-r.exited:
		r.log.Info("engine stopped", "exit", exitStatus(err), "took", time.Since(t).Round(time.Millisecond).String())
		return nil
	case <-timer.C:
	}
	r.log.Warn("engine did not stop in time; killing it", "stop_timeout", r.cfg.StopTimeout.String())
	killGroup(r.cmd.Process)
	<-r.exited
	return fmt.Errorf("engine did not exit within %s of %s and was killed", r.cfg.StopTimeout, sig)
}

func exitStatus(err error) string {
	if err == nil {
		return "0"
	}
	return err.Error()
}

// waitForEngine polls the engine until it is healthy, records its version,
// then until a full readiness check passes, logging progress every interval.
// It never gives up: a slow engine is not a failed engine.
func waitForEngine(ctx context.Context, log *slog.Logger, p *Proxy, interval time.Duration, started time.Time) {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	poll := 500 * time.Millisecond
	lastLog := time.Now()
	healthy := false
	for {
		var state string
		if !healthy {
			hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			code, err := p.EngineHealth(hctx)
			cancel()
			switch {
			case err != nil:
				state = "/health: not listening yet"
			case code == http.StatusOK:
				healthy = true
				log.Info("engine healthy", "after", time.Since(started).Round(time.Second).String())
				vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				v, err := p.EngineVersion(vctx)
				cancel()
				if err != nil {
					log.Warn("engine version unknown", "err", err)
				} else {
					p.SetEngineVersion(v)
					log.Info("engine version", "version", v)
				}
			case code == http.StatusServiceUnavailable:
				state = "/health 503 (loading)"
			default:
				state = fmt.Sprintf("/health %d", code)
			}
		}
		if healthy {
			st := p.Ready(ctx)
			if st.Ready {
				log.Info("ready", "model", st.Model, "after", time.Since(started).Round(time.Second).String())
				return
			}
			state = st.Check + ": " + st.Reason
		}
		if ctx.Err() != nil {
			return
		}
		if time.Since(lastLog) >= interval {
			log.Info("waiting for engine: "+state, "elapsed", time.Since(started).Round(time.Second).String())
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(poll):
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// engineEnviron is the engine's environment: serve's, without the API key,
// which serve checks itself (the engine answers serve's readiness checks on
// loopback without one), and without the admin token, which is serve's
// alone.
func engineEnviron(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		return strings.HasPrefix(kv, serving.EnvAPIKey+"=") || strings.HasPrefix(kv, serving.EnvAdminToken+"=")
	})
}

// listenAdmin listens on the admin unix socket, readable and writable by
// the serving user only. A socket file left by a serve that is gone is
// replaced; one that answers belongs to a live serve and is an error.
func listenAdmin(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("admin socket %s: another modelship serve is listening there; give each its own --admin-socket", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("admin socket %s: remove the stale socket: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	return ln, nil
}
