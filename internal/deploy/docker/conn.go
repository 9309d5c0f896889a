package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// sshDialer connects to the engine the way the docker CLI does for ssh://
// hosts: it runs `ssh [-l USER] [-p PORT] HOST -- docker system dial-stdio`
// and speaks the API over the command's stdin and stdout. Docker's CLI module
// (github.com/docker/cli/cli/connhelper) does the same; it is not imported
// because it would bring the whole CLI module and its unversioned
// dependencies into this one for about sixty lines.
func sshDialer(u *url.URL) (func(ctx context.Context, network, addr string) (net.Conn, error), error) {
	if u.Host == "" {
		return nil, fmt.Errorf("ssh docker host %q: expected ssh://[USER@]HOST[:PORT]", u.Redacted())
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("ssh docker host %q: a path is not supported", u.Redacted())
	}
	args := []string{"-o", "ConnectTimeout=30"}
	if u.User != nil {
		if _, hasPass := u.User.Password(); hasPass {
			return nil, errors.New("ssh docker host: a password in the URL is not supported; use an ssh key or agent")
		}
		args = append(args, "-l", u.User.Username())
	}
	if p := u.Port(); p != "" {
		args = append(args, "-p", p)
	}
	args = append(args, "--", u.Hostname(), "docker", "system", "dial-stdio")
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		// The connection outlives the dial's ctx: the command is tied to
		// a context of its own, cancelled by Close.
		cctx, cancel := context.WithCancel(context.Background())
		cmd := exec.CommandContext(cctx, "ssh", args...)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			cancel()
			return nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			cancel()
			return nil, err
		}
		stderr := &tailBuffer{max: 4096}
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			cancel()
			return nil, fmt.Errorf("running ssh for docker host %s: %w", u.Hostname(), err)
		}
		return &cmdConn{cmd: cmd, cancel: cancel, in: stdin, out: stdout, stderr: stderr, host: u.Hostname()}, nil
	}, nil
}

// cmdConn is a net.Conn over a command's stdin/stdout.
type cmdConn struct {
	cmd    *exec.Cmd
	cancel context.CancelFunc
	in     io.WriteCloser
	out    io.ReadCloser
	stderr *tailBuffer
	host   string
	once   sync.Once
}

func (c *cmdConn) Read(p []byte) (int, error) {
	n, err := c.out.Read(p)
	if err == io.EOF && n == 0 {
		if msg := strings.TrimSpace(c.stderr.String()); msg != "" {
			return 0, fmt.Errorf("ssh %s: %s", c.host, msg)
		}
	}
	return n, err
}
func (c *cmdConn) Write(p []byte) (int, error) { return c.in.Write(p) }
func (c *cmdConn) Close() error {
	c.once.Do(func() {
		c.in.Close()
		c.cancel()
		_ = c.cmd.Wait()
	})
	return nil
}
func (c *cmdConn) LocalAddr() net.Addr                { return dummyAddr{} }
func (c *cmdConn) RemoteAddr() net.Addr               { return dummyAddr{} }
func (c *cmdConn) SetDeadline(t time.Time) error      { return nil }
func (c *cmdConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *cmdConn) SetWriteDeadline(t time.Time) error { return nil }

type dummyAddr struct{}

func (dummyAddr) Network() string { return "ssh" }
func (dummyAddr) String() string  { return "ssh" }

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = b.buf[len(b.buf)-b.max:]
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// DefaultReconnectFor is how long a Docker host that refuses connections
// is tried again: a daemon restart takes seconds.
const DefaultReconnectFor = time.Minute

// reconnecting wraps dial: once the engine has answered, a connection it
// refuses (its daemon restarting, the socket gone meanwhile) is tried
// again, for up to Options.ReconnectFor, and the log says so once. Nothing
// was sent on a connection that was never made, so every call, an undo's
// too, can wait out a daemon restart instead of failing half done. An
// engine that never answered fails at once.
func (t *Target) reconnecting(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var said sync.Once
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		limit := t.opt.ReconnectFor
		if limit == 0 {
			limit = DefaultReconnectFor
		}
		deadline := time.Now().Add(limit)
		for wait := 100 * time.Millisecond; ; wait = min(2*wait, time.Second) {
			c, err := dial(ctx, network, addr)
			if err == nil {
				t.answered.Store(true)
			}
			if err == nil || !refused(err) || !t.answered.Load() || time.Now().Add(wait).After(deadline) {
				return c, err
			}
			said.Do(func() {
				t.logf("docker host %s refuses connections (its daemon restarting?): trying again for up to %s", t.host, limit)
			})
			select {
			case <-ctx.Done():
				return nil, err
			case <-time.After(wait):
			}
		}
	}
}

// refused: the engine is not there now (connection refused, its unix
// socket missing), as opposed to unreachable for good.
func refused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT)
}
