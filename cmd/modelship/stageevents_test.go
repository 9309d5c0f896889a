package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/config"
	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/docker"
	"github.com/modelship/modelship/internal/testenv"
	"github.com/modelship/modelship/notify"
	"github.com/modelship/modelship/serving/stage"
)

// hookRecorder is a webhook receiver that checks each request as a user's
// would: the signature over timestamp and raw body (notify.VerifySignature),
// the event header, then the JSON body.
type hookRecorder struct {
	URL    string
	secret string

	mu     sync.Mutex
	bodies []string
	events []notify.WebhookBody
	bad    []string
}

func recordHooks(t *testing.T, secret string) *hookRecorder {
	t.Helper()
	h := &hookRecorder{secret: secret}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		h.bodies = append(h.bodies, string(body))
		if err := notify.VerifySignature([]byte(secret), r.Header.Get(notify.HeaderTimestamp), body, r.Header.Get(notify.HeaderSignature), 5*time.Minute); err != nil {
			h.bad = append(h.bad, "signature: "+err.Error())
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var e notify.WebhookBody
		if err := json.Unmarshal(body, &e); err != nil {
			h.bad = append(h.bad, "body: "+err.Error())
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		if got, want := r.Header.Get(notify.HeaderEvent), string(e.Stage)+"."+string(e.Status); got != want {
			h.bad = append(h.bad, fmt.Sprintf("%s header %q, body says %q", notify.HeaderEvent, got, want))
		}
		h.events = append(h.events, e)
	}))
	t.Cleanup(srv.Close)
	h.URL = srv.URL + "/hooks/modelship"
	return h
}

// received returns the events received so far and fails the test on any
// request that did not verify.
func (h *hookRecorder) received(t *testing.T) []notify.WebhookBody {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, b := range h.bad {
		t.Errorf("webhook request rejected: %s", b)
	}
	return append([]notify.WebhookBody(nil), h.events...)
}

func (h *hookRecorder) allBodies() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.bodies, "\n")
}

// statuses lists the events' "stage.status".
func statuses(evs []notify.WebhookBody) []string {
	var s []string
	for _, e := range evs {
		s = append(s, string(e.Stage)+"."+string(e.Status))
	}
	return s
}

// eventsYAML writes a modelship.yaml for the model dir with extra YAML
// (environments) and a notifications section.
func eventsYAML(t *testing.T, model, servedName, extra, notifications string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "modelship.yaml")
	y := fmt.Sprintf("version: 1\nmodel:\n  path: %s\n  served-name: %s\n%snotifications:\n%s", model, servedName, extra, notifications)
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const hookSecretEnv = "MODELSHIP_TEST_HOOK_SECRET"

func webhookYAML(url string) string {
	return fmt.Sprintf("  webhook:\n    url: %s\n    secret: env:%s\n", url, hookSecretEnv)
}

// noSecret fails when secret appears in any of the texts.
func noSecret(t *testing.T, secret string, texts map[string]string) {
	t.Helper()
	for name, s := range texts {
		if strings.Contains(s, secret) {
			t.Errorf("%s holds the webhook secret:\n%s", name, s)
		}
	}
}

func TestValidateNotifies(t *testing.T) {
	const secret = "validate-hook-secret-1c9e"
	t.Setenv(hookSecretEnv, secret)
	for _, c := range []struct {
		model    string
		code     int
		status   notify.Status
		ok       int
		passRate float64
	}{
		{"good", exitOK, notify.StatusPassed, 6, 1},
		{"regressed", exitFailed, notify.StatusFailed, 0, 0},
	} {
		t.Run(c.model, func(t *testing.T) {
			hooks := recordHooks(t, secret)
			model := "../../testdata/models/" + c.model
			base := testenv.Sim(t, model, nil)
			cfg := eventsYAML(t, mustAbs(t, model), c.model, "", webhookYAML(hooks.URL))
			code, out, errs := validate(t, "--endpoint", base+"/v1", "--cases", articleCases, "--config", cfg)
			if code != c.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, c.code, out, errs)
			}
			evs := hooks.received(t)
			if got := strings.Join(statuses(evs), " "); got != "validate.started validate."+string(c.status) {
				t.Fatalf("events %q, want started then %s\n%s", got, c.status, errs)
			}
			end := evs[1]
			v := end.Figures.Validation
			if end.Figures == nil || v == nil || v.Total != 6 || v.Ok != c.ok || v.PassRate != c.passRate || v.Passed != (c.status == notify.StatusPassed) {
				t.Errorf("validation figures %+v, want %d of 6 (pass rate %g)", v, c.ok, c.passRate)
			}
			if end.Model != c.model || end.Schema != "modelship.event/v1" || end.Started.IsZero() || end.Time.Before(end.Started) {
				t.Errorf("event %+v: want model %s, the schema, started before time", end.Event, c.model)
			}
			if strings.Contains(errs, "warning: notification") {
				t.Errorf("a delivered event was warned about:\n%s", errs)
			}
			noSecret(t, secret, map[string]string{"stdout": out, "stderr": errs, "webhook bodies": hooks.allBodies()})
		})
	}
}

func TestBenchNotifies(t *testing.T) {
	const secret = "bench-hook-secret-77ab"
	t.Setenv(hookSecretEnv, secret)
	hooks := recordHooks(t, secret)
	url := testenv.Sim(t, simModels+"good", nil)
	cfg := eventsYAML(t, mustAbs(t, simModels+"good"), "good", "", webhookYAML(hooks.URL))
	code, out, errs := benchCLI(t, "--endpoint", url, "--model", "good", "--prompts", benchPrompts, "--config", cfg,
		"--requests", "20", "--concurrency", "4", "--min-tokens-per-sec", "1", "--max-error-rate", "0")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	evs := hooks.received(t)
	if got := strings.Join(statuses(evs), " "); got != "benchmark.started benchmark.passed" {
		t.Fatalf("events %q\n%s", got, errs)
	}
	b := evs[1].Figures.Bench
	if b == nil || !b.Passed || b.Requests != 20 || b.Errors != 0 || b.TTFT.Count != 20 || b.TTFT.P99 <= 0 || b.TTFT.P50 > b.TTFT.P99 ||
		b.E2EL.P99 < b.TTFT.P99 || b.OutputTokensPerSec <= 0 {
		t.Errorf("bench figures %+v", b)
	}
	if !strings.HasPrefix(evs[1].Message, "passed: ") || evs[1].Model != "good" {
		t.Errorf("event %+v", evs[1].Event)
	}
	noSecret(t, secret, map[string]string{"stdout": out, "stderr": errs})
}

// A sink that cannot be reached warns on stderr and leaves the verdict and
// exit code alone; one whose secret is not set is left out with a warning
// naming the reference, and the others still get the event.
func TestStageNotificationsNeverFailTheStage(t *testing.T) {
	const secret = "never-fail-secret-0b3d"
	t.Setenv(hookSecretEnv, secret)
	t.Setenv("MODELSHIP_TEST_UNSET_TOKEN", "")
	base := testenv.Sim(t, "../../testdata/models/good", nil)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	cfg := eventsYAML(t, mustAbs(t, "../../testdata/models/good"), "good", "",
		webhookYAML(closedURL+"/hook")+"  grafana:\n    url: http://127.0.0.1:1\n    token: env:MODELSHIP_TEST_UNSET_TOKEN\n")
	code, out, errs := validate(t, "--endpoint", base+"/v1", "--cases", articleCases, "--config", cfg)
	if code != exitOK || !strings.HasPrefix(out, "PASSED: 6 validation cases\n") {
		t.Fatalf("exit %d, want 0\n%s%s", code, out, errs)
	}
	for _, want := range []string{
		"modelship: warning: notification: grafana left out: notifications.grafana.token: ",
		"MODELSHIP_TEST_UNSET_TOKEN",
		"modelship: warning: notification: webhook: validate started not delivered after 3 attempt(s)",
		"modelship: warning: notification: webhook: validate passed not delivered after 3 attempt(s)",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	noSecret(t, secret, map[string]string{"stdout": out, "stderr": errs})
}

// jsonLogLines are the stderr lines that are JSON objects.
func jsonLogLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "{") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Errorf("stderr line is not JSON: %v\n%s", err, sc.Text())
			continue
		}
		lines = append(lines, m)
	}
	return lines
}

// TestDeployNotifies deploys on the real engine (skipped without one, except
// under CI=true) inside a GitHub Actions step, with the signed webhook and
// the real Pushgateway configured: a good release, then a regressed one that
// fails verify and is rolled back.
func TestDeployNotifies(t *testing.T) {
	_, host, imgs := testenv.DockerImages(t, testenv.ImageGood, testenv.ImageRegressed)
	good, bad := imgs[0], imgs[1]
	pushgw := testenv.Pushgateway(t)
	const secret = "deploy-hook-secret-5e0f9a"
	t.Setenv(hookSecretEnv, secret)
	t.Setenv("GITHUB_SERVER_URL", "https://github.com")
	t.Setenv("GITHUB_REPOSITORY", "acme/models")
	t.Setenv("GITHUB_RUN_ID", "4242")
	hooks := recordHooks(t, secret)

	port := testenv.FreePort(t)
	tg, err := docker.New(docker.Options{Host: host})
	if err != nil {
		t.Fatal(err)
	}
	envName := testenv.Env(t, "ev", tg)
	root := testenv.RepoRoot()
	extra := fmt.Sprintf("serving:\n  engine: sim\nsuites:\n  validation: %s\nenvironments:\n  %s:\n    target: docker\n    port: %d\n    docker:\n      host: %s\n",
		filepath.Join(root, "testdata/suites/validation_cases.json"), envName, port, host)
	cfg := eventsYAML(t, filepath.Join(root, "testdata/models/good"), "current", extra,
		webhookYAML(hooks.URL)+"  pushgateway:\n    url: "+pushgw+"\n    job: modelship-test\n")
	common := []string{"--env", envName, "--config", cfg, "--ledger", filepath.Join(t.TempDir(), "ledger.jsonl")}

	// A good release: started, then passed, with the release's fields.
	gh := inActions(t)
	code, out, errs := runCmd(t, append([]string{"deploy", "--image", good.Tag, "--git-sha", "abc1234"}, common...)...)
	if code != exitOK {
		t.Fatalf("deploy: exit %d\n%s\n%s", code, out, errs)
	}
	evs := hooks.received(t)
	if got := strings.Join(statuses(evs), " "); got != "deploy.started deploy.passed" {
		t.Fatalf("events %q\n%s", got, errs)
	}
	outs := gh.outputs(t)
	release := outs["release-id"]
	for i, e := range evs {
		if e.Environment != envName || e.Image != good.Tag || e.ModelDigest != good.ModelDigest || e.GitSHA != "abc1234" ||
			e.Model != "current" || e.RunURL != "https://github.com/acme/models/actions/runs/4242" {
			t.Errorf("event %d: %+v", i, e.Event)
		}
	}
	// Both name the release (one Slack message per release, not two).
	if evs[0].Release != release || evs[1].Release != release || release == "" || !strings.Contains(evs[1].Message, "ready after") ||
		!strings.Contains(evs[1].Message, "verified in") || evs[1].Started.IsZero() {
		t.Errorf("passed event: release %q (output %q), message %q", evs[1].Release, release, evs[1].Message)
	}

	// GitHub Actions: outputs, the group, the summary's release table.
	sameOutputs(t, outs, map[string]string{
		"deploy-verdict": "passed", "deploy-endpoint": fmt.Sprintf("http://127.0.0.1:%d", port), "release-id": release,
		"image-ref": good.Tag, "image-id": outs["image-id"], "model-digest": good.ModelDigest,
	})
	if !strings.HasPrefix(outs["image-id"], "sha256:") {
		t.Errorf("image-id %q", outs["image-id"])
	}
	summary := gh.stepSummary(t)
	if !strings.Contains(summary, "### ✅ modelship deploy passed in "+envName) || !strings.Contains(summary, "| `"+release+"` | `"+good.Tag+"` |") ||
		!strings.Contains(summary, "Timings: ") {
		t.Errorf("step summary:\n%s", summary)
	}
	if g, e := strings.Index(out, "::group::deploy "+envName+"\n"), strings.Index(out, "::endgroup::"); g < 0 || e < g {
		t.Errorf("no group around the deploy:\n%s", out)
	}
	// Progress off a terminal: JSON log lines with the stage and environment.
	logged := false
	for _, l := range jsonLogLines(t, errs) {
		if l["event.action"] == "deploy" && l["modelship.environment"] == envName && strings.HasPrefix(fmt.Sprint(l["message"]), "plan: ") {
			logged = true
		}
	}
	if !logged {
		t.Errorf("no JSON log line for the plan with event.action and modelship.environment:\n%s", errs)
	}

	// The Pushgateway holds the deploy, read back as Prometheus scrapes it.
	metrics := httpGet(t, pushgw+"/metrics")
	want := fmt.Sprintf(`modelship_deploy_timestamp_seconds{env="%s",git_sha="abc1234",image="%s",image_digest="",instance="",job="modelship-test",model="current",model_digest="%s",release="%s",stage="deploy"}`,
		envName, good.Tag, good.ModelDigest, release)
	if !strings.Contains(metrics, want) {
		t.Errorf("pushgateway /metrics lacks\n%s\n%s", want, grepLines(metrics, "modelship_"))
	}

	// A regressed release fails verify: rolled back, and said so.
	gh = inActions(t)
	code, out2, errs2 := runCmd(t, append([]string{"deploy", "--image", bad.Tag}, common...)...)
	if code != exitFailed {
		t.Fatalf("regressed deploy: exit %d\n%s\n%s", code, out2, errs2)
	}
	evs = hooks.received(t)
	if got := strings.Join(statuses(evs[2:]), " "); got != "deploy.started deploy.rolled_back" {
		t.Fatalf("events %q\n%s", got, errs2)
	}
	if e := evs[3]; e.Image != bad.Tag || e.Release == "" || e.Release == release || e.Release != evs[2].Release || !strings.Contains(e.Message, release) {
		t.Errorf("rolled_back event: %+v", e.Event)
	}
	outs = gh.outputs(t)
	summary = gh.stepSummary(t)
	if outs["deploy-verdict"] != "rolled_back" || !strings.Contains(summary, "**What failed:**") ||
		!strings.Contains(summary, "**Rolled back:** traffic is back on release `"+release+"`") {
		t.Errorf("outputs %v\nsummary:\n%s", outs, summary)
	}
	if !strings.Contains(out2, "::error title=deploy to "+envName+" rolled back::") {
		t.Errorf("no error annotation:\n%s", out2)
	}
	metrics = httpGet(t, pushgw+"/metrics")
	if !strings.Contains(metrics, `modelship_stage_timestamp_seconds{env="`+envName+`",instance="",job="modelship-test",model="current",stage="deploy",status="rolled_back"}`) {
		t.Errorf("pushgateway lacks the rolled_back stage:\n%s", grepLines(metrics, "modelship_stage"))
	}

	// The secret is masked once and shown nowhere else.
	for name, s := range map[string]string{"stdout": out + out2, "stderr": errs + errs2} {
		if n := strings.Count(s, secret); n != strings.Count(s, "::add-mask::"+secret) {
			t.Errorf("%s shows the secret outside ::add-mask::", name)
		}
	}
	if !strings.Contains(out, "::add-mask::"+secret) {
		t.Errorf("secret not masked:\n%s", out)
	}
	noSecret(t, secret, map[string]string{"summary": summary, "webhook bodies": hooks.allBodies(), "pushgateway": metrics})
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestPreflightNotifiesTheDigest(t *testing.T) {
	const secret = "preflight-hook-secret-93d1"
	t.Setenv(hookSecretEnv, secret)
	hooks := recordHooks(t, secret)
	model := mustAbs(t, "../../testdata/models/good")
	cfg := eventsYAML(t, model, "good", "", webhookYAML(hooks.URL))
	code, out, errs := runCmd(t, "preflight", cfg, "--gpu-memory", "80GiB", "--no-cache")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	evs := hooks.received(t)
	if got := strings.Join(statuses(evs), " "); got != "preflight.started preflight.passed" {
		t.Fatalf("events %q\n%s", got, errs)
	}
	digest := ""
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(l, "Digest      "); ok {
			digest, _, _ = strings.Cut(rest, " ")
		}
	}
	if e := evs[1]; !strings.HasPrefix(digest, "sha256:") || e.ModelDigest != digest || e.Model != "good" || !strings.Contains(e.Message, "fits the GPUs") {
		t.Errorf("passed event %+v, want digest %q", e.Event, digest)
	}
}

// Each step of a canary rollout (the deployer's Progress) is a progress
// event of the deploy between started and passed: the release, the
// environment, the image, the step's name and detail, redacted, and no
// start (a point in Grafana).
func TestDeployStepsNotify(t *testing.T) {
	const secret = "steps-hook-secret-7d21b3"
	t.Setenv(hookSecretEnv, secret)
	hooks := recordHooks(t, secret)
	cfg, err := config.Load(eventsYAML(t, mustAbs(t, "../../testdata/models/good"), "current", "", webhookYAML(hooks.URL)))
	if err != nil {
		t.Fatal(err)
	}
	var errs strings.Builder
	sr := &stageRun{name: "deploy", res: stage.New("deploy"), errs: &stderrLine{w: &errs}}
	d := &deploy.Deployer{}
	req := deploy.Request{Env: "staging", Image: "ghcr.io/acme/llm:r2", URL: "http://staging:8100"}
	rel := &deploy.Release{ID: "r-20261207-120000", Env: "staging", Image: "ghcr.io/acme/llm:r2", ModelDigest: "sha256:bb"}
	run := func(context.Context) (*deploy.Result, error) {
		d.Started(rel)
		d.Progress("canary-step", rel, "5% passed: canary error rate 0.000 of 120 requests")
		d.Progress("canary-step", rel, "25% passed: the gateway answered with key "+secret) // a detail quoting a secret
		d.Progress("canary-promoted", rel, "promoted: every step passed (5%, 25%)")
		return &deploy.Result{Release: rel}, nil
	}
	if _, err := deployStage(t.Context(), &deployFlags{cfg: cfg}, stdio{out: io.Discard, err: io.Discard}, sr, d, req, notify.StageDeploy, run); err != nil {
		t.Fatal(err)
	}
	sr.ev.Close(t.Context())

	evs := hooks.received(t)
	if got := strings.Join(statuses(evs), " "); got != "deploy.started deploy.progress deploy.progress deploy.progress deploy.passed" {
		t.Fatalf("events %q, want started, a progress per step, passed\n%s", got, errs.String())
	}
	for i, want := range []string{
		"canary-step: 5% passed: canary error rate 0.000 of 120 requests",
		"canary-step: 25% passed: the gateway answered with key ",
		"canary-promoted: promoted: every step passed (5%, 25%)",
	} {
		e := evs[1+i]
		if !strings.HasPrefix(e.Message, want) || e.Release != rel.ID || e.Environment != "staging" || e.Image != rel.Image ||
			e.Model != "current" || !e.Started.IsZero() || e.Time.IsZero() {
			t.Errorf("step %d: %+v, want release %s in staging, message %q, a time and no start", i, e.Event, rel.ID, want)
		}
	}
	noSecret(t, secret, map[string]string{"webhook bodies": hooks.allBodies(), "stderr": errs.String()})
}
