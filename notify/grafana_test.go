package notify

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/modelship/modelship/internal/golden"
)

func TestGrafanaAnnotation(t *testing.T) {
	rec := newRecorder(t)
	token := "glsa_annotationToken_0123456789"
	g := NewGrafana(rec.URL+"/grafana/", token, nil)
	e := sampleEvent()
	started := e
	started.Status = StatusStarted
	point := e
	point.Started = point.Time.Add(1) // after Time: no region
	// Two annotations: started is not annotated.
	reqs := deliver(t, g, rec, "/grafana/api/annotations", 2, started, e, point)
	r := reqs[0]
	if got := r.Header.Get("Authorization"); got != "Bearer "+token {
		t.Errorf("Authorization = %q", got)
	}
	if got := r.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q", got)
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	var a GrafanaAnnotation
	if err := dec.Decode(&a); err != nil {
		t.Fatal(err)
	}
	if a.Time != e.Started.UnixMilli() || a.TimeEnd != e.Time.UnixMilli() {
		t.Errorf("region %d..%d, want %d..%d (epoch ms)", a.Time, a.TimeEnd, e.Started.UnixMilli(), e.Time.UnixMilli())
	}
	if got := strings.Join(a.Tags, ","); got != "modelship,production,deploy,passed" {
		t.Errorf("tags %s", got)
	}
	for _, want := range []string{"modelship deploy passed in production", "model: llama-3.1-8b sha256:0123456789ab", "git: abc1234", "run: https://github.com/acme/models/actions/runs/123456"} {
		if !strings.Contains(a.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, a.Text)
		}
	}
	golden.Check(t, "grafana_annotation.json", r.Body)

	var p map[string]any
	json.Unmarshal(reqs[1].Body, &p)
	if _, ok := p["timeEnd"]; ok {
		t.Errorf("a point annotation has timeEnd: %s", reqs[1].Body)
	}
	if p["time"].(float64) != float64(e.Time.UnixMilli()) {
		t.Errorf("point time %v, want %d", p["time"], e.Time.UnixMilli())
	}
}

// A 401 is not retried, and the warning does not carry the token.
func TestGrafanaUnauthorized(t *testing.T) {
	rec := newRecorder(t, 401)
	token := "glsa_wrongToken_0123456789"
	ws := notifyOne(t, NewGrafana(rec.URL, token, nil), sampleEvent(), fast())
	if len(ws) != 1 || ws[0].Attempts != 1 || !strings.Contains(ws[0].Message, "401") {
		t.Fatalf("got %+v, want one warning after 1 attempt naming the 401", ws)
	}
	if len(rec.requests()) != 1 {
		t.Errorf("%d requests, want 1", len(rec.requests()))
	}
	if strings.Contains(ws[0].String(), token) {
		t.Errorf("warning contains the token: %s", ws[0])
	}
}

// A canary step is a point annotation at its time, tagged progress, even
// when the event carries the stage's start.
func TestGrafanaProgress(t *testing.T) {
	rec := newRecorder(t)
	e := progressEvent()
	r := deliver(t, NewGrafana(rec.URL, "glsa_token_for_tests_0123", nil), rec, "/api/annotations", 1, e)[0]
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	var a GrafanaAnnotation
	if err := dec.Decode(&a); err != nil {
		t.Fatal(err)
	}
	if a.Time != e.Time.UnixMilli() || a.TimeEnd != 0 {
		t.Errorf("annotation %d..%d, want a point at %d (epoch ms)", a.Time, a.TimeEnd, e.Time.UnixMilli())
	}
	if got := strings.Join(a.Tags, ","); got != "modelship,production,deploy,progress" {
		t.Errorf("tags %s", got)
	}
	if !strings.Contains(a.Text, "modelship deploy progress in production\n") || !strings.Contains(a.Text, "\nmessage: "+e.Message+"\n") {
		t.Errorf("text lacks the title or the step:\n%s", a.Text)
	}
	golden.Check(t, "grafana_progress.json", r.Body)
}
