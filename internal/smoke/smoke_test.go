package smoke

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/serve"
	"github.com/modelship/modelship/internal/sim"
	"github.com/modelship/modelship/internal/testenv"
)

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// deployed starts the sim on the good test checkpoint behind modelship
// serve's proxy (the real GET /version) and returns its base URL.
func deployed(t *testing.T, info serve.VersionInfo, opt sim.Options) string {
	t.Helper()
	opt.ServedModelName = "good"
	_, eng := testenv.SimServer(t, "../../testdata/models/good", func(tb *sim.Table) {
		tb.Latency = sim.Latency{TTFTms: 1, ITLms: 0.2}
	}, opt)
	u, _ := url.Parse(eng)
	info.ServedModelName = "good"
	ts := httptest.NewServer(serve.NewProxy(u, info))
	t.Cleanup(ts.Close)
	return ts.URL
}

func statuses(r *Result) string {
	var s []string
	for _, c := range r.Checks {
		s = append(s, c.Name+"="+string(c.Status))
	}
	return strings.Join(s, " ")
}

func TestRun(t *testing.T) {
	v := serve.VersionInfo{Digest: digestA, DigestStatus: serve.DigestProvided, Image: "registry.local/llm:1"}
	ep := deployed(t, v, sim.Options{})
	computing := deployed(t, serve.VersionInfo{DigestStatus: serve.DigestComputing, Image: "registry.local/llm:1"}, sim.Options{})
	failing := deployed(t, v, sim.Options{ErrorRate: 1})
	bareSim := testenv.Sim(t, "../../testdata/models/good", nil) // no modelship serve in front
	empty := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/models":
			io.WriteString(w, `{"object":"list","data":[{"id":"a"},{"id":"b"}]}`)
		case "/v1/chat/completions":
			io.WriteString(w, `{"choices":[{"message":{"role":"assistant","content":""},"finish_reason":"length"}]}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer empty.Close()

	for _, tc := range []struct {
		name     string
		endpoint string
		opt      Options
		passed   bool
		checks   string
		reason   string // in some check's detail
	}{
		{"all expected", ep, Options{ExpectDigest: digestA, ExpectImage: "registry.local/llm:1"}, true,
			"models=passed generation=passed version=passed", "/version reports the expected digest " + digestA + ", image registry.local/llm:1"},
		{"with /v1 and a model", ep + "/v1/", Options{Model: "good", ExpectDigest: digestA}, true,
			"models=passed generation=passed version=passed", `GET /v1/models lists "good"`},
		{"nothing expected", ep, Options{}, true,
			"models=passed generation=passed version=passed", "(nothing expected)"},
		{"previous release still serving", ep, Options{ExpectDigest: digestB}, false,
			"models=passed generation=passed version=failed", "/version digest " + digestA + " is not the expected " + digestB + " (the previous release is still serving?)"},
		{"wrong image", ep, Options{ExpectImage: "registry.local/llm:2"}, false,
			"models=passed generation=passed version=failed", `/version image "registry.local/llm:1" is not the expected "registry.local/llm:2"`},
		{"digest still computing", computing, Options{ExpectDigest: digestA}, false,
			"models=passed generation=passed version=failed", `/version reports no digest yet (digest_status "computing"), expected ` + digestA},
		{"model not served", ep, Options{Model: "other"}, false,
			"models=failed generation=skipped version=passed", `GET /v1/models does not list "other" (it lists "good")`},
		{"generation fails", failing, Options{ExpectDigest: digestA}, false,
			"models=passed generation=failed version=passed", "POST /v1/chat/completions answered 500"},
		{"empty content", empty.URL, Options{}, false,
			"models=passed generation=failed version=skipped", `answered 200 with empty content (finish_reason "length")`},
		{"several models, first taken", empty.URL, Options{}, false,
			"models=passed generation=failed version=skipped", `checking the first, "a" (choose with --model)`},
		{"no modelship serve, digest expected", bareSim, Options{ExpectDigest: digestA}, false,
			"models=passed generation=passed version=failed", "reports no digest, image or model; is the endpoint served by `modelship serve`?"},
		{"no modelship serve, nothing expected", bareSim, Options{}, true,
			"models=passed generation=passed version=skipped", "reports no digest, image or model"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Run(context.Background(), tc.endpoint, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			if res.Passed != tc.passed || statuses(res) != tc.checks {
				t.Fatalf("passed %v, checks %s; want %v, %s\n%+v", res.Passed, statuses(res), tc.passed, tc.checks, res.Checks)
			}
			found := false
			for _, c := range res.Checks {
				found = found || strings.Contains(c.Detail, tc.reason)
			}
			if !found {
				t.Fatalf("no check says %q:\n%+v", tc.reason, res.Checks)
			}
			if len(res.Failed()) != strings.Count(tc.checks, "=failed") {
				t.Fatalf("Failed() = %+v", res.Failed())
			}
		})
	}
}

func TestRunReply(t *testing.T) {
	ep := deployed(t, serve.VersionInfo{Digest: digestA}, sim.Options{})
	res, err := Run(context.Background(), ep, Options{Prompt: "What is the capital of France?"})
	if err != nil {
		t.Fatal(err)
	}
	// max_tokens 8 cuts the sim's "The capital of France is Paris." short.
	if !strings.HasPrefix(res.Reply, "The capital of France") || res.Model != "good" || res.Version == nil || res.Version.Digest != digestA {
		t.Fatalf("%+v", res)
	}
}

func TestRunAPIKey(t *testing.T) {
	ep := deployed(t, serve.VersionInfo{Digest: digestA}, sim.Options{APIKey: "k-123"})
	res, err := Run(context.Background(), ep, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Passed || !strings.Contains(res.Checks[0].Detail, "answered 401") {
		t.Fatalf("without the key: %+v", res.Checks)
	}
	if res, err = Run(context.Background(), ep, Options{APIKey: "k-123"}); err != nil || !res.Passed {
		t.Fatalf("with the key: %+v, %v", res, err)
	}
}

func TestRunUnreachable(t *testing.T) {
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	_, err := Run(context.Background(), gone.URL, Options{})
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), gone.URL+"/v1/models") {
		t.Fatalf("%v", err)
	}
	// An endpoint that accepts but never answers is unreachable too, once
	// the timeout passes.
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer hang.Close()
	_, err = Run(context.Background(), hang.URL, Options{Timeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "no answer within the 50ms timeout") {
		t.Fatalf("%v", err)
	}
	if _, err := Run(context.Background(), "ftp://x", Options{}); err == nil || errors.Is(err, ErrUnreachable) {
		t.Fatalf("bad endpoint: %v", err)
	}
}

func TestParseEndpoint(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"http://h:8000", "http://h:8000", ""},
		{"http://h:8000/", "http://h:8000", ""},
		{"http://h:8000/v1", "http://h:8000", ""},
		{"http://h:8000/v1/", "http://h:8000", ""},
		{"https://h/prefix/v1", "https://h/prefix", ""},
		{"h:8000", "http://h:8000", ""},
		{"  http://h:8000  ", "http://h:8000", ""},
		{"", "", "endpoint is empty"},
		{"ftp://h", "", "scheme must be http or https"},
		{"http://", "", "has no host"},
		{"http://h/v1?x=1", "", "query or fragment"},
		{"http://u:secret@h", "", "credentials"},
	} {
		u, err := ParseEndpoint(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseEndpoint(%q) error %v, want %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || u.String() != tc.want):
			t.Errorf("ParseEndpoint(%q) = %v, %v; want %s", tc.in, u, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

func FuzzParseEndpoint(f *testing.F) {
	for _, s := range []string{"http://h:8000/v1", "h:8000", "https://h/a/v1/", "http://[::1]:80", "://", "http://u:p@h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseEndpoint(s)
		if err != nil {
			return
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || strings.HasSuffix(u.Path, "/") || u.RawQuery != "" || u.User != nil {
			t.Fatalf("ParseEndpoint(%q) = %q", s, u)
		}
		if strings.HasSuffix(u.Path, "/v1") {
			return // from .../v1/v1: parsing again drops one more /v1, as documented
		}
		again, err := ParseEndpoint(u.String())
		if err != nil || again.String() != u.String() {
			t.Fatalf("ParseEndpoint(%q) = %q, but ParseEndpoint of that = %v, %v", s, u, again, err)
		}
	})
}
