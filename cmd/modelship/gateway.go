package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/modelship/modelship/internal/buildinfo"
	"github.com/modelship/modelship/internal/gateway"
	"github.com/modelship/modelship/internal/logging"
	"github.com/modelship/modelship/internal/shadow"
	"github.com/modelship/modelship/suite"
)

func init() {
	register(command{name: "gateway", summary: "run the blue-green switch point in front of the releases, or switch / inspect / wait on it", run: runGateway})
}

// gatewaySubcommands are the `modelship gateway NAME` commands that talk to
// a running gateway; without one of them, gateway runs the gateway.
var gatewaySubcommands = map[string]func(ctx context.Context, args []string, s stdio) int{
	"switch":       runGatewaySwitch,
	"state":        runGatewayState,
	"wait-drained": runGatewayWaitDrained,
	"probe":        runGatewayProbe,
	"health":       runGatewayHealth,
	"upgrade":      runGatewayUpgrade,
	"canary":       runGatewayCanary,
	"samples":      runGatewaySamples,
	"control":      runGatewayControl,
	"shadow":       runGatewayShadow,
}

func runGateway(ctx context.Context, args []string, s stdio) int {
	if len(args) > 0 {
		if run, ok := gatewaySubcommands[args[0]]; ok {
			return run(ctx, args[1:], s)
		}
	}
	return runGatewayServe(ctx, args, s)
}

const gatewayUsage = `Usage: modelship gateway [--listen :8000] [--admin SOCK] [--upstream URL] [--state FILE]
       modelship gateway switch       --to URL [--admin SOCK] [--skip-ready] [--ready-timeout 10s]
       modelship gateway state        [--admin SOCK]
       modelship gateway wait-drained --upstream URL [--timeout 30s] [--admin SOCK]
       modelship gateway health       [--url http://127.0.0.1:8000]
       modelship gateway upgrade      --binary PATH [--admin SOCK]
       modelship gateway canary       --upstream URL --percent P [--sticky-header H] [--admin SOCK]
       modelship gateway samples      [--since N] [--admin SOCK]
       modelship gateway control      [--set promote|abort|resume|clear] [--admin SOCK]
       modelship gateway shadow       --upstream URL --percent P [--queue N] [--checks JSON] | --report [--admin SOCK]

The blue-green switch point of an environment. It proxies every request on
--listen, streamed and unbuffered, to the active release; a switch is one
atomic change: requests in flight finish on the release they started on,
new ones go to the new release, and none fails because of the switch. A
request whose connection fails before anything was sent is retried once on
the release active at that moment.

GET ` + gateway.HealthPath + ` is answered by the gateway itself (for a container
HEALTHCHECK). With no active release every request gets 503 "no release is
active". GET /-/modelship/metrics on the public port is the gateway's own
Prometheus metrics per release (modelship_*; no API key). The admin API listens on a unix socket only:

  GET  /state       active and previous release, in-flight per release, totals
  POST /switch      {"upstream": URL, "require_ready": true}: 409 unless URL/ready is 200
  POST /drain-wait  {"upstream": URL, "timeout": "30s"}: 408 if still in flight
  POST /upgrade     {"binary": PATH}: hand the public port over to PATH
  POST /canary      {"upstream": URL, "percent": P, "sticky_header": H}: split (0 clears)
  GET  /samples?since=N  every proxied request measured (status, TTFB, ITL, total)
  POST /control     {"action": "promote"|"abort"|"resume"|""}: steer the rollout
  POST /shadow      {"upstream": URL, "percent": P, "checks": [...]}: mirror (0 stops); GET /shadow: report

A canary, a shadow and the samples are not kept across a restart or an
upgrade of the gateway: it then sends everything to the active release.

The subcommands call it (run them with ` + "`docker exec GATEWAY modelship gateway ...`" + `)
and print JSON; exit 1 when refused or timed out, 3 when the socket does not answer.
On SIGTERM the gateway stops accepting, drains in-flight requests, then exits.

Flags:
`

// gatewayServeOptions are the flags of `modelship gateway` itself.
type gatewayServeOptions struct {
	listen, admin, upstream, state string
	drain                          time.Duration
}

func (o *gatewayServeOptions) flags(fs *flag.FlagSet) {
	fs.StringVar(&o.listen, "listen", ":8000", "public `address` to proxy on (the environment's port)")
	fs.StringVar(&o.admin, "admin", "unix://"+gateway.DefaultAdminSocket, "admin API `socket` (unix:///PATH or a path); never a network port")
	fs.StringVar(&o.upstream, "upstream", "", "initial release `URL` (e.g. http://release-a:8000), used only when the state file names none")
	fs.StringVar(&o.state, "state", "", "state `file` remembering the active release across restarts (written atomically on every switch)")
	fs.DurationVar(&o.drain, "drain-timeout", gateway.DefaultDrainTimeout, "on SIGTERM/SIGINT, how long in-flight requests may finish before they are cut off")
}

// check parses --admin into the admin socket's path and checks --upstream.
func (o *gatewayServeOptions) check(bad usageErr) (sock string, code int, ok bool) {
	sock, err := gateway.ParseAdmin(o.admin)
	if err != nil {
		return "", bad("--admin: %v", err), false
	}
	if o.upstream != "" {
		if _, err := gateway.ParseUpstream(o.upstream); err != nil {
			return "", bad("--upstream: %v", err), false
		}
	}
	return sock, exitOK, true
}

func runGatewayServe(ctx context.Context, args []string, s stdio) int {
	bad := newUsageErr(s, "gateway", "")
	var o gatewayServeOptions
	pos, code, ok := parseOptionsArgs(s, "gateway", gatewayUsage, &o, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return bad("unexpected argument %q (subcommands: switch, state, wait-drained, probe, health, upgrade, canary, samples, control, shadow)", pos[0])
	}
	sock, code, ok := o.check(bad)
	if !ok {
		return code
	}
	if err := serveGateway(ctx, o, sock, args, s); err != nil {
		fmt.Fprintf(s.err, "modelship gateway: %v\n", err)
		return exitFailed
	}
	return exitOK
}

// newShadow is the gateway's mirror for POST /shadow: shadow.New, as the
// interface (never a typed nil).
func newShadow(o shadow.Options) (gateway.Shadower, error) {
	m, err := shadow.New(o)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// serveGateway runs the gateway until ctx ends, on the public port handed
// over by the gateway it upgrades or else on --listen.
func serveGateway(ctx context.Context, o gatewayServeOptions, sock string, args []string, s stdio) error {
	log := newGatewayLogger(s.err)
	g, err := gateway.New(gateway.Options{StatePath: o.state, Upstream: o.upstream, Logger: log, Args: append([]string{"gateway"}, args...),
		NewShadow: newShadow})
	if err != nil {
		return err
	}
	// Handed over by the gateway this one upgrades, or a port of its own.
	pub, err := gateway.InheritedListener()
	if pub == nil && err == nil {
		pub, err = net.Listen("tcp", o.listen)
	}
	if err != nil {
		return fmt.Errorf("--listen %s: %v", o.listen, err)
	}
	adm, err := gateway.ListenAdmin(sock)
	if err != nil {
		pub.Close()
		return err
	}
	active := g.Active()
	if active == "" {
		active = "none (503 until a switch)"
	}
	log.Info("gateway listening", "listen", pub.Addr().String(), "admin", sock, "active", active, "state", o.state)
	return g.Serve(ctx, pub, adm, o.drain)
}

// newGatewayLogger is the gateway's logger (internal/logging): text on a
// terminal, else ECS JSON as service.name "modelship-gateway", its own keys
// under modelship.gateway.* (a request's release is its
// modelship.gateway.upstream, the release's URL).
func newGatewayLogger(w io.Writer) *slog.Logger {
	return logging.New(w, logging.Options{Service: "modelship-gateway", Version: buildinfo.Version, Namespace: "modelship.gateway"})
}

// gatewayClientFlags is the flag set of the client subcommand name, with
// the --admin flag every one of them has, and the usageErr it refuses bad
// flags with ("modelship gateway NAME: ...").
func gatewayClientFlags(name string, s stdio, usage string) (fs *flag.FlagSet, admin *string, bad usageErr) {
	fs = newFlagSet(name, s, usage)
	admin = fs.String("admin", "unix://"+gateway.DefaultAdminSocket, "admin `socket` of the gateway")
	return fs, admin, newUsageErr(s, "gateway "+name, "")
}

// checkUpstreamFlag checks the release URL v that a client subcommand's
// flag name requires.
func checkUpstreamFlag(name, v string, bad usageErr) (int, bool) {
	if v == "" {
		return bad("--%s URL is required", name), false
	}
	if _, err := gateway.ParseUpstream(v); err != nil {
		return bad("--%s: %v", name, err), false
	}
	return exitOK, true
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

// gatewayResult ends a client subcommand: on err, the exit code of
// gatewayClientError; else v is printed as JSON and the exit code is 0.
func gatewayResult(name string, v any, err error, s stdio) int {
	if err != nil {
		return gatewayClientError(name, err, s)
	}
	gatewayPrintJSON(s.out, v)
	return exitOK
}

func gatewayPrintJSON(w io.Writer, v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	fmt.Fprintf(w, "%s\n", b)
}

const gatewaySwitchUsage = `Usage: modelship gateway switch --to URL [--admin SOCK] [--skip-ready] [--ready-timeout 10s]

Makes URL the active release of the gateway listening on --admin. Unless
--skip-ready, URL/ready must answer 200 first; otherwise nothing changes and
the command exits 1 with the release's reason. Prints {"active", "previous",
"changed", "switched_at"}; requests in flight on the previous release finish
there (wait for them with ` + "`modelship gateway wait-drained`" + `).

Flags:
`

func runGatewaySwitch(ctx context.Context, args []string, s stdio) int {
	fs, admin, bad := gatewayClientFlags("switch", s, gatewaySwitchUsage)
	to := fs.String("to", "", "release `URL` to send new requests to (required), e.g. http://release-b:8000")
	skip := fs.Bool("skip-ready", false, "switch without checking that URL/ready answers 200 (not for production)")
	readyTimeout := fs.Duration("ready-timeout", gateway.DefaultReadyTimeout, "how long the URL/ready check may take")
	if code, ok := parseNoArgs(fs, args, bad); !ok {
		return code
	}
	if code, ok := checkUpstreamFlag("to", *to, bad); !ok {
		return code
	}
	c := gateway.Client{Socket: *admin}
	res, err := c.Switch(ctx, *to, gateway.SwitchOptions{SkipReady: *skip, ReadyTimeout: *readyTimeout})
	return gatewayResult("switch", res, err, s)
}

const gatewayStateUsage = `Usage: modelship gateway state [--admin SOCK]

Prints the gateway's state as JSON: active and previous release, when it
switched, requests in flight per release, and totals (requests, errors the
gateway answered, retries, requests refused while no release was active).

Flags:
`

func runGatewayState(ctx context.Context, args []string, s stdio) int {
	fs, admin, bad := gatewayClientFlags("state", s, gatewayStateUsage)
	if code, ok := parseNoArgs(fs, args, bad); !ok {
		return code
	}
	c := gateway.Client{Socket: *admin}
	st, err := c.State(ctx)
	return gatewayResult("state", st, err, s)
}

const gatewayWaitDrainedUsage = `Usage: modelship gateway wait-drained --upstream URL [--timeout 30s] [--admin SOCK]

Blocks until the gateway has no request in flight to URL (a release it
switched away from), then prints {"upstream", "in_flight": 0, "drained":
true, "waited_ns"}. Exits 1 if requests are still in flight after --timeout,
or if URL is the active release.

Flags:
`

func runGatewayWaitDrained(ctx context.Context, args []string, s stdio) int {
	fs, admin, bad := gatewayClientFlags("wait-drained", s, gatewayWaitDrainedUsage)
	up := fs.String("upstream", "", "release `URL` to wait for (required), e.g. the previous release after a switch")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long (exit 1 with the count still in flight); 0 waits forever")
	if code, ok := parseNoArgs(fs, args, bad); !ok {
		return code
	}
	if code, ok := checkUpstreamFlag("upstream", *up, bad); !ok {
		return code
	}
	if *timeout < 0 {
		return bad("--timeout must not be negative")
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
	return gatewayResult("wait-drained", res, err, s)
}

const gatewayProbeUsage = `Usage: modelship gateway probe --upstream URL [--admin SOCK]

Asks URL's GET /ready from the gateway, which is on the releases' network
(a remote Docker host publishes candidates on its loopback only), and
prints {"upstream", "ready", "reason"}. Exits 0 when ready, 1 when not.

Flags:
`

func runGatewayProbe(ctx context.Context, args []string, s stdio) int {
	fs, admin, bad := gatewayClientFlags("probe", s, gatewayProbeUsage)
	up := fs.String("upstream", "", "release `URL` to ask (required)")
	if code, ok := parseNoArgs(fs, args, bad); !ok {
		return code
	}
	if _, err := gateway.ParseUpstream(*up); err != nil {
		return bad("--upstream: %v", err)
	}
	res, err := (&gateway.Client{Socket: *admin}).Probe(ctx, *up)
	if code := gatewayResult("probe", res, err, s); code != exitOK {
		return code
	}
	if !res.Ready {
		return exitFailed
	}
	return exitOK
}

const gatewayUpgradeUsage = `Usage: modelship gateway upgrade --binary PATH [--admin SOCK]

Upgrades the gateway in place: PATH (checked with ` + "`PATH version`" + `) is
started with the gateway's arguments and takes its public port over; the
old process stops accepting, finishes its requests in flight, and stays
only to pass signals on. No connection is refused meanwhile. Prints {"pid",
"binary", "binary_sha256", "took"}; exits 1 when the new binary did not
start (the old gateway keeps serving).

Flags:
`

func runGatewayUpgrade(ctx context.Context, args []string, s stdio) int {
	fs, admin, bad := gatewayClientFlags("upgrade", s, gatewayUpgradeUsage)
	bin := fs.String("binary", "", "the new modelship binary's `path` (required), in the gateway's file system")
	if code, ok := parseNoArgs(fs, args, bad); !ok {
		return code
	}
	if *bin == "" {
		return bad("--binary PATH is required")
	}
	res, err := (&gateway.Client{Socket: *admin}).Upgrade(ctx, *bin)
	return gatewayResult("upgrade", res, err, s)
}

const gatewayHealthUsage = `Usage: modelship gateway health [--url http://127.0.0.1:8000]

Exits 0 when the gateway answers GET ` + gateway.HealthPath + ` with 200, else 1: a
container HEALTHCHECK for images without curl.

Flags:
`

func runGatewayHealth(ctx context.Context, args []string, s stdio) int {
	fs := newFlagSet("health", s, gatewayHealthUsage)
	u := fs.String("url", "http://127.0.0.1:8000", "base `URL` of the gateway's public port")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the answer")
	bad := newUsageErr(s, "gateway health", "")
	if code, ok := parseNoArgs(fs, args, bad); !ok {
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *u+gateway.HealthPath, nil)
	if err != nil {
		return bad("--url: %v", err)
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

const gatewayCanaryUsage = `Usage: modelship gateway canary --upstream URL --percent P [--sticky-header H] [--ready-timeout 10s] [--skip-ready] [--admin SOCK]

Sends P percent of new requests to the canary release URL and the rest to
the active one; requests in flight keep their release. With
--sticky-header, a request carrying that header goes to the version its
value hashes to, so a conversation stays on one version and a client on
the canary stays there as P grows. --percent 0 clears the canary at once
(--upstream may then be left out). Unless --skip-ready, URL/ready must
answer 200 first. Prints {"upstream", "percent", "sticky_header", "since",
"control"}. A switch (promotion) ends the split; so does a restart.

Flags:
`

func runGatewayCanary(ctx context.Context, args []string, s stdio) int {
	fs, admin, bad := gatewayClientFlags("canary", s, gatewayCanaryUsage)
	up := fs.String("upstream", "", "the canary release's `URL` (required unless --percent 0)")
	pct := fs.Float64("percent", -1, "share of new requests for the canary, 0..100 (required; 0 clears it)")
	sticky := fs.String("sticky-header", "", "request `header` whose value keeps a client on one version (e.g. X-Conversation-Id)")
	readyTimeout := fs.Duration("ready-timeout", gateway.DefaultReadyTimeout, "how long the URL/ready check may take")
	skip := fs.Bool("skip-ready", false, "split without checking that URL/ready answers 200 (not for production)")
	if code, ok := parseNoArgs(fs, args, bad); !ok {
		return code
	}
	if code, ok := checkPercentFlag(*pct, bad); !ok {
		return code
	}
	if *pct > 0 || *up != "" {
		if code, ok := checkUpstreamFlag("upstream", *up, bad); !ok {
			return code
		}
	}
	rr := !*skip
	req := gateway.CanaryRequest{Upstream: *up, Percent: *pct, StickyHeader: *sticky, RequireReady: &rr, ReadyTimeout: readyTimeout.String()}
	res, err := (&gateway.Client{Socket: *admin}).SetCanary(ctx, req)
	return gatewayResult("canary", res, err, s)
}

// checkPercentFlag checks a required --percent (its unset default is -1).
func checkPercentFlag(p float64, bad usageErr) (int, bool) {
	if p == -1 {
		return bad("--percent P is required (0..100; 0 stops)"), false
	}
	if !(p >= 0 && p <= 100) {
		return bad("--percent: %v is not between 0 and 100", p), false
	}
	return exitOK, true
}

const gatewaySamplesUsage = `Usage: modelship gateway samples [--since N] [--admin SOCK]

Prints the requests the gateway measured after sequence number N, oldest
first: {"next", "dropped", "samples": [{"seq", "upstream", "at", "status",
"error", "ttfb_ms", "itl_ms", "total_ms", "stream"}]}. Ask again with
--since NEXT for the rest; "dropped" counts the requests after N that the
gateway's ring (65,536 requests) no longer holds.

Flags:
`

func runGatewaySamples(ctx context.Context, args []string, s stdio) int {
	fs, admin, bad := gatewayClientFlags("samples", s, gatewaySamplesUsage)
	since := fs.Uint64("since", 0, "the last sequence number already read (0: all the gateway holds)")
	if code, ok := parseNoArgs(fs, args, bad); !ok {
		return code
	}
	res, err := (&gateway.Client{Socket: *admin}).Samples(ctx, *since)
	return gatewayResult("samples", res, err, s)
}

const gatewayControlUsage = `Usage: modelship gateway control [--set promote|abort|resume|clear] [--admin SOCK]

Asks the rollout in progress (a canary or a shadow) to promote, abort or
resume; the deploy running it reads the action and acts, saying why. Without
--set, prints the action asked so far. Prints {"action"}; exits 1 when no
rollout is in progress.

Flags:
`

func runGatewayControl(ctx context.Context, args []string, s stdio) int {
	fs, admin, bad := gatewayClientFlags("control", s, gatewayControlUsage)
	set := fs.String("set", "", "the `action`: promote, abort, resume, or clear (none)")
	if code, ok := parseNoArgs(fs, args, bad); !ok {
		return code
	}
	c := &gateway.Client{Socket: *admin}
	action := *set
	switch action {
	case "":
		a, err := c.Control(ctx)
		return gatewayResult("control", gateway.ControlRequest{Action: a}, err, s)
	case "clear":
		action = ""
	case gateway.ActionPromote, gateway.ActionAbort, gateway.ActionResume:
	default:
		return bad("--set: %q is not one of promote, abort, resume, clear", action)
	}
	err := c.SetControl(ctx, action)
	return gatewayResult("control", gateway.ControlRequest{Action: action}, err, s)
}

const gatewayShadowUsage = `Usage: modelship gateway shadow --upstream URL --percent P [--queue N] [--checks JSON] [--admin SOCK]
       modelship gateway shadow --report [--admin SOCK]

Mirrors P percent of the requests the active release answers to the
candidate URL and compares the answers; clients only ever see the active
release's. --percent 0 stops the mirror and prints its final report;
--report prints the running mirror's report (exit 1 when none runs).

Flags:
`

func runGatewayShadow(ctx context.Context, args []string, s stdio) int {
	fs, admin, bad := gatewayClientFlags("shadow", s, gatewayShadowUsage)
	up := fs.String("upstream", "", "the candidate release's `URL` (required unless --percent 0)")
	pct := fs.Float64("percent", -1, "share of requests to mirror, 0..100 (required without --report; 0 stops)")
	queue := fs.Int("queue", 0, "exchanges waiting to be mirrored at most (0: the mirror's default); beyond, they are dropped")
	report := fs.Bool("report", false, "print the running mirror's report")
	checksJSON := fs.String("checks", "", "the validation suite's text assertions as `JSON` (a list of {case, prompt, assertions}, as a shadow step sends them), applied to both releases' answers to a case's prompt")
	if code, ok := parseNoArgs(fs, args, bad); !ok {
		return code
	}
	var checks []suite.TextCheck
	if *checksJSON != "" {
		if err := json.Unmarshal([]byte(*checksJSON), &checks); err != nil {
			return bad("--checks: expected a JSON list of {case, prompt, assertions}: %v", err)
		}
	}
	c := &gateway.Client{Socket: *admin}
	if *report {
		if *up != "" || *pct != -1 || *queue != 0 || checks != nil {
			return bad("--report takes no --upstream, --percent, --queue or --checks")
		}
		res, err := c.ShadowReport(ctx)
		return gatewayResult("shadow", res, err, s)
	}
	if code, ok := checkPercentFlag(*pct, bad); !ok {
		return code
	}
	if *pct > 0 || *up != "" {
		if code, ok := checkUpstreamFlag("upstream", *up, bad); !ok {
			return code
		}
	}
	if *queue < 0 {
		return bad("--queue: %d is negative", *queue)
	}
	res, err := c.SetShadow(ctx, gateway.ShadowRequest{Upstream: *up, Percent: *pct, Queue: *queue, Checks: checks})
	return gatewayResult("shadow", res, err, s)
}
