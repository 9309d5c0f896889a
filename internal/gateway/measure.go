package gateway

import (
	"net/http"
	"strings"
	"sync"
	"time"
)

// RingSize is how many measured requests the gateway keeps, over all
// upstreams; older ones are overwritten (GET /samples counts them as
// dropped).
const RingSize = 1 << 16

// MaxSamplesPerAnswer bounds one GET /samples answer; ask again from its
// next for the rest.
const MaxSamplesPerAnswer = 8192

// Sample is one proxied request as the gateway measured it.
type Sample struct {
	Seq      uint64    `json:"seq"` // 1, 2, 3... over the gateway's life
	Upstream string    `json:"upstream"`
	At       time.Time `json:"at"` // when the request was received
	// Status is what the client got, the gateway's own 502/503 included;
	// 0 when it got no answer.
	Status int `json:"status"`
	// Error: a status of 500 or more, or no answer; a client that went
	// away is not an error.
	Error bool `json:"error"`
	// TTFBMs is from the request's arrival to the first response body
	// byte written to the client (the total for an empty body).
	TTFBMs float64 `json:"ttfb_ms"`
	// ITLMs is the mean gap between successive body writes of a
	// text/event-stream answer (the inter-token latency); 0 otherwise.
	ITLMs   float64 `json:"itl_ms"`
	TotalMs float64 `json:"total_ms"`
	Stream  bool    `json:"stream"`
}

// Samples is the answer of GET /samples?since=N.
type Samples struct {
	// Next is the last seq returned (N when none): ask from it next.
	Next uint64 `json:"next"`
	// Dropped counts records after N that were overwritten before this
	// call (the ring holds RingSize).
	Dropped uint64   `json:"dropped"`
	Samples []Sample `json:"samples"`
}

// ring holds the last RingSize samples; one short lock per request.
type ring struct {
	mu   sync.Mutex
	seq  uint64 // the last seq written
	recs []Sample
}

func newRing() *ring { return &ring{recs: make([]Sample, RingSize)} }

func (r *ring) add(s Sample) {
	r.mu.Lock()
	r.seq++
	s.Seq = r.seq
	r.recs[r.seq%RingSize] = s
	r.mu.Unlock()
}

// since returns the samples after seq n, oldest first, at most max.
func (r *ring) since(n uint64, max int) Samples {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := Samples{Next: n, Samples: []Sample{}}
	if n >= r.seq {
		return out
	}
	first := n + 1
	if oldest := r.oldestLocked(); first < oldest {
		out.Dropped = oldest - first
		first = oldest
	}
	last := min(r.seq, first+uint64(max)-1)
	for s := first; s <= last; s++ {
		out.Samples = append(out.Samples, r.recs[s%RingSize])
	}
	out.Next = last
	return out
}

func (r *ring) oldestLocked() uint64 {
	if r.seq < RingSize {
		return 1
	}
	return r.seq - RingSize + 1
}

// Samples returns the requests measured after seq since (see Samples).
func (g *Gateway) Samples(since uint64) Samples {
	return g.ring.since(since, MaxSamplesPerAnswer)
}

// measuredWriter times what the client is sent. It keeps http.Flusher and
// http.NewResponseController working (Unwrap), so streamed tokens still
// leave one by one and full duplex can still be enabled.
type measuredWriter struct {
	http.ResponseWriter
	start       time.Time
	status      int
	first, last time.Time
	writes      int
	gaps        time.Duration
	capture     *capture // the mirrored exchange's response, when sampled
}

func (w *measuredWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *measuredWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if len(p) > 0 {
		now := time.Now()
		if w.writes == 0 {
			w.first = now
		} else {
			w.gaps += now.Sub(w.last)
		}
		w.last = now
		w.writes++
		if w.capture != nil {
			w.capture.response(p)
		}
	}
	return w.ResponseWriter.Write(p)
}

// Flush implements http.Flusher.
func (w *measuredWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

// Unwrap is for http.NewResponseController.
func (w *measuredWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// sample is what w measured, the request r having been answered by
// upstream (the key; "" when none was).
func (w *measuredWriter) sample(r *http.Request, upstream string) Sample {
	total := time.Since(w.start)
	s := Sample{Upstream: upstream, At: w.start, Status: w.status, TotalMs: ms(total)}
	s.Error = w.status >= 500 || (w.status == 0 && r.Context().Err() == nil)
	s.TTFBMs = s.TotalMs
	if w.writes > 0 {
		s.TTFBMs = ms(w.first.Sub(w.start))
	}
	s.Stream = strings.HasPrefix(w.Header().Get("Content-Type"), "text/event-stream")
	if s.Stream && w.writes > 1 {
		s.ITLMs = ms(w.gaps / time.Duration(w.writes-1))
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
