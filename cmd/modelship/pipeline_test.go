package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/modelship/modelship/internal/serve"
	"github.com/modelship/modelship/internal/testenv"
)

func TestWaitReady(t *testing.T) {
	eng, _ := url.Parse(testenv.Sim(t, "../../testdata/models/good", nil))
	ts := httptest.NewServer(serve.NewProxy(eng, serve.VersionInfo{ServedModelName: "current"}))
	defer ts.Close()
	code, out, errs := runCLI(t, "wait-ready", "--endpoint", ts.URL, "--model", "good", "--timeout", "30s")
	if code != exitOK || !strings.Contains(errs, "model service "+ts.URL+" ready after") {
		t.Fatalf("ready service: exit %d:\n%s%s", code, out, errs)
	}
	// A service that never gets ready: past the budget, exit 124 with the
	// reason of the last check.
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	code, out, errs = runCLI(t, "wait-ready", "--endpoint", gone.URL, "--timeout", "1s")
	if code != 124 || !strings.Contains(errs, "model service "+gone.URL+" not ready after") || !strings.Contains(errs, "last check:") {
		t.Fatalf("unreachable service: exit %d, want 124 with the reason:\n%s%s", code, out, errs)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"wait-ready"}, "--endpoint"},
		{[]string{"wait-ready", "--endpoint", "ftp://x"}, "scheme must be http or https"},
		{[]string{"host-run", "--", "deploy"}, "--image and the command (after --) are required"},
		{[]string{"host-run", "--image", "x", "--env", "NOVALUE", "--", "deploy"}, "expected NAME=VALUE"},
		{[]string{"secrets-exec"}, "the command to run (after --) is required"},
	} {
		code, out, errs := runCLI(t, tc.args...)
		if code != exitUsage || !strings.Contains(out+errs, tc.want) {
			t.Errorf("%v: exit %d, want %d with %q:\n%s%s", tc.args, code, exitUsage, tc.want, out, errs)
		}
	}
}
