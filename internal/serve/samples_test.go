package serve

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/measure"
)

// Every /v1/ request the proxy answers is in its samples ring, its own 401
// included; probes are not. GET SamplesPath reads them from a cursor with
// no API key, as the Kubernetes target does through the pod proxy.
func TestSamplesOfProxiedRequests(t *testing.T) {
	eng := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/completions" {
			http.Error(w, "engine failed", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, `{"data":[]}`)
	}))
	defer eng.Close()
	p := NewProxy(mustURL(t, eng.URL), VersionInfo{ServedModelName: "llama"})
	p.APIKey = "k"
	srv := httptest.NewServer(p)
	defer srv.Close()
	do := func(method, path, key string) int {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader("{}"))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	do(http.MethodGet, "/v1/models", "k")
	do(http.MethodPost, "/v1/completions", "k")
	do(http.MethodGet, "/version", "")
	do(http.MethodGet, "/v1/models", "wrong")
	read := func(query string) (int, measure.Samples) {
		t.Helper()
		resp, err := http.Get(srv.URL + SamplesPath + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var s measure.Samples
		json.NewDecoder(resp.Body).Decode(&s)
		return resp.StatusCode, s
	}
	code, s := read("?since=0")
	var got []int
	for _, x := range s.Samples {
		got = append(got, x.Status)
	}
	if code != 200 || s.Next != 3 || len(got) != 3 || got[0] != 200 || got[1] != 500 || got[2] != 401 || !s.Samples[1].Error || s.Samples[0].Error {
		t.Fatalf("since 0: %d next %d statuses %v", code, s.Next, got)
	}
	if _, s := read("?since=2"); len(s.Samples) != 1 || s.Samples[0].Seq != 3 {
		t.Fatalf("since 2: %+v", s)
	}
	if code, _ := read("?since=x"); code != http.StatusBadRequest {
		t.Fatalf("since=x answered %d, want 400", code)
	}
}

// A keep-alive connection older than MaxConnAge is told to close, so
// the client reconnects (and a Service spreads it anew); a young one is
// kept.
func TestOldConnectionsClosed(t *testing.T) {
	eng := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{}`) }))
	defer eng.Close()
	p := NewProxy(mustURL(t, eng.URL), VersionInfo{ServedModelName: "llama"})
	srv := httptest.NewUnstartedServer(p)
	srv.Config.ConnContext = ConnContext
	srv.Start()
	defer srv.Close()
	get := func() bool {
		t.Helper()
		resp, err := http.Get(srv.URL + "/v1/models")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.Close
	}
	p.MaxConnAge = time.Hour
	if get() {
		t.Fatal("a new connection was told to close")
	}
	p.MaxConnAge = time.Nanosecond
	if !get() {
		t.Fatal("a connection older than MaxConnAge was kept open")
	}
}
