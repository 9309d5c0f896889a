package trigger

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Event is a verified registry event that asks for a release.
type Event struct {
	// Source is "huggingface" or "mlflow".
	Source string `json:"source"`
	// Repo is the Hugging Face repository ("org/name") or the MLflow
	// registered model name.
	Repo string `json:"repo"`
	// Revision is the Hugging Face commit on the watched branch (headSha)
	// or the MLflow model version.
	Revision string `json:"revision"`
	// Digest is modelship's checkpoint digest ("sha256:..."), when the
	// registry says it (an MLflow tag modelship.digest).
	Digest string `json:"digest,omitempty"`
	// Delivery is the registry's delivery id, when it sends one.
	Delivery string `json:"delivery,omitempty"`
}

// Key names the revision in the store and in the pipeline's inputs:
// "hf:org/name@<sha>" or "mlflow:name/<version>".
func (e Event) Key() string {
	if e.Source == "mlflow" {
		return "mlflow:" + e.Repo + "/" + e.Revision
	}
	return "hf:" + e.Repo + "@" + e.Revision
}

// Keys are every key the event is known by: Key, and Digest when set.
func (e Event) Keys() []string {
	k := []string{e.Key()}
	if e.Digest != "" {
		k = append(k, e.Digest)
	}
	return k
}

// ignored is a valid delivery that does not ask for a release.
type ignored struct{ why string }

func (e ignored) Error() string { return e.why }

// hfPayload is the part of a Hub webhook payload read here
// (https://huggingface.co/docs/hub/webhooks#webhook-payloads).
type hfPayload struct {
	Event *struct {
		Action string `json:"action"`
		Scope  string `json:"scope"`
	} `json:"event"`
	Repo *struct {
		Type    string `json:"type"`
		Name    string `json:"name"`
		ID      string `json:"id"`
		HeadSha string `json:"headSha"`
	} `json:"repo"`
	UpdatedRefs []struct {
		Ref    string  `json:"ref"`
		OldSha *string `json:"oldSha"`
		NewSha *string `json:"newSha"`
	} `json:"updatedRefs"`
}

// ParseHF reads a Hugging Face payload. New commits on ref (e.g.
// "refs/heads/main") of a model repository are an Event; anything else
// (discussions, config changes, other branches, datasets) is ignored, with
// the reason. A payload that is not the Hub's shape, or an event whose
// repository or commit fails Event.Validate (a *FieldError naming the
// payload's field), is an error.
func ParseHF(body []byte, ref string) (Event, error) {
	var p hfPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return Event{}, fmt.Errorf("payload is not JSON: %v", err)
	}
	if p.Event == nil || p.Event.Scope == "" || p.Repo == nil || p.Repo.Name == "" {
		return Event{}, fmt.Errorf("payload lacks event.scope or repo.name: not a Hugging Face webhook")
	}
	ev := Event{Source: "huggingface", Repo: p.Repo.Name}
	if p.Repo.Type != "" && p.Repo.Type != "model" {
		return ev, ignored{fmt.Sprintf("repo %s is a %s, not a model", p.Repo.Name, p.Repo.Type)}
	}
	// Narrower scopes are updates of the broader one (the Hub's advice for
	// unknown scopes): repo.content.x is repo.content.
	if !(p.Event.Scope == "repo.content" || strings.HasPrefix(p.Event.Scope, "repo.content.")) {
		return ev, ignored{fmt.Sprintf("event %s.%s is not new content", p.Event.Scope, p.Event.Action)}
	}
	sha, field := "", ""
	if len(p.UpdatedRefs) == 0 {
		sha, field = p.Repo.HeadSha, "repo.headSha" // older payloads: headSha is main's head
	}
	for _, u := range p.UpdatedRefs {
		if u.Ref == ref && u.NewSha != nil {
			sha, field = *u.NewSha, "updatedRefs[].newSha of "+ref
		}
	}
	if sha == "" {
		return ev, ignored{"no new commit on " + ref}
	}
	ev.Revision = sha
	if err := ev.check(fieldNames{repo: "repo.name", revision: field, digest: "digest"}); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// mlflowPayload is MLflow's webhook envelope (mlflow/webhooks/delivery.py):
// {"entity", "action", "timestamp", "data"}.
type mlflowPayload struct {
	Entity string `json:"entity"`
	Action string `json:"action"`
	Data   *struct {
		Name    string            `json:"name"`
		Version string            `json:"version"`
		Alias   string            `json:"alias"`
		Tags    map[string]string `json:"tags"`
	} `json:"data"`
}

// DigestTag is the MLflow model version tag that may carry modelship's
// checkpoint digest.
const DigestTag = "modelship.digest"

// ParseMLflow reads an MLflow payload. model_version.created is an Event;
// so is model_version_alias.created when alias is set and matches. Other
// events are ignored. An event whose name, version or modelship.digest tag
// fails Event.Validate is an error (a *FieldError naming the payload's
// field): a malformed digest tag is refused, not dropped.
func ParseMLflow(body []byte, alias string) (Event, error) {
	var p mlflowPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return Event{}, fmt.Errorf("payload is not JSON: %v", err)
	}
	if p.Entity == "" || p.Action == "" || p.Data == nil || p.Data.Name == "" {
		return Event{}, fmt.Errorf("payload lacks entity, action or data.name: not an MLflow webhook")
	}
	ev := Event{Source: "mlflow", Repo: p.Data.Name, Revision: p.Data.Version, Digest: p.Data.Tags[DigestTag]}
	event := p.Entity + "." + p.Action
	switch {
	case event == "model_version.created":
	case event == "model_version_alias.created" && alias != "" && p.Data.Alias == alias:
	default:
		return ev, ignored{"event " + event + " does not ask for a release"}
	}
	if err := ev.check(mlflowFields); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// mlflowFields name an MLflow event's fields as its payload does.
var mlflowFields = fieldNames{repo: "data.name", revision: "data.version", digest: `data.tags["` + DigestTag + `"]`}
