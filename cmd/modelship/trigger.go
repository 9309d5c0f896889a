package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/modelship/modelship/internal/config"
	"github.com/modelship/modelship/internal/gha"
	"github.com/modelship/modelship/internal/trigger"
)

func init() {
	register(command{name: "trigger", summary: "receive Hugging Face / MLflow registry webhooks and start a release for each new model version", run: runTrigger})
}

// triggerRunExample is the --run example of the help: the workflow
// dispatch of --github-repo through the GitHub CLI (gh), with the inputs
// deploy-model.yml declares.
const triggerRunExample = "gh workflow run deploy-model.yml --repo acme/models --ref main -f environment=staging -f source={source}"

// triggerList is a repeatable string flag.
type triggerList []string

func (l *triggerList) String() string     { return strings.Join(*l, ",") }
func (l *triggerList) Set(v string) error { *l = append(*l, v); return nil }

const triggerUsage = `Usage: modelship trigger (--hf-secret REF | --mlflow-secret REF) (--github-repo OWNER/REPO | --run COMMAND) [flags]

Receives model registry webhooks and starts the release pipeline once per new
model revision:

  POST /hooks/huggingface  Hugging Face Hub: new commits on --hf-ref of a
                           model repository. The secret set on the webhook
                           arrives in X-Webhook-Secret (compared in constant
                           time).
  POST /hooks/mlflow       MLflow Model Registry: model_version.created (and
                           model_version_alias.created with --mlflow-alias).
                           Checked as MLflow documents: X-MLflow-Signature is
                           "v1," + base64 HMAC-SHA256 of "<X-MLflow-Delivery-Id>.
                           <X-MLflow-Timestamp>.<body>" under the secret; a
                           timestamp outside --max-age or a delivery id seen
                           before is refused.
  GET  /healthz

A request that fails verification gets 401 and a log line with the reason,
never its body. Every value of an event is checked before anything starts:
a repository or model name of letters, digits and ._-/ (never starting with
-), a 40-hex-digit commit or an MLflow version number, a digest of sha256:
and 64 hex digits; a refused event gets 400 (422 when --run needs a value
the event lacks, e.g. {digest}) naming the field and what was expected.

Each revision (the Hugging Face commit, the MLflow version, and modelship's
digest from the MLflow tag modelship.digest) is recorded in --store as
queued, then started, then finished or failed, on disk at every step. The
releases start one at a time, in the background: a sender giving up cancels
nothing, and an event for a revision queued or started (202) or finished
(200) starts nothing. A release that could not start answers 502 (when it
is next in line) so the registry retries; a failed revision is queued again
by the next delivery. At start-up the revisions left queued are resumed; one
left started (the trigger stopped while starting it) may have run, so it is
reported in the log and not run again: remove its entry from --store to
release it again.

Starting the release: --github-repo dispatches --workflow (workflow_dispatch)
with --input values and source=<hf:org/name@sha | mlflow:name/version>; or
--run starts a local command, e.g. the same dispatch through the GitHub CLI:

  --run "` + triggerRunExample + `"

Secrets are references (env:NAME, file:PATH), never values on the command
line.

Exit codes: 0 stopped by a signal, 1 the server failed, 2 usage.

Flags:
`

// triggerOptions are trigger's flags.
type triggerOptions struct {
	listen, storeFile, logFormat          string
	hfSecret, hfRef, mlSecret, mlAlias    string
	hfRepos, mlModels, inputs             triggerList
	maxAge                                time.Duration
	ghRepo, workflow, ref, ghToken, ghAPI string
	run                                   string
}

func (o *triggerOptions) flags(fs *flag.FlagSet) {
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8787", "`ADDR` to serve the webhooks on (put a TLS proxy in front when the registry is on the internet)")
	fs.StringVar(&o.storeFile, "store", ".modelship/released.json", "JSON `FILE` of each revision's release state (queued, started, finished, failed); an event for a revision queued, started or finished starts nothing")
	fs.StringVar(&o.logFormat, "log-format", "text", "log lines on stderr as text or json")
	fs.StringVar(&o.hfSecret, "hf-secret", "", "Hugging Face webhook secret, as a reference `env:NAME` or file:PATH; enables POST /hooks/huggingface")
	fs.Var(&o.hfRepos, "hf-repo", "Hugging Face: only this repository `ORG/NAME` (repeatable; default: every repository the webhook watches)")
	fs.StringVar(&o.hfRef, "hf-ref", "refs/heads/main", "Hugging Face: the `REF` whose new commits start a release")
	fs.Var(&o.mlModels, "mlflow-model", "MLflow: only this registered model `NAME` (repeatable; default: every model)")
	fs.StringVar(&o.mlSecret, "mlflow-secret", "", "MLflow webhook secret, as a reference `env:NAME` or file:PATH; enables POST /hooks/mlflow")
	fs.StringVar(&o.mlAlias, "mlflow-alias", "", "MLflow: also release a version when this `ALIAS` is set on it (model_version_alias.created)")
	fs.DurationVar(&o.maxAge, "max-age", trigger.DefaultMaxAge, "MLflow: reject deliveries whose timestamp is further than this from now (replay window)")
	fs.Var(&o.inputs, "input", "with --github-repo: workflow input `NAME=VALUE` (repeatable), e.g. environment=production; \"source\" is set to the event")
	fs.StringVar(&o.ghRepo, "github-repo", "", "start releases with a workflow_dispatch on this `OWNER/REPO`")
	fs.StringVar(&o.workflow, "workflow", "deploy-model.yml", "with --github-repo: the workflow `FILE` to dispatch")
	fs.StringVar(&o.ref, "ref", "main", "with --github-repo: the branch or tag the workflow runs on")
	fs.StringVar(&o.ghToken, "github-token", "env:GITHUB_TOKEN", "with --github-repo: token allowed actions:write, as a reference `env:NAME` or file:PATH")
	fs.StringVar(&o.ghAPI, "github-api", "https://api.github.com", "with --github-repo: GitHub REST API `URL` (GitHub Enterprise: https://HOST/api/v3)")
	fs.StringVar(&o.run, "run", "", "instead of --github-repo: start this `COMMAND` for each event, e.g. \""+triggerRunExample+"\"; split on spaces and run without a shell, one at a time; "+strings.Join(trigger.Placeholders, " ")+" are replaced by the event's checked values")
}

func runTrigger(ctx context.Context, args []string, s stdio) int {
	var o triggerOptions
	bad := newUsageErr(s, "trigger", "Run 'modelship trigger --help' for usage.")
	if code, ok := parseOptions(s, "trigger", triggerUsage, &o, args, bad); !ok {
		return code
	}
	srv, code, ok := o.server(s, bad)
	if !ok {
		return code
	}
	return serveTrigger(ctx, srv, o.listen, o.storeFile, s)
}

// triggerSecret resolves the secret reference ref of --flagName ("" when
// not given) and masks it in GitHub Actions' log.
func triggerSecret(ga *gha.Actions, flagName, ref string) (string, error) {
	if ref == "" {
		return "", nil
	}
	sec, err := config.ParseSecret(ref)
	if err != nil {
		return "", fmt.Errorf("--%s: %v", flagName, err)
	}
	v, err := sec.Resolve(nil)
	if err != nil {
		return "", fmt.Errorf("--%s: %v", flagName, err)
	}
	ga.Mask(v)
	return v, nil
}

// server is the webhook server the flags describe, with its secrets
// resolved, its log, how it starts releases and its store opened.
func (o *triggerOptions) server(s stdio, bad usageErr) (*trigger.Server, int, bool) {
	ga := gha.FromEnv(s.out, s.err)
	srv := &trigger.Server{HFRef: o.hfRef, HFRepos: o.hfRepos, MLflowAlias: o.mlAlias, MLflowModels: o.mlModels, MaxAge: o.maxAge}
	var err error
	if srv.HFSecret, err = triggerSecret(ga, "hf-secret", o.hfSecret); err != nil {
		return nil, bad("%v", err), false
	}
	if srv.MLflowSecret, err = triggerSecret(ga, "mlflow-secret", o.mlSecret); err != nil {
		return nil, bad("%v", err), false
	}
	if srv.HFSecret == "" && srv.MLflowSecret == "" {
		return nil, bad("give --hf-secret or --mlflow-secret (or both): webhooks are only accepted signed"), false
	}
	if o.maxAge <= 0 {
		return nil, bad("--max-age: expected a positive duration like 5m, got %s", o.maxAge), false
	}
	switch o.logFormat {
	case "text":
		srv.Log = slog.New(slog.NewTextHandler(s.err, nil))
	case "json":
		srv.Log = slog.New(slog.NewJSONHandler(s.err, nil))
	default:
		return nil, bad("--log-format: expected text or json, got %q", o.logFormat), false
	}
	code, ok := o.starter(srv, ga, s, bad)
	if !ok {
		return nil, code, false
	}
	if srv.Store, err = trigger.OpenStore(o.storeFile); err != nil {
		return nil, bad("--store: %v", err), false
	}
	return srv, exitOK, true
}

// starter sets how srv starts a release: a workflow_dispatch
// (--github-repo) or a command (--run).
func (o *triggerOptions) starter(srv *trigger.Server, ga *gha.Actions, s stdio, bad usageErr) (int, bool) {
	switch {
	case o.ghRepo != "" && o.run != "":
		return bad("--github-repo and --run are exclusive: choose how releases start"), false
	case o.ghRepo != "":
		owner, repo, ok := strings.Cut(o.ghRepo, "/")
		if !ok || owner == "" || repo == "" || strings.Contains(repo, "/") {
			return bad("--github-repo: expected OWNER/REPO, got %q", o.ghRepo), false
		}
		token, err := triggerSecret(ga, "github-token", o.ghToken)
		if err != nil {
			return bad("%v", err), false
		}
		in := map[string]string{}
		for _, kv := range o.inputs {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return bad("--input: expected NAME=VALUE, got %q", kv), false
			}
			in[k] = v
		}
		srv.Starter = &trigger.Dispatch{API: o.ghAPI, Owner: owner, Repo: repo, Workflow: o.workflow, Ref: o.ref, Token: token, Inputs: in}
	case o.run != "":
		cmd := &trigger.Command{Argv: strings.Fields(o.run), Stdout: s.err}
		if err := cmd.Validate(); err != nil {
			return bad("--run: %v", err), false
		}
		srv.Starter = cmd
	default:
		return bad("give --github-repo OWNER/REPO (workflow_dispatch) or --run COMMAND"), false
	}
	return exitOK, true
}

// serveTrigger serves srv's webhooks on listen until ctx ends, then lets
// the release under way finish.
func serveTrigger(ctx context.Context, srv *trigger.Server, listen, storeFile string, s stdio) int {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintf(s.err, "modelship trigger: %v\n", err)
		return exitFailed
	}
	var hooks []string
	if srv.HFSecret != "" {
		hooks = append(hooks, "/hooks/huggingface")
	}
	if srv.MLflowSecret != "" {
		hooks = append(hooks, "/hooks/mlflow")
	}
	fmt.Fprintf(s.err, "modelship trigger: listening on http://%s (%s); releases: %s; store %s: %d finished, %d queued (resumed), %d left started (not re-run)\n",
		ln.Addr(), strings.Join(hooks, ", "), srv.Starter.Describe(), storeFile,
		len(srv.Store.Keys(trigger.Finished)), len(srv.Store.Keys(trigger.Queued)), len(srv.Store.Keys(trigger.Started)))
	// The releases outlive a webhook's request; on a signal the one under
	// way ends before the trigger does, and those queued wait for its next
	// start.
	rctx, stopReleases := context.WithCancel(ctx)
	defer func() { stopReleases(); srv.Wait() }()
	srv.Start(rctx)
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		fmt.Fprintf(s.err, "modelship trigger: %v\n", err)
		return exitFailed
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hs.Shutdown(sctx)
	stopReleases()
	srv.Wait()
	fmt.Fprintln(s.err, "modelship trigger: stopped")
	return exitOK
}
