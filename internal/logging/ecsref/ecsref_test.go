package ecsref

import (
	"strings"
	"testing"
)

func TestReference(t *testing.T) {
	f := Fields()
	if len(f) < 1000 {
		t.Fatalf("%d fields: the reference did not load", len(f))
	}
	for name, typ := range map[string]string{"@timestamp": "date", "log.level": "keyword", "message": "match_only_text",
		"error.message": "match_only_text", "http.response.status_code": "long", "process.pid": "long", "service.name": "keyword"} {
		if f[name] != typ {
			t.Errorf("%s: type %q, want %q", name, f[name], typ)
		}
	}
	if !strings.Contains(reference, "v"+Version) {
		t.Errorf("the reference's header does not name tag v%s", Version)
	}
}

// The checker refuses what Elasticsearch or an ECS dashboard would not take.
func TestCheckerRefuses(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{`{"msg":"x"}`, "msg: not an ECS"},
		{`{"log.level":3}`, "log.level: a JSON number, but ECS type keyword"},
		{`{"process":{"pid":"12"}}`, "process.pid: a JSON string, but ECS type long"},
		{`{"modelship.x":[1]}`, "modelship.x: a JSON array"},
		{`not json`, "not a JSON object"},
	} {
		errs := NewChecker().Line([]byte(tc.line))
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.want) {
			t.Errorf("%s: %v, want one error with %q", tc.line, errs, tc.want)
		}
	}
	c := NewChecker()
	for _, line := range []string{`{"modelship.serve.status":503}`, `{"modelship.serve.status":"signal: killed"}`} {
		c.Line([]byte(line))
	}
	if errs := c.Line([]byte(`{"modelship.serve.status":"0"}`)); len(errs) != 1 || !strings.Contains(errs[0].Error(), "a JSON string here, a number on another line") {
		t.Errorf("a type change across lines: %v", errs)
	}
	c = NewChecker()
	for _, line := range []string{`{"modelship.model":"m"}`, `{"modelship.model.name":"m","message":"ok"}`} {
		if errs := c.Line([]byte(line)); len(errs) > 0 {
			t.Fatalf("%s: %v", line, errs)
		}
	}
	if errs := c.Conflicts(); len(errs) != 1 || !strings.Contains(errs[0].Error(), "modelship.model is a value on one line and the parent of modelship.model.name") {
		t.Errorf("conflicts: %v", errs)
	}
}
