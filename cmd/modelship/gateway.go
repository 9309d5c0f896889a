package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/modelship/modelship/internal/gateway"
)

func init() {
	register(command{name: "gateway", summary: "run the blue-green switch point in front of the releases, or switch / inspect / wait on it", run: runGateway})
}

func runGateway(ctx context.Context, args []string, s stdio) int {
	if len(args) > 0 {
		switch args[0] {
		case "switch":
			return runGatewaySwitch(ctx, args[1:], s)
		case "state":
			return runGatewayState(ctx, args[1:], s)
		case "wait-drained":
			return runGatewayWaitDrained(ctx, args[1:], s)
		case "probe":
			return runGatewayProbe(ctx, args[1:], s)
		case "health":
			return runGatewayHealth(ctx, args[1:], s)
		case "upgrade":
			return runGatewayUpgrade(ctx, args[1:], s)
		}
	}
	return runGatewayServe(ctx, args, s)
}

func runGatewayServe(ctx context.Context, args []string, s stdio) int {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(s.err)
	listen := fs.String("listen", ":8000", "public `address` to proxy on (the environment's port)")
	admin := fs.String("admin", "unix://"+gateway.DefaultAdminSocket, "admin API `socket` (unix:///PATH or a path); never a network port")
	upstream := fs.String("upstream", "", "initial release `URL` (e.g. http://release-a:8000), used only when the state file names none")
	state := fs.String("state", "", "state `file` remembering the active release across restarts (written atomically on every switch)")
	drain := fs.Duration("drain-timeout", gateway.DefaultDrainTimeout, "on SIGTERM/SIGINT, how long in-flight requests may finish before they are cut off")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: modelship gateway [--listen :8000] [--admin SOCK] [--upstream URL] [--state FILE]
       modelship gateway switch       --to URL [--admin SOCK] [--skip-ready] [--ready-timeout 10s]
       modelship gateway state        [--admin SOCK]
       modelship gateway wait-drained --upstream URL [--timeout 30s] [--admin SOCK]
       modelship gateway health       [--url http://127.0.0.1:8000]
       modelship gateway upgrade      --binary PATH [--admin SOCK]

The blue-green switch point of an environment. It proxies every request on
--listen, streamed and unbuffered, to the active release; a switch is one
atomic change: requests in flight finish on the release they started on,
new ones go to the new release, and none fails because of the switch. A
request whose connection fails before anything was sent is retried once on
the release active at that moment.

GET `+gateway.HealthPath+` is answered by the gateway itself (for a container
HEALTHCHECK). With no active release every request gets 503 "no release is
active". The admin API listens on a unix socket only:

  GET  /state       active and previous release, in-flight per release, totals
  POST /switch      {"upstream": URL, "require_ready": true}: 409 unless URL/ready is 200
  POST /drain-wait  {"upstream": URL, "timeout": "30s"}: 408 if still in flight
  POST /upgrade     {"binary": PATH}: hand the public port over to PATH

The subcommands call it (run them with `+"`docker exec GATEWAY modelship gateway ...`"+`)
and print JSON; exit 1 when refused or timed out, 3 when the socket does not answer.
On SIGTERM the gateway stops accepting, drains in-flight requests, then exits.

Flags:
`)
		fs.PrintDefaults()
	}
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(s.err, "modelship gateway: unexpected argument %q (subcommands: switch, state, wait-drained, health)\n", pos[0])
		return exitUsage
	}
	sock, err := gateway.ParseAdmin(*admin)
	if err != nil {
		fmt.Fprintf(s.err, "modelship gateway: --admin: %v\n", err)
		return exitUsage
	}
	if *upstream != "" {
		if _, err := gateway.ParseUpstream(*upstream); err != nil {
			fmt.Fprintf(s.err, "modelship gateway: --upstream: %v\n", err)
			return exitUsage
		}
	}
	log := newServeLogger(s.err)
	g, err := gateway.New(gateway.Options{StatePath: *state, Upstream: *upstream, Logger: log, Args: append([]string{"gateway"}, args...)})
	if err != nil {
		fmt.Fprintf(s.err, "modelship gateway: %v\n", err)
		return exitFailed
	}
	// Handed over by the gateway this one upgrades, or a port of its own.
	pub, err := gateway.InheritedListener()
	if pub == nil && err == nil {
		pub, err = net.Listen("tcp", *listen)
	}
	if err != nil {
		fmt.Fprintf(s.err, "modelship gateway: --listen %s: %v\n", *listen, err)
		return exitFailed
	}
	adm, err := gateway.ListenAdmin(sock)
	if err != nil {
		pub.Close()
		fmt.Fprintf(s.err, "modelship gateway: %v\n", err)
		return exitFailed
	}
	active := g.Active()
	if active == "" {
		active = "none (503 until a switch)"
	}
	log.Info("gateway listening", "listen", pub.Addr().String(), "admin", sock, "active", active, "state", *state)
	if err := g.Serve(ctx, pub, adm, *drain); err != nil {
		fmt.Fprintf(s.err, "modelship gateway: %v\n", err)
		return exitFailed
	}
	return exitOK
}

// gatewayClientFlags parses a client subcommand's flags; fs must define them.
func gatewayClientFlags(fs *flag.FlagSet, args []string, s stdio) (code int, ok bool) {
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code, false
	}
	if len(pos) > 0 {
		fmt.Fprintf(s.err, "modelship gateway %s: unexpected argument %q\n", fs.Name(), pos[0])
		return exitUsage, false
	}
	return 0, true
}

// gatewayClientError reports a failed admin call: 1 when the gateway
// refused, 3 when it could not be asked.
func gatewayClientError(name string, err error, s stdio) int {
	fmt.Fprintf(s.err, "modelship gateway %s: %v\n", name, err)
	var ae *gateway.APIError
	if errors.As(err, &ae) {
		if ae.Status == http.StatusBadRequest {
			return exitUsage
		}
		return exitFailed
	}
	return exitInconclusive
}

func gatewayPrintJSON(w io.Writer, v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	fmt.Fprintf(w, "%s\n", b)
}

func runGatewaySwitch(ctx context.Context, args []string, s stdio) int {
	fs := flag.NewFlagSet("switch", flag.ContinueOnError)
	fs.SetOutput(s.err)
	admin := fs.String("admin", "unix://"+gateway.DefaultAdminSocket, "admin `socket` of the gateway")
	to := fs.String("to", "", "release `URL` to send new requests to (required), e.g. http://release-b:8000")
	skip := fs.Bool("skip-ready", false, "switch without checking that URL/ready answers 200 (not for production)")
	readyTimeout := fs.Duration("ready-timeout", gateway.DefaultReadyTimeout, "how long the URL/ready check may take")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: modelship gateway switch --to URL [--admin SOCK] [--skip-ready] [--ready-timeout 10s]

Makes URL the active release of the gateway listening on --admin. Unless
--skip-ready, URL/ready must answer 200 first; otherwise nothing changes and
the command exits 1 with the release's reason. Prints {"active", "previous",
"changed", "switched_at"}; requests in flight on the previous release finish
there (wait for them with `+"`modelship gateway wait-drained`"+`).

Flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := gatewayClientFlags(fs, args, s); !ok {
		return code
	}
	if *to == "" {
		fmt.Fprintln(s.err, "modelship gateway switch: --to URL is required")
		return exitUsage
	}
	if _, err := gateway.ParseUpstream(*to); err != nil {
		fmt.Fprintf(s.err, "modelship gateway switch: --to: %v\n", err)
		return exitUsage
	}
	c := gateway.Client{Socket: *admin}
	res, err := c.Switch(ctx, *to, gateway.SwitchOptions{SkipReady: *skip, ReadyTimeout: *readyTimeout})
	if err != nil {
		return gatewayClientError("switch", err, s)
	}
	gatewayPrintJSON(s.out, res)
	return exitOK
}

func runGatewayState(ctx context.Context, args []string, s stdio) int {
	fs := flag.NewFlagSet("state", flag.ContinueOnError)
	fs.SetOutput(s.err)
	admin := fs.String("admin", "unix://"+gateway.DefaultAdminSocket, "admin `socket` of the gateway")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: modelship gateway state [--admin SOCK]

Prints the gateway's state as JSON: active and previous release, when it
switched, requests in flight per release, and totals (requests, errors the
gateway answered, retries, requests refused while no release was active).

Flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := gatewayClientFlags(fs, args, s); !ok {
		return code
	}
	c := gateway.Client{Socket: *admin}
	st, err := c.State(ctx)
	if err != nil {
		return gatewayClientError("state", err, s)
	}
	gatewayPrintJSON(s.out, st)
	return exitOK
}

func runGatewayWaitDrained(ctx context.Context, args []string, s stdio) int {
	fs := flag.NewFlagSet("wait-drained", flag.ContinueOnError)
	fs.SetOutput(s.err)
	admin := fs.String("admin", "unix://"+gateway.DefaultAdminSocket, "admin `socket` of the gateway")
	up := fs.String("upstream", "", "release `URL` to wait for (required), e.g. the previous release after a switch")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long (exit 1 with the count still in flight); 0 waits forever")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: modelship gateway wait-drained --upstream URL [--timeout 30s] [--admin SOCK]

Blocks until the gateway has no request in flight to URL (a release it
switched away from), then prints {"upstream", "in_flight": 0, "drained":
true, "waited_ns"}. Exits 1 if requests are still in flight after --timeout,
or if URL is the active release.

Flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := gatewayClientFlags(fs, args, s); !ok {
		return code
	}
	if *up == "" {
		fmt.Fprintln(s.err, "modelship gateway wait-drained: --upstream URL is required")
		return exitUsage
	}
	if _, err := gateway.ParseUpstream(*up); err != nil {
		fmt.Fprintf(s.err, "modelship gateway wait-drained: --upstream: %v\n", err)
		return exitUsage
	}
	if *timeout < 0 {
		fmt.Fprintln(s.err, "modelship gateway wait-drained: --timeout must not be negative")
		return exitUsage
	}
	c := gateway.Client{Socket: *admin}
	if st, err := c.State(ctx); err == nil {
		for _, u := range st.Upstreams {
			if u.URL != st.Active && u.InFlight > 0 && strings.TrimSuffix(*up, "/") == u.URL {
				fmt.Fprintf(s.err, "waiting for %d request(s) in flight on %s to finish (timeout %s)...\n", u.InFlight, u.URL, *timeout)
			}
		}
	}
	res, err := c.WaitDrained(ctx, *up, *timeout)
	if err != nil {
		return gatewayClientError("wait-drained", err, s)
	}
	gatewayPrintJSON(s.out, res)
	return exitOK
}

func runGatewayProbe(ctx context.Context, args []string, s stdio) int {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(s.err)
	admin := fs.String("admin", "unix://"+gateway.DefaultAdminSocket, "admin `socket` of the gateway")
	up := fs.String("upstream", "", "release `URL` to ask (required)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: modelship gateway probe --upstream URL [--admin SOCK]

Asks URL's GET /ready from the gateway, which is on the releases' network
(a remote Docker host publishes candidates on its loopback only), and
prints {"upstream", "ready", "reason"}. Exits 0 when ready, 1 when not.

Flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := gatewayClientFlags(fs, args, s); !ok {
		return code
	}
	if _, err := gateway.ParseUpstream(*up); err != nil {
		fmt.Fprintf(s.err, "modelship gateway probe: --upstream: %v\n", err)
		return exitUsage
	}
	res, err := (&gateway.Client{Socket: *admin}).Probe(ctx, *up)
	if err != nil {
		return gatewayClientError("probe", err, s)
	}
	gatewayPrintJSON(s.out, res)
	if !res.Ready {
		return exitFailed
	}
	return exitOK
}

func runGatewayUpgrade(ctx context.Context, args []string, s stdio) int {
	fs := flag.NewFlagSet("upgrade", flag.ContinueOnError)
	fs.SetOutput(s.err)
	admin := fs.String("admin", "unix://"+gateway.DefaultAdminSocket, "admin `socket` of the gateway")
	bin := fs.String("binary", "", "the new modelship binary's `path` (required), in the gateway's file system")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: modelship gateway upgrade --binary PATH [--admin SOCK]

Upgrades the gateway in place: PATH (checked with `+"`PATH version`"+`) is
started with the gateway's arguments and takes its public port over; the
old process stops accepting, finishes its requests in flight, and stays
only to pass signals on. No connection is refused meanwhile. Prints {"pid",
"binary", "binary_sha256", "took"}; exits 1 when the new binary did not
start (the old gateway keeps serving).

Flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := gatewayClientFlags(fs, args, s); !ok {
		return code
	}
	if *bin == "" {
		fmt.Fprintln(s.err, "modelship gateway upgrade: --binary PATH is required")
		return exitUsage
	}
	res, err := (&gateway.Client{Socket: *admin}).Upgrade(ctx, *bin)
	if err != nil {
		return gatewayClientError("upgrade", err, s)
	}
	gatewayPrintJSON(s.out, res)
	return exitOK
}

func runGatewayHealth(ctx context.Context, args []string, s stdio) int {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(s.err)
	u := fs.String("url", "http://127.0.0.1:8000", "base `URL` of the gateway's public port")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the answer")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: modelship gateway health [--url http://127.0.0.1:8000]

Exits 0 when the gateway answers GET `+gateway.HealthPath+` with 200, else 1: a
container HEALTHCHECK for images without curl.

Flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := gatewayClientFlags(fs, args, s); !ok {
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *u+gateway.HealthPath, nil)
	if err != nil {
		fmt.Fprintf(s.err, "modelship gateway health: --url: %v\n", err)
		return exitUsage
	}
	resp, err := (&http.Transport{Proxy: nil}).RoundTrip(req)
	if err != nil {
		fmt.Fprintf(s.err, "modelship gateway health: %v\n", err)
		return exitFailed
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	s.out.Write(body)
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(s.err, "modelship gateway health: %s answered %d\n", req.URL, resp.StatusCode)
		return exitFailed
	}
	return exitOK
}
