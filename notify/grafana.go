package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
)

// Grafana posts an annotation for every finished stage and every step of a
// stage under way (progress; not "started" events) to Grafana's HTTP API,
// POST {url}/api/annotations with a bearer token (a service account token
// with the annotations:write permission). The annotation is an
// organisation-wide one, tagged "modelship", the environment, the stage and
// the status, so a dashboard's annotation query on tags (e.g. "modelship"
// and "deploy") shows deploys on every panel, and "progress" picks out the
// canary's steps. When a finished stage's event has Started, the
// annotation is a region from Started to Time; a step is always a point at
// Time (a region from the stage's start would cover the steps before it).
type Grafana struct {
	url    string
	token  string
	client *http.Client
	red    redactor
}

// GrafanaAnnotation is the body of POST /api/annotations.
type GrafanaAnnotation struct {
	Time    int64    `json:"time"`              // epoch milliseconds
	TimeEnd int64    `json:"timeEnd,omitempty"` // epoch milliseconds, for a region
	Tags    []string `json:"tags"`
	Text    string   `json:"text"`
}

// NewGrafana makes a Grafana sink for the Grafana at baseURL (e.g.
// https://grafana.example.com, or with a sub-path). token never appears in
// errors.
func NewGrafana(baseURL, token string, client *http.Client) *Grafana {
	u := strings.TrimRight(baseURL, "/") + "/api/annotations"
	return &Grafana{url: u, token: token, client: client, red: newRedactor("grafana", baseURL, hostURL(baseURL)+"/api/annotations", token)}
}

// Name is "grafana".
func (g *Grafana) Name() string { return "grafana" }

// Send posts the annotation for a finished stage or a step (progress);
// started events are not annotated.
func (g *Grafana) Send(ctx context.Context, e Event) error {
	if !e.Status.Terminal() && e.Status != StatusProgress {
		return nil
	}
	body, err := json.Marshal(AnnotationFor(e))
	if err != nil {
		return g.red.err(err)
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+g.token)
	h.Set("Accept", "application/json")
	return postJSON(ctx, g.client, g.red, g.url, body, h)
}

// AnnotationFor is the annotation Grafana receives for e.
func AnnotationFor(e Event) GrafanaAnnotation {
	a := GrafanaAnnotation{Time: e.Time.UnixMilli()}
	if !e.Started.IsZero() && e.Started.Before(e.Time) && e.Status != StatusProgress {
		a.Time, a.TimeEnd = e.Started.UnixMilli(), e.Time.UnixMilli()
	}
	a.Tags = []string{"modelship"}
	if e.Environment != "" {
		a.Tags = append(a.Tags, e.Environment)
	}
	a.Tags = append(a.Tags, string(e.Stage), string(e.Status))
	lines := []string{"modelship " + e.Title()}
	add := func(name, v string) {
		if v != "" {
			lines = append(lines, name+": "+v)
		}
	}
	add("release", e.Release)
	model := short(e.ModelDigest)
	if e.Model != "" {
		model = strings.TrimSpace(e.Model + " " + model)
	}
	add("model", model)
	image := e.Image
	if e.ImageDigest != "" && !strings.Contains(image, "@") {
		image += "@" + short(e.ImageDigest)
	}
	add("image", image)
	add("git", shortSHA(e.GitSHA))
	for _, f := range figureLines(e.Figures) {
		add(strings.ToLower(f[0]), f[1])
	}
	add("message", e.Message)
	add("run", e.RunURL)
	a.Text = strings.Join(lines, "\n")
	return a
}
