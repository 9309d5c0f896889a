package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/modelship/modelship/serving"
)

func init() {
	register(command{name: "drain", summary: "pre-stop hook: drain the `modelship serve` of this container through its admin socket", run: runDrain})
}

const drainUsage = `Usage: modelship drain [--wait 5s] [--socket PATH]

The serving container's pre-stop hook (Kubernetes lifecycle.preStop.exec).
Asks the ` + "`modelship serve`" + ` of this container, through its admin unix socket,
to drain: every response says "Connection: close" and /ready answers 503, so
clients and load balancers move away; returns after --wait, then the kubelet
sends SIGTERM. The drain is not reachable from the network. If no SIGTERM
follows, serve is ready again 30s after the wait.

Exit codes: 0 drained, 1 serve did not answer or refused, 2 usage.

Flags:
`

func runDrain(ctx context.Context, args []string, s stdio) int {
	fs := newFlagSet("drain", s, drainUsage)
	socket := fs.String("socket", envOr("MODELSHIP_ADMIN_SOCKET", serving.AdminSocket), "`path` of serve's admin socket [$MODELSHIP_ADMIN_SOCKET]")
	wait := fs.Duration("wait", 5*time.Second, "how long to hold before returning (0s to 60s): the time endpoint removal needs to reach every proxy")
	if code, ok := parseNoArgs(fs, args, newUsageErr(s, "drain", "")); !ok {
		return code
	}
	body, err := drainServe(ctx, *socket, *wait)
	if err != nil {
		fmt.Fprintf(s.err, "modelship drain: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(s.out, "%s\n", body)
	return exitOK
}

// drainServe asks the serve listening on the admin socket to drain for
// wait, and returns its answer.
func drainServe(ctx context.Context, socket string, wait time.Duration) ([]byte, error) {
	client := &http.Client{
		Timeout: wait + 10*time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, "unix", socket)
		}},
	}
	u := "http://serve" + serving.DrainPath + "?wait=" + url.QueryEscape(wait.String())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("serve's admin socket %s: %v", socket, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("serve answered %s: %s", resp.Status, body)
	}
	return body, nil
}

// envOr is the environment variable name, else def.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
