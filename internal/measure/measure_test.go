package measure

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// After the ring wrapped, a cursor older than what it holds gets what is
// left, counted as dropped, each sample at its own seq.
func TestSamplesAfterTheRingWraps(t *testing.T) {
	r := NewRing()
	for i := range RingSize + 10 {
		r.Add(Sample{Status: 200 + i%2})
	}
	got := r.Since(0, 5)
	if got.Dropped != 10 || len(got.Samples) != 5 || got.Samples[0].Seq != 11 || got.Next != 15 {
		t.Fatalf("since 0 after a wrap: dropped %d next %d first %+v", got.Dropped, got.Next, got.Samples[0])
	}
	got = r.Since(4, 3)
	if got.Dropped != 6 || got.Samples[0].Seq != 11 {
		t.Fatalf("since 4: dropped %d, first %+v", got.Dropped, got.Samples[0])
	}
	got = r.Since(RingSize, MaxSamplesPerAnswer)
	if got.Dropped != 0 || len(got.Samples) != 10 || got.Samples[9].Seq != RingSize+10 || got.Next != RingSize+10 {
		t.Fatalf("since %d: dropped %d, %d samples, next %d", RingSize, got.Dropped, len(got.Samples), got.Next)
	}
	for i, s := range got.Samples {
		if want := 200 + int(s.Seq-1)%2; s.Status != want {
			t.Fatalf("sample %d (seq %d) holds status %d, want %d", i, s.Seq, s.Status, want)
		}
	}
}

// A streamed answer's sample holds its first-byte time and the mean gap
// between its writes; a 500 is an error, a client that went away is not.
func TestWriterSample(t *testing.T) {
	rec := httptest.NewRecorder()
	rec.Header().Set("Content-Type", "text/event-stream")
	w := NewWriter(rec)
	var seen int
	w.OnWrite = func(p []byte) { seen += len(p) }
	w.Write([]byte("data: a\n\n"))
	time.Sleep(5 * time.Millisecond)
	w.Write([]byte("data: b\n\n"))
	time.Sleep(5 * time.Millisecond)
	w.Write([]byte("data: [DONE]\n\n"))
	s := w.Sample(httptest.NewRequest(http.MethodPost, "/v1/completions", nil), "r1")
	if s.Status != 200 || s.Error || !s.Stream || s.ITLMs < 5 || s.TTFBMs > s.TotalMs || s.Upstream != "r1" || seen != 32 {
		t.Fatalf("streamed sample %+v (OnWrite saw %d bytes)", s, seen)
	}
	w = NewWriter(httptest.NewRecorder())
	w.WriteHeader(http.StatusInternalServerError)
	if s := w.Sample(httptest.NewRequest(http.MethodGet, "/", nil), ""); !s.Error || s.Status != 500 || s.Stream {
		t.Fatalf("500 sample %+v", s)
	}
}

func TestParseSince(t *testing.T) {
	if n, err := ParseSince(""); n != 0 || err != nil {
		t.Errorf("empty: %d %v", n, err)
	}
	if n, err := ParseSince("42"); n != 42 || err != nil {
		t.Errorf("42: %d %v", n, err)
	}
	if _, err := ParseSince("-1"); err == nil || !strings.Contains(err.Error(), `parameter since: "-1" is not a sequence number`) {
		t.Errorf("-1: %v", err)
	}
}

// Only a POST to .../completions is a generation; everything else is a
// probe the analysis leaves out of latency.
func TestProbeIsWhatIsNotAGeneration(t *testing.T) {
	for _, c := range []struct {
		method, path string
		probe        bool
	}{
		{"POST", "/v1/completions", false}, {"POST", "/v1/chat/completions", false},
		{"GET", "/version", true}, {"GET", "/v1/models", true}, {"GET", "/v1/completions", true}, {"POST", "/v1/embeddings", true},
	} {
		r := httptest.NewRequest(c.method, c.path, nil)
		w := NewWriter(httptest.NewRecorder())
		w.WriteHeader(200)
		if s := w.Sample(r, "u"); s.Probe != c.probe || s.Analysis().Probe != c.probe {
			t.Errorf("%s %s: probe %v, want %v", c.method, c.path, s.Probe, c.probe)
		}
	}
}

// Each ring names itself with a boot of its own, the same in every
// answer, so a reader tells a restarted ring (seq from 1 again) from the
// one its cursor belongs to.
func TestRingBoot(t *testing.T) {
	a, b := NewRing(), NewRing()
	first := a.Since(0, 1).Boot
	a.Add(Sample{Status: 200})
	if first == "" || a.Since(0, 1).Boot != first || a.Since(5, 1).Boot != first {
		t.Fatalf("one ring's boot changed or is empty: %q, %q", first, a.Since(0, 1).Boot)
	}
	if b.Since(0, 1).Boot == first {
		t.Fatalf("two rings share the boot %q", first)
	}
}
