package shadow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestNewDefaults(t *testing.T) {
	m := mirror(t, Options{Upstream: "http://candidate:8000/", Percent: 100})
	if m.opt.Queue != DefaultQueue || m.opt.Workers != DefaultWorkers || m.opt.Timeout != DefaultTimeout || cap(m.queue) != DefaultQueue {
		t.Errorf("defaults: queue %d (cap %d), workers %d, timeout %v", m.opt.Queue, cap(m.queue), m.opt.Workers, m.opt.Timeout)
	}
	if m.upstream != "http://candidate:8000" {
		t.Errorf("upstream %q, want it without the trailing slash", m.upstream)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for _, c := range []struct {
		opt  Options
		want string
	}{
		{Options{Percent: 10}, "shadow upstream: empty"},
		{Options{Upstream: "candidate:8000", Percent: 10}, `shadow upstream "candidate:8000": expected a base http(s) URL`},
		{Options{Upstream: "ftp://candidate", Percent: 10}, "expected a base http(s) URL"},
		{Options{Upstream: "http://candidate:8000/?x=1", Percent: 10}, "no query"},
		{Options{Upstream: "http://u:hunter2@candidate:8000/?x=1", Percent: 10}, "u:xxxxx@candidate"},
		{Options{Upstream: "http://candidate:8000", Percent: 0}, "shadow percent 0: expected more than 0 and at most 100"},
		{Options{Upstream: "http://candidate:8000", Percent: 100.5}, "shadow percent 100.5"},
		{Options{Upstream: "http://candidate:8000", Percent: 5, Queue: -1}, "shadow queue -1: expected 0 (default 64) or more"},
		{Options{Upstream: "http://candidate:8000", Percent: 5, Workers: -2}, "shadow workers -2"},
		{Options{Upstream: "http://candidate:8000", Percent: 5, Timeout: -1}, "shadow timeout -1ns"},
	} {
		m, err := New(c.opt)
		if err == nil {
			m.Close()
			t.Errorf("New(%+v) accepted it, want an error with %q", c.opt, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %q, want it to contain %q", c.opt, err, c.want)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error shows the upstream's password: %q", err)
		}
	}
}

func TestSample(t *testing.T) {
	all := mirror(t, Options{Upstream: "http://c", Percent: 100})
	some := mirror(t, Options{Upstream: "http://c", Percent: 25})
	n := 0
	for range 4000 {
		if !all.Sample() {
			t.Fatal("Percent 100 left a request out")
		}
		if some.Sample() {
			n++
		}
	}
	// 4000 draws at 25%: mean 1000, standard deviation 27; 700..1300 is
	// more than 10 deviations either side.
	if n < 700 || n > 1300 {
		t.Errorf("Percent 25 sampled %d of 4000", n)
	}
}

func TestIdenticalCandidateAgrees(t *testing.T) {
	stable := server(t, llm{answer: same})
	m := mirror(t, Options{Upstream: server(t, llm{answer: same})})
	var exs []Exchange
	for i := range 12 {
		exs = append(exs, capture(t, stable, ChatPath, chatBody(fmt.Sprint("q", i), false), nil))
	}
	for i := range 8 {
		exs = append(exs, capture(t, stable, CompletionPath+"?x=1", completionBody(fmt.Sprint("p", i), false), nil))
	}
	offerAll(t, m, exs)
	r := settle(m, 20)
	if r.Offered != 20 || r.Compared != 20 || r.Comparable != 20 || r.Agreed != 20 || r.AgreementRate != 1 {
		t.Errorf("offered %d compared %d comparable %d agreed %d rate %v, want 20 20 20 20 1", r.Offered, r.Compared, r.Comparable, r.Agreed, r.AgreementRate)
	}
	if r.CandidateErrors != 0 || r.Dropped != 0 || len(r.Worst) != 0 {
		t.Errorf("candidate errors %d, dropped %d, worst %v: want none", r.CandidateErrors, r.Dropped, r.Worst)
	}
	for name, l := range map[string]Latency{"stable": r.Stable, "candidate": r.Candidate} {
		if l.N != 20 || l.TTFBP50Ms <= 0 || l.TotalP99Ms < l.TotalP50Ms || l.TotalP50Ms < l.TTFBP50Ms {
			t.Errorf("%s latency %+v: want 20 samples, 0 < ttfb p50 <= total p50 <= total p99", name, l)
		}
	}
}

// changed replaces the last k of the 10 words of a stable answer.
func changed(prompt string, k int) string {
	w := strings.Fields("w1 w2 w3 w4 w5 w6 w7 w8 w9 " + prompt)
	for i := len(w) - k; i < len(w); i++ {
		w[i] = "other"
	}
	return strings.Join(w, " ")
}

func TestDisagreementsListedLeastSimilarFirst(t *testing.T) {
	// Prompts p1..p7 get k of 10 words changed (similarity 1-k/10); p8..p10
	// the same answer.
	stable := server(t, llm{answer: func(p string) string { return changed(p, 0) }})
	cand := server(t, llm{answer: func(p string) string {
		var k int
		fmt.Sscanf(p, "p%d", &k)
		if k > 7 {
			return changed(p, 0)
		}
		return changed(p, k)
	}})
	m := mirror(t, Options{Upstream: cand, Workers: 3})
	var exs []Exchange
	for k := 1; k <= 10; k++ {
		exs = append(exs, capture(t, stable, ChatPath, chatBody(fmt.Sprintf("p%d", k), false), nil))
	}
	exs = append(exs, exs[6], exs[6]) // p7 twice more: listed once, counted 3 times
	offerAll(t, m, exs)
	r := settle(m, 12)
	if r.Comparable != 12 || r.Agreed != 3 || r.AgreementRate != 0.25 {
		t.Errorf("comparable %d agreed %d rate %v, want 12 3 0.25", r.Comparable, r.Agreed, r.AgreementRate)
	}
	var got []string
	for _, d := range r.Worst {
		got = append(got, fmt.Sprintf("%s %.2f", d.Prompt, d.Similarity))
	}
	want := []string{"p7 0.30", "p6 0.40", "p5 0.50", "p4 0.60", "p3 0.70"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("worst %v, want %v", got, want)
	}
	if len(r.Worst) > 0 {
		d := r.Worst[0]
		if d.Path != ChatPath || d.Stable != changed("p7", 0) || d.Candidate != changed("p7", 7) || d.Count != 3 {
			t.Errorf("worst[0] = %+v, want the path and both answers", d)
		}
	}
}

func TestStreamedAnswersComparedWithText(t *testing.T) {
	for _, c := range []struct {
		name             string
		stable, cand     llm
		path             string
		body             func(string, bool) []byte
		wantAgree, total uint64
	}{
		{"chat: stable JSON, candidate streams", llm{answer: same}, llm{answer: same, stream: true}, ChatPath, chatBody, 4, 4},
		{"chat: stable streams, candidate JSON", llm{answer: same, stream: true}, llm{answer: same}, ChatPath, chatBody, 4, 4},
		{"completions: stable JSON, candidate streams", llm{answer: same}, llm{answer: same, stream: true}, CompletionPath, completionBody, 4, 4},
		{"completions: streamed, one word differs", llm{answer: same, stream: true},
			llm{answer: func(p string) string { return strings.Replace(same(p), "forty-two", "seven", 1) }, stream: true},
			CompletionPath, completionBody, 0, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			stable := server(t, c.stable)
			m := mirror(t, Options{Upstream: server(t, c.cand)})
			var exs []Exchange
			for i := range int(c.total) {
				exs = append(exs, capture(t, stable, c.path, c.body(fmt.Sprint("q", i), false), nil))
			}
			offerAll(t, m, exs)
			r := settle(m, c.total)
			if r.Comparable != c.total || r.Agreed != c.wantAgree {
				t.Errorf("comparable %d agreed %d, want %d %d (worst %+v)", r.Comparable, r.Agreed, c.total, c.wantAgree, r.Worst)
			}
			// "The answer to qN is forty-two." against "... is seven.":
			// 5 of 6 words in common.
			if c.wantAgree == 0 && (len(r.Worst) == 0 || fmt.Sprintf("%.3f", r.Worst[0].Similarity) != "0.833") {
				t.Errorf("worst %+v, want similarity 0.833", r.Worst)
			}
		})
	}
}

func TestCandidateErrorsCounted(t *testing.T) {
	stable := server(t, llm{answer: same})
	cand := server(t, llm{answer: same, status: func(p string) int {
		if strings.HasSuffix(p, "odd") {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}})
	m := mirror(t, Options{Upstream: cand})
	var exs []Exchange
	for i := range 10 {
		exs = append(exs, capture(t, stable, ChatPath, chatBody(fmt.Sprint(i, []string{"even", "odd"}[i%2]), false), nil))
	}
	offerAll(t, m, exs)
	r := settle(m, 10)
	if r.Compared != 10 || r.CandidateErrors != 5 || r.Comparable != 10 || r.Agreed != 5 {
		t.Errorf("compared %d candidate errors %d comparable %d agreed %d, want 10 5 10 5", r.Compared, r.CandidateErrors, r.Comparable, r.Agreed)
	}
	if len(r.Worst) != 5 || r.Worst[0].Similarity != 0 || !strings.HasPrefix(r.Worst[0].Candidate, "HTTP 500: ") || r.Worst[0].Stable != same(r.Worst[0].Prompt) {
		t.Errorf("worst %+v, want the 5 failures, the candidate's as HTTP 500 and stable's text", r.Worst)
	}
}

func TestCandidateDownCountsErrors(t *testing.T) {
	stable := server(t, llm{answer: same})
	gone := httptest.NewServer(llm{answer: same})
	gone.Close()
	m := mirror(t, Options{Upstream: gone.URL})
	ex := capture(t, stable, ChatPath, chatBody("q", false), nil)
	failed := ex
	failed.Status = http.StatusBadGateway // stable failed too: not the candidate's fault
	offerAll(t, m, []Exchange{ex, ex, failed})
	r := settle(m, 3)
	if r.CandidateErrors != 2 || r.Compared != 0 || r.Comparable != 0 || r.Candidate.N != 0 {
		t.Errorf("candidate errors %d compared %d comparable %d latency n %d, want 2 0 0 0", r.CandidateErrors, r.Compared, r.Comparable, r.Candidate.N)
	}
}

func TestNonGenerationsSkipped(t *testing.T) {
	m := mirror(t, Options{Upstream: "http://candidate:8000"})
	for _, p := range []string{"/v1/models", "/health", "/v1/chat/completions/x", "/v1/embeddings"} {
		if m.Offer(Exchange{Method: http.MethodGet, Path: p}) {
			t.Errorf("Offer(%s) queued it", p)
		}
	}
	m.Skip()
	r := m.Report()
	if r.Offered != 5 || r.Skipped != 5 || r.Dropped != 0 {
		t.Errorf("offered %d skipped %d dropped %d, want 5 5 0", r.Offered, r.Skipped, r.Dropped)
	}
}

func TestCheckCountsAssertionFailures(t *testing.T) {
	stable := server(t, llm{answer: same})
	// The candidate answers "worse" to a prompt with "regressed": the
	// check fails it there, and fails both releases on "bad".
	cand := server(t, llm{answer: func(p string) string {
		if strings.Contains(p, "regressed") {
			return "worse"
		}
		return same(p)
	}, stream: true})
	m := mirror(t, Options{Upstream: cand, Check: func(prompt, answer string) (bool, error) {
		if strings.Contains(prompt, "unchecked") {
			return false, nil
		}
		if answer != same(prompt) && answer != "worse" {
			return true, fmt.Errorf("check got prompt %q and answer %q", prompt, answer)
		}
		if strings.Contains(prompt, "bad") || answer == "worse" {
			return true, fmt.Errorf("rejected %q", answer)
		}
		return true, nil
	}})
	offerAll(t, m, []Exchange{
		capture(t, stable, ChatPath, chatBody("good", false), nil),
		capture(t, stable, ChatPath, chatBody("bad", false), nil),
		capture(t, stable, CompletionPath, completionBody("bad too", false), nil),
		capture(t, stable, ChatPath, chatBody("regressed", false), nil),
		capture(t, stable, ChatPath, chatBody("unchecked", false), nil),
	})
	r := settle(m, 5)
	a := r.Assertions
	if a.Checked != 4 || a.CandidateFailed != 3 || a.StableFailed != 2 || r.Agreed != 4 {
		t.Errorf("assertions %+v, agreed %d; want 4 checked, candidate failed 3, stable failed 2, 4 agreed", a, r.Agreed)
	}
	if len(a.Examples) != 3 || !strings.Contains(strings.Join(a.Examples, "\n"), `rejected "worse"`) {
		t.Errorf("examples %q, want the candidate's 3 failures", a.Examples)
	}
}

func TestSecretsNeverShown(t *testing.T) {
	const key = "Bearer sk-live-0123456789abcdef"
	var gotKey, gotHop atomic.Value
	stable := server(t, llm{answer: same})
	cand := llm{answer: func(p string) string { return "different " + p }}
	candURL := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotKey.Store(r.Header.Get("Authorization"))
		gotHop.Store(r.Header.Get("X-Hop") + r.Header.Get("Keep-Alive") + r.Header.Get("Proxy-Authorization"))
		cand.ServeHTTP(w, r)
	}))
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := mirror(t, Options{Upstream: strings.Replace(candURL, "://", "://user:pw-secret@", 1), Logger: log})
	h := http.Header{"Authorization": {key}, "Content-Type": {"application/json"}, "Connection": {"X-Hop"},
		"X-Hop": {"hop"}, "Keep-Alive": {"timeout=5"}, "Proxy-Authorization": {"Basic cHJveHk="}}
	offerAll(t, m, []Exchange{capture(t, stable, ChatPath, chatBody("q", false), h)})
	r := settle(m, 1)
	if gotKey.Load() != key {
		t.Errorf("the candidate got Authorization %q, want the client's", gotKey.Load())
	}
	if gotHop.Load() != "" {
		t.Errorf("the candidate got hop-by-hop headers: %q", gotHop.Load())
	}
	if len(r.Worst) != 1 || !strings.Contains(logs.String(), "answers differ") {
		t.Fatalf("want one disagreement, reported and logged: %+v\n%s", r, logs.String())
	}
	js, _ := json.Marshal(r)
	for _, secret := range []string{"sk-live", "pw-secret", "cHJveHk="} {
		if strings.Contains(string(js), secret) || strings.Contains(logs.String(), secret) {
			t.Errorf("%q shows in the report or logs:\n%s\n%s", secret, js, logs.String())
		}
	}
}

func TestUnreadableAndTruncatedAnswers(t *testing.T) {
	stable := server(t, llm{answer: same})
	cand := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("<html>oops</html>"))
	}))
	m := mirror(t, Options{Upstream: cand})
	ex := capture(t, stable, ChatPath, chatBody("q", false), nil)
	cut := ex
	cut.Response, cut.Truncated = ex.Response[:10], true // stable's answer not kept whole
	offerAll(t, m, []Exchange{ex, cut})
	r := settle(m, 2)
	if r.Compared != 2 || r.Comparable != 1 || r.Agreed != 0 || len(r.Worst) != 1 {
		t.Fatalf("compared %d comparable %d agreed %d worst %+v: want 2 1 0 and one listed", r.Compared, r.Comparable, r.Agreed, r.Worst)
	}
	if w := r.Worst[0]; w.Stable != same("q") || !strings.HasPrefix(w.Candidate, "unreadable answer: ") || w.Prompt != "q" {
		t.Errorf("worst %+v, want stable's text and the candidate's as unreadable", w)
	}
}
