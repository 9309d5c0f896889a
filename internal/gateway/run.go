package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
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
// running after that are cut off and reported in the error.
func (g *Gateway) Serve(ctx context.Context, pub, admin net.Listener, drain time.Duration) error {
	if drain <= 0 {
		drain = DefaultDrainTimeout
	}
	ps := &http.Server{Handler: g, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	as := &http.Server{Handler: g.AdminHandler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- ps.Serve(pub) }()
	go func() { errc <- as.Serve(admin) }()
	select {
	case err := <-errc:
		ps.Close()
		as.Close()
		return fmt.Errorf("gateway stopped: %w", err)
	case <-ctx.Done():
	}
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
	as.Close()
	if err == nil {
		g.logger().Info("stopped: drained")
	}
	return err
}
