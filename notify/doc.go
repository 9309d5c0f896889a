// Package notify tells people and systems what happened to a release: every
// stage (preflight, validate, benchmark, build, publish, deploy, verify,
// rollback, release) emits an Event (started, passed, failed, skipped,
// rolled_back, and progress for each step of a stage under way: a canary
// step's analysis, a shadow step) with the model digest, image, git SHA,
// environment, the gate figures and a link to the run, and a Notifier hands
// it to every Sink:
//
//   - Slack: an incoming webhook, Block Kit; a full message per release and
//     compact follow-ups per stage (see Slack).
//   - Webhook: the event as JSON, signed with HMAC-SHA256 (below).
//   - Grafana: an annotation per finished stage and per step, tagged
//     modelship, the environment, the stage and the status (see Grafana).
//   - Pushgateway: deploy events and gate figures as Prometheus metrics (see
//     Pushgateway for the metric names; steps push none).
//
// NewSinks builds the sinks a Settings configures (modelship fills one in
// from modelship.yaml's notifications section).
//
// # Never in the way of a deploy
//
// A sink that is down or slow never fails or stalls the pipeline: each
// attempt is bounded (Options.Timeout, 5s), a failed attempt is retried with
// a doubling backoff (3 attempts in all, 4xx answers but 408 and 429 are not
// retried), and what still fails becomes a Warning, logged and kept for the
// run summary. Notify waits at most Options.Budget; Post does not wait at
// all, and Flush waits for what was posted up to a deadline.
//
// # Secrets
//
// Webhook URLs, tokens and HMAC keys never appear in an error, warning or
// event: net/http's errors repeat the request URL, so every sink rewrites
// them to name the sink and show the URL as "<redacted webhook URL>" (Slack)
// or scheme://host (the others), and removes any secret value left.
//
// # Verifying the generic webhook
//
// Each POST carries:
//
//	Content-Type: application/json
//	X-Modelship-Event: STAGE.STATUS          (e.g. deploy.passed)
//	X-Modelship-Timestamp: UNIX_SECONDS      (when it was sent)
//	X-Modelship-Signature: sha256=HEX
//
// where HEX is the lower-case hex HMAC-SHA256, keyed with the shared secret
// (notifications.webhook.secret), of the timestamp, a ".", and the raw body
// bytes exactly as received. To verify: read the raw body before decoding it;
// recompute the HMAC over TIMESTAMP + "." + BODY; compare with the header's
// hex in constant time; reject a timestamp more than a few minutes from your
// clock (a replayed request). In Go, VerifySignature does all of it:
//
//	body, _ := io.ReadAll(r.Body)
//	err := notify.VerifySignature(secret, r.Header.Get(notify.HeaderTimestamp), body,
//		r.Header.Get(notify.HeaderSignature), 5*time.Minute)
//
// In a shell: printf '%s.%s' "$TS" "$BODY" | openssl dgst -sha256 -hmac "$SECRET".
// In Python: "sha256=" + hmac.new(key, ts.encode() + b"." + body,
// hashlib.sha256).hexdigest(), compared with hmac.compare_digest.
//
// The body is a WebhookBody: "schema" ("modelship.event/v1") and the Event's
// fields (stage, status, release, model, model_digest, image, image_digest,
// git_sha, environment, figures, run_url, started, time, message).
package notify
