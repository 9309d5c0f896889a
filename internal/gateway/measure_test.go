package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/testenv"
)

// sseAndFail is a release streaming three SSE events 5ms apart on
// /stream, answering 500 on /fail and "ok" elsewhere.
func sseAndFail(t *testing.T) string {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stream":
			w.Header().Set("Content-Type", "text/event-stream")
			for i := range 3 {
				if i > 0 {
					time.Sleep(5 * time.Millisecond)
				}
				fmt.Fprintf(w, "data: token-%d\n\n", i)
				w.(http.Flusher).Flush()
			}
		case "/fail":
			http.Error(w, "engine died", http.StatusInternalServerError)
		default:
			io.WriteString(w, "ok")
		}
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

func TestSamplesMeasureEveryRequest(t *testing.T) {
	up := sseAndFail(t)
	gw := startGateway(t, Options{Upstream: up})
	// A sample is recorded once the handler returns, which may be just
	// after the client has read the whole answer: wait for each, so that
	// their order is the requests'.
	for i, p := range []string{"/stream", "/fail", "/plain"} {
		get(t, gw.url+p)
		testenv.Eventually(t, 10*time.Second, p+" measured", func() bool { return gw.g.Samples(0).Next == uint64(i+1) })
	}
	get(t, gw.url+HealthPath)
	got, err := gw.client.Samples(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.Next != 3 || got.Dropped != 0 || len(got.Samples) != 3 { // the health check is not measured
		t.Fatalf("samples %+v", got)
	}
	st, fail, plain := got.Samples[0], got.Samples[1], got.Samples[2]
	if st.Seq != 1 || st.Upstream != up || st.Status != 200 || st.Error || !st.Stream || st.TTFBMs <= 0 || st.ITLMs <= 0 || st.TotalMs < st.TTFBMs || st.At.IsZero() {
		t.Errorf("the streamed answer: %+v", st)
	}
	// The release slept 5ms twice while answering.
	if st.TotalMs < 10 {
		t.Errorf("the streamed answer's total: %vms", st.TotalMs)
	}
	if fail.Seq != 2 || fail.Status != 500 || !fail.Error || fail.Stream || fail.ITLMs != 0 {
		t.Errorf("the failed answer: %+v", fail)
	}
	if plain.Seq != 3 || plain.Status != 200 || plain.Error {
		t.Errorf("the plain answer: %+v", plain)
	}
	page, _ := gw.client.Samples(context.Background(), 2)
	if page.Next != 3 || len(page.Samples) != 1 || page.Samples[0].Seq != 3 {
		t.Errorf("since 2: %+v", page)
	}
	page, _ = gw.client.Samples(context.Background(), 3)
	if page.Next != 3 || len(page.Samples) != 0 || page.Samples == nil {
		t.Errorf("since 3 (nothing new): %+v", page)
	}
}

func TestSamplesOfTheGatewaysOwnAnswers(t *testing.T) {
	gw := startGateway(t, Options{})
	get(t, gw.url+"/v1/models")
	testenv.Eventually(t, 10*time.Second, "the 503 measured", func() bool { return gw.g.Samples(0).Next == 1 })
	got := gw.g.Samples(0)
	if len(got.Samples) != 1 || got.Samples[0].Status != 503 || !got.Samples[0].Error || got.Samples[0].Upstream != "" {
		t.Fatalf("no active release: %+v", got)
	}
}

func TestSamplesBadSince(t *testing.T) {
	gw := startGateway(t, Options{})
	req, _ := http.NewRequest(http.MethodGet, "http://gateway/samples?since=-1", nil)
	w := httptest.NewRecorder()
	gw.g.AdminHandler().ServeHTTP(w, req)
	if w.Code != 400 || !strings.Contains(w.Body.String(), `parameter since: \"-1\" is not a sequence number`) {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}

// A client that gives up before any answer is measured with status 0 and
// is not an error: the release did nothing wrong.
func TestSamplesClientWentAwayIsNotAnError(t *testing.T) {
	arrived := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
	}))
	defer slow.Close()
	gw := startGateway(t, Options{Upstream: slow.URL})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, gw.url+"/v1/models", nil)
	go func() { <-arrived; cancel() }()
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("the request was answered")
	}
	testenv.Eventually(t, 10*time.Second, "the abandoned request measured", func() bool { return len(gw.g.Samples(0).Samples) == 1 })
	if s := gw.g.Samples(0).Samples[0]; s.Status != 0 || s.Error || s.Upstream != slow.URL {
		t.Fatalf("sample %+v", s)
	}
}
