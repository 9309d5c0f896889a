package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

// A gateway hands over to a new binary of itself without closing its
// public port (POST /upgrade): it starts the new binary with the listening
// socket as file descriptor 3 (ListenFDEnv says so), waits until the new
// gateway answers on the admin socket, then stops accepting, lets its own
// in-flight requests finish, and stays only to pass signals on to the new
// process and exit with it (it may be a container's PID 1). Connections
// arriving meanwhile wait in the socket's backlog: none is refused.

// ListenFDEnv tells a gateway that file descriptor 3 is its public
// listener, handed over by the gateway it replaces.
const ListenFDEnv = "MODELSHIP_GATEWAY_LISTEN_FD"

// HandoffTimeout bounds how long the new binary may take to answer.
const HandoffTimeout = 20 * time.Second

// InheritedListener is the public listener a replaced gateway handed over
// (nil when this process was not started by one).
func InheritedListener() (net.Listener, error) {
	v := os.Getenv(ListenFDEnv)
	if v == "" {
		return nil, nil
	}
	os.Unsetenv(ListenFDEnv) // not for this process's own children
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("%s=%q: expected a file descriptor number of 3 or more", ListenFDEnv, v)
	}
	f := os.NewFile(uintptr(fd), "inherited-listener")
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("%s=%d: %w", ListenFDEnv, fd, err)
	}
	return ln, nil
}

// UpgradeRequest is the body of POST /upgrade.
type UpgradeRequest struct {
	// Binary is the modelship binary to run the gateway with from now on,
	// with the same arguments.
	Binary string `json:"binary"`
}

// UpgradeResult answers POST /upgrade once the new gateway answers.
type UpgradeResult struct {
	PID          int    `json:"pid"` // the new gateway's
	Binary       string `json:"binary"`
	BinarySHA256 string `json:"binary_sha256"`
	Took         string `json:"took"`
}

type upgradeCall struct {
	binary string
	reply  chan upgradeReply
}

type upgradeReply struct {
	res *UpgradeResult
	err error
}

// selfDigest is the SHA-256 of this process's executable, computed once.
var selfDigest = sync.OnceValue(func() string {
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		if exe, eerr := os.Executable(); eerr == nil {
			f, err = os.Open(exe)
		}
	}
	if err != nil {
		return ""
	}
	defer f.Close()
	return fileDigest(f)
})

func fileDigest(r io.Reader) string {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// checkBinary makes sure path is a binary that runs here (`PATH version`).
func checkBinary(ctx context.Context, path string) (digest string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("binary %s: %w", path, err)
	}
	digest = fileDigest(f)
	f.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, path, "version").CombinedOutput(); err != nil {
		return "", fmt.Errorf("binary %s does not run here (`%s version`: %v: %.300s)", path, path, err, out)
	}
	return digest, nil
}

// handOff starts binary as the new gateway on pub (admin, closed here so
// that the new one can take its socket, is the path it listens on) and
// waits until it answers there. On failure the new process is stopped and
// nothing changed but the admin listener, which the caller opens again.
func (g *Gateway) handOff(ctx context.Context, binary string, pub net.Listener, admin string) (*exec.Cmd, *UpgradeResult, error) {
	t0 := time.Now()
	digest, err := checkBinary(ctx, binary)
	if err != nil {
		return nil, nil, err
	}
	fl, ok := pub.(interface{ File() (*os.File, error) })
	if !ok {
		return nil, nil, fmt.Errorf("the public listener (%T) cannot be handed over", pub)
	}
	f, err := fl.File()
	if err != nil {
		return nil, nil, fmt.Errorf("handing the public listener over: %w", err)
	}
	defer f.Close() // the new process has its own copy
	cmd := exec.Command(binary, g.args...)
	cmd.ExtraFiles = []*os.File{f} // fd 3
	cmd.Env = append(os.Environ(), ListenFDEnv+"=3")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("starting %s: %w", binary, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	c := Client{Socket: admin}
	for deadline := time.Now().Add(HandoffTimeout); ; {
		st, err := c.State(ctx)
		if err == nil && st.PID == cmd.Process.Pid {
			// The new gateway waits for its own exit from here on.
			go func() { g.child <- <-exited }()
			return cmd, &UpgradeResult{PID: cmd.Process.Pid, Binary: binary, BinarySHA256: digest, Took: time.Since(t0).Round(time.Millisecond).String()}, nil
		}
		select {
		case err := <-exited:
			return nil, nil, fmt.Errorf("the new gateway (%s) exited before it answered: %v", binary, err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			cmd.Process.Kill()
			<-exited
			return nil, nil, fmt.Errorf("the new gateway (%s) did not answer on %s within %s", binary, admin, HandoffTimeout)
		}
	}
}

// upgradeHandler serves POST /upgrade: the Serve loop hands over.
func (g *Gateway) upgradeHandler(w http.ResponseWriter, r *http.Request) {
	var req UpgradeRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Binary == "" {
		adminError(w, http.StatusBadRequest, "field binary: the path of the new modelship binary is required", nil)
		return
	}
	if g.args == nil {
		adminError(w, http.StatusNotImplemented, "this gateway was not started to be upgraded in place", nil)
		return
	}
	call := upgradeCall{binary: req.Binary, reply: make(chan upgradeReply, 1)}
	select {
	case g.upgrades <- call:
	case <-r.Context().Done():
		return
	}
	rep := <-call.reply
	if rep.err != nil {
		adminError(w, http.StatusConflict, "upgrade refused, this gateway keeps serving: "+rep.err.Error(), nil)
		return
	}
	writeJSON(w, http.StatusOK, rep.res)
}

// Upgrade asks the gateway to hand over to binary (a path in its
// container) and returns once the new gateway answers.
func (c *Client) Upgrade(ctx context.Context, binary string) (*UpgradeResult, error) {
	var res UpgradeResult
	if err := c.do(ctx, http.MethodPost, "/upgrade", UpgradeRequest{Binary: binary}, &res); err != nil {
		return nil, err
	}
	return &res, nil
}
