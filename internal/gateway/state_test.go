package gateway

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A gateway restarted mid-canary goes on splitting as before: the split
// and the operator's control come back from the state file, requests
// without the sticky header still split at the percent, and each
// conversation stays on its side. Clearing the canary, or a switch,
// removes it from the file.
func TestStateFileKeepsTheCanary(t *testing.T) {
	stable, cand := named(t, "stable"), named(t, "canary")
	path := filepath.Join(t.TempDir(), "gateway.json")
	const h = "X-Conversation-Id"
	gw := startGateway(t, Options{StatePath: path, Upstream: stable})
	before := setCanary(t, gw.g, cand, 30, h)
	if err := gw.g.SetControl(ActionPromote); err != nil {
		t.Fatal(err)
	}
	st, err := ReadStateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if c := st.Canary; c == nil || c.Upstream != cand || c.Percent != 30 || c.StickyHeader != h || !c.Since.Equal(before.Since) || c.Control != ActionPromote {
		t.Fatalf("state file canary %+v, want %+v with control promote", st.Canary, before)
	}
	c := keepAlive(t)
	side := map[string]string{}
	for i := range 200 {
		id := fmt.Sprintf("conversation-%d", i)
		side[id] = via(t, c, gw.url, h, id)
	}
	if err := gw.stop(); err != nil {
		t.Fatal(err)
	}
	c.CloseIdleConnections()

	gw2 := startGateway(t, Options{StatePath: path, Upstream: stable})
	got := gw2.g.Canary()
	if got.Upstream != cand || got.Percent != 30 || got.StickyHeader != h || !got.Since.Equal(before.Since) || got.Control != ActionPromote {
		t.Fatalf("restored canary %+v, want %+v with control promote", got, before)
	}
	if a := gw2.g.Control(); a != ActionPromote {
		t.Fatalf("restored control %q, want promote", a)
	}
	for id, was := range side {
		if now := via(t, c, gw2.url, h, id); now != was {
			t.Fatalf("%s went to %s before the restart, to %s after", id, was, now)
		}
	}
	const n = 2000
	split := map[string]int{}
	for range n {
		split[via(t, c, gw2.url, "", "")]++
	}
	// 30% of 2000 is 600, standard deviation ~20.
	if split["canary"] < n*25/100 || split["canary"] > n*35/100 {
		t.Fatalf("after the restart, 2000 requests at 30%%: %v", split)
	}

	if _, err := gw2.g.SetCanary(context.Background(), CanaryRequest{Percent: 0}); err != nil {
		t.Fatal(err)
	}
	assertNoCanaryInFile(t, path)
	if a := gw2.g.Control(); a != "" {
		t.Fatalf("control %q after the canary was cleared", a)
	}
	// A switch ends a canary in the same write.
	setCanary(t, gw2.g, cand, 10, "")
	if st, err := ReadStateFile(path); err != nil || st.Canary == nil {
		t.Fatalf("the canary set again is not in the state file: %+v, %v", st, err)
	}
	if _, err := gw2.g.Switch(context.Background(), cand, false, 0); err != nil {
		t.Fatal(err)
	}
	assertNoCanaryInFile(t, path)
}

func assertNoCanaryInFile(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "canary") {
		t.Fatalf("the state file still holds the canary: %s", b)
	}
}

// A state file from before the canary was kept loads as it did, with no
// split.
func TestOldStateFileLoads(t *testing.T) {
	stable, prev := named(t, "stable"), named(t, "previous")
	path := filepath.Join(t.TempDir(), "gateway.json")
	old := fmt.Sprintf(`{"active": %q, "previous": %q, "switched_at": "2025-01-02T03:04:05Z"}`+"\n", stable, prev)
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, Options{StatePath: path})
	if st := gw.g.State(); st.Active != stable || st.Previous != prev || st.Canary != nil {
		t.Fatalf("old state file loaded as %+v", st)
	}
	if body := via(t, keepAlive(t), gw.url, "", ""); body != "stable" {
		t.Fatalf("sent to %q", body)
	}
	assertNoCanaryInFile(t, path)
}

// A state file's canary is checked as SetCanary checks a request: each
// error names its field and what was expected.
func TestParseStateFileCanary(t *testing.T) {
	since := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	good := `{"active":"http://a:8000","canary":{"upstream":"http://b:8000","percent":12.5,"sticky_header":"X-Conversation-Id","since":"2025-01-02T03:04:05Z","control":"abort"}}`
	st, err := ParseStateFile([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c := st.Canary; c == nil || c.Upstream != "http://b:8000" || c.Percent != 12.5 || c.StickyHeader != "X-Conversation-Id" || !c.Since.Equal(since) || c.Control != ActionAbort {
		t.Fatalf("parsed canary %+v", st.Canary)
	}
	for _, c := range []struct{ name, file, want string }{
		{"unknown field", `{"active":"http://a","canary":{"upstream":"http://b","percent":5,"since":"2025-01-02T03:04:05Z","weight":5}}`, `unknown field "weight"`},
		{"bad upstream", `{"active":"http://a","canary":{"upstream":"ftp://b","percent":5,"since":"2025-01-02T03:04:05Z"}}`, "field canary.upstream"},
		{"no upstream", `{"active":"http://a","canary":{"percent":5,"since":"2025-01-02T03:04:05Z"}}`, "field canary.upstream"},
		{"the active one", `{"active":"http://a:80","canary":{"upstream":"http://a:80/","percent":5,"since":"2025-01-02T03:04:05Z"}}`, "field canary.upstream: http://a:80 is the active release"},
		{"no active", `{"canary":{"upstream":"http://b","percent":5,"since":"2025-01-02T03:04:05Z"}}`, "field canary: a canary with no active release"},
		{"percent 0", `{"active":"http://a","canary":{"upstream":"http://b","percent":0,"since":"2025-01-02T03:04:05Z"}}`, "field canary.percent: 0 is not above 0 and at most 100"},
		{"percent 101", `{"active":"http://a","canary":{"upstream":"http://b","percent":101,"since":"2025-01-02T03:04:05Z"}}`, "field canary.percent: 101"},
		{"percent text", `{"active":"http://a","canary":{"upstream":"http://b","percent":"5","since":"2025-01-02T03:04:05Z"}}`, "canary.percent"},
		{"no since", `{"active":"http://a","canary":{"upstream":"http://b","percent":5}}`, "field canary.since: missing"},
		{"bad since", `{"active":"http://a","canary":{"upstream":"http://b","percent":5,"since":"yesterday"}}`, "RFC 3339"},
		{"bad header", `{"active":"http://a","canary":{"upstream":"http://b","percent":5,"since":"2025-01-02T03:04:05Z","sticky_header":"X Id"}}`, `field canary.sticky_header: "X Id" is not a header name`},
		{"bad control", `{"active":"http://a","canary":{"upstream":"http://b","percent":5,"since":"2025-01-02T03:04:05Z","control":"stop"}}`, `field canary.control: "stop" is not one of`},
	} {
		_, err := ParseStateFile([]byte(c.file))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}
