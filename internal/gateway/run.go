package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// DefaultDrainTimeout bounds how long in-flight requests may run after the
// gateway is told to stop.
const DefaultDrainTimeout = 30 * time.Second

// ListenAdmin opens the admin unix socket at path (parent directories created,
// mode 0600). A stale socket file left by a gateway that died is removed;
// a socket some process still answers on is an error.
func ListenAdmin(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("admin socket %s: a file that is not a socket is in the way", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("admin socket %s: another gateway is listening on it", path)
		}
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return ln, nil
}

// Serve answers public traffic on pub and the admin API on admin until ctx
// is cancelled; then it stops accepting, lets in-flight requests finish for
// up to drain (default DefaultDrainTimeout), and returns. Requests still
// running after that are cut off and reported in the error. After an
// upgrade in place (POST /upgrade) it drains the same way and then waits
// for the new gateway, passing ctx's cancellation on to it as SIGTERM.
func (g *Gateway) Serve(ctx context.Context, pub, admin net.Listener, drain time.Duration) error {
	if drain <= 0 {
		drain = DefaultDrainTimeout
	}
	ps := &http.Server{Handler: g, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				g.conns.Add(1)
			case http.StateClosed, http.StateHijacked:
				g.conns.Add(-1)
			}
		}}
	var admins []*http.Server
	defer func() {
		for _, as := range admins {
			as.Close()
		}
	}()
	pubErr, admErr := make(chan error, 1), make(chan error, 1)
	serveAdmin := func(ln net.Listener) {
		as := &http.Server{Handler: g.AdminHandler(), ReadHeaderTimeout: 10 * time.Second}
		admins = append(admins, as)
		go func() { admErr <- as.Serve(ln) }()
	}
	go func() { pubErr <- ps.Serve(pub) }()
	serveAdmin(admin)
	var child *exec.Cmd
	for child == nil {
		select {
		case err := <-pubErr:
			ps.Close()
			return fmt.Errorf("gateway stopped: %w", err)
		case err := <-admErr:
			ps.Close()
			return fmt.Errorf("gateway stopped: %w", err)
		case call := <-g.upgrades:
			path := admin.Addr().String()
			admin.Close() // the new gateway takes the socket; the caller's connection stays
			<-admErr
			cmd, res, herr := g.handOff(ctx, call.binary, pub, path)
			if herr != nil {
				g.logger().Error("upgrade refused: this gateway keeps serving", "binary", call.binary, "error", herr.Error())
				var err error
				if admin, err = ListenAdmin(path); err != nil {
					call.reply <- upgradeReply{err: err}
					ps.Close()
					return fmt.Errorf("gateway stopped: after a failed upgrade: %w", err)
				}
				serveAdmin(admin)
				call.reply <- upgradeReply{err: herr}
				continue
			}
			g.logger().Info("handed over to a new binary: draining this one's requests", "binary", res.Binary, "pid", res.PID, "took", res.Took)
			call.reply <- upgradeReply{res: res}
			child = cmd
		case <-ctx.Done():
			return g.drain(ps, drain)
		}
	}
	g.handOver(ps, pub, drain)
	// Stay while the new gateway runs (this may be PID 1 of a container):
	// pass a stop on, and end with it.
	select {
	case err := <-g.child:
		return childExit(err)
	case <-ctx.Done():
	}
	child.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-g.child:
		return childExit(err)
	case <-time.After(drain + 10*time.Second):
		child.Process.Kill()
		return fmt.Errorf("the gateway handed over to (pid %d) did not stop within %s of SIGTERM: killed", child.Process.Pid, drain+10*time.Second)
	}
}

func childExit(err error) error {
	if err != nil {
		return fmt.Errorf("the gateway handed over to: %w", err)
	}
	return nil
}

// HandOverIdle is how long connections that carry no request may stay
// open on a gateway that handed over (each closes after its next answer).
const HandOverIdle = 5 * time.Second

// handOver lets the new gateway take every connection: this one stops
// accepting (the listening socket stays open in the new process), each
// open connection closes after its next answer, and after drain (in-flight
// requests) or HandOverIdle (connections with none) the rest are closed.
func (g *Gateway) handOver(ps *http.Server, pub net.Listener, drain time.Duration) {
	g.handingOver.Store(true)
	pub.Close()
	start := time.Now()
	for {
		inflight, conns, took := g.State().InFlight, g.conns.Load(), time.Since(start)
		if conns == 0 || (inflight == 0 && took > HandOverIdle) || took > drain {
			if inflight > 0 {
				g.logger().Warn("handed over: requests still in flight after the drain timeout were cut off", "in_flight", inflight, "timeout", drain.String())
			}
			ps.Close()
			g.logger().Info("handed over: this gateway's connections are closed", "after", took.Round(time.Millisecond).String(), "idle_closed", conns)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// drain stops accepting on ps and lets in-flight requests finish for up
// to drain.
func (g *Gateway) drain(ps *http.Server, drain time.Duration) error {
	inflight := g.State().InFlight
	g.logger().Info("stopping: draining in-flight requests", "in_flight", inflight, "timeout", drain.String())
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	err := ps.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		left := g.State().InFlight
		ps.Close()
		err = fmt.Errorf("%d request(s) still in flight after the %s drain timeout were cut off", left, drain)
	}
	if err == nil {
		g.logger().Info("stopped: drained")
	}
	return err
}
