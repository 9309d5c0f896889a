// Package measure records proxied requests as the canary analysis reads
// them: one Sample per request (status, error, time to first byte,
// inter-token latency, total) in a fixed-size Ring, read back from a
// cursor (GET /samples?since=N). The Docker gateway measures every
// request it routes; on Kubernetes each pod's `modelship serve` measures
// the requests it proxies to its engine. Both answer the same JSON.
package measure

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelship/modelship/internal/analysis"
)

// RingSize is how many measured requests a Ring keeps; older ones are
// overwritten (Since counts them as dropped).
const RingSize = 1 << 16

// MaxSamplesPerAnswer bounds one Since answer; ask again from its Next
// for the rest.
const MaxSamplesPerAnswer = 8192

// Sample is one proxied request as measured.
type Sample struct {
	Seq uint64 `json:"seq"` // 1, 2, 3... over the ring's life
	// Upstream is what answered: the gateway's upstream URL; in a
	// serving pod, the release ID it serves.
	Upstream string    `json:"upstream"`
	At       time.Time `json:"at"` // when the request was received
	// Status is what the client got, the proxy's own 502/503 included;
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
	// Probe: not a generation (anything but a POST to .../completions:
	// GET /version, /v1/models...); the analysis leaves it out of latency.
	Probe bool `json:"probe,omitempty"`
}

// Samples is the answer of GET /samples?since=N.
type Samples struct {
	// Boot names the ring that answered: random per Ring, so a reader
	// whose cursor belongs to another ring (the gateway or a serving
	// pod's container restarted and counts from seq 1 again) can tell,
	// and read the new one from 0. "" from a binary older than it.
	Boot string `json:"boot"`
	// Next is the last seq returned (N when none): ask from it next.
	Next uint64 `json:"next"`
	// Dropped counts records after N that were overwritten before this
	// call (the ring holds RingSize).
	Dropped uint64   `json:"dropped"`
	Samples []Sample `json:"samples"`
}

// Ring holds the last RingSize samples; one short lock per request.
type Ring struct {
	boot string // Samples.Boot: set by NewRing, never changed
	mu   sync.Mutex
	seq  uint64 // the last seq written
	recs []Sample
}

// NewRing returns an empty ring with a boot identity of its own.
func NewRing() *Ring {
	return &Ring{boot: rand.Text(), recs: make([]Sample, RingSize)}
}

// Add records s as the next seq.
func (r *Ring) Add(s Sample) {
	r.mu.Lock()
	r.seq++
	s.Seq = r.seq
	r.recs[r.seq%RingSize] = s
	r.mu.Unlock()
}

// Since returns the samples after seq n, oldest first, at most max.
func (r *Ring) Since(n uint64, max int) Samples {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := Samples{Boot: r.boot, Next: n, Samples: []Sample{}}
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

func (r *Ring) oldestLocked() uint64 {
	if r.seq < RingSize {
		return 1
	}
	return r.seq - RingSize + 1
}

// ParseSince reads the since parameter of GET /samples ("" is 0).
func ParseSince(v string) (uint64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parameter since: %q is not a sequence number (0, 1, 2...)", v)
	}
	return n, nil
}

// Writer times what the client is sent. It keeps http.Flusher and
// http.NewResponseController working (Unwrap), so streamed tokens still
// leave one by one and full duplex can still be enabled.
type Writer struct {
	http.ResponseWriter
	// Start is when the request arrived.
	Start time.Time
	// OnWrite, when set, sees every body write (a mirrored exchange's
	// shadow.Capture keeps the response with it, in the gateway and in
	// serve).
	OnWrite     func(p []byte)
	status      int
	first, last time.Time
	writes      int
	gaps        time.Duration
}

// NewWriter measures what is written to w from now.
func NewWriter(w http.ResponseWriter) *Writer {
	return &Writer{ResponseWriter: w, Start: time.Now()}
}

// WriteHeader implements http.ResponseWriter.
func (w *Writer) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (w *Writer) Write(p []byte) (int, error) {
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
		if w.OnWrite != nil {
			w.OnWrite(p)
		}
	}
	return w.ResponseWriter.Write(p)
}

// Flush implements http.Flusher.
func (w *Writer) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

// Unwrap is for http.NewResponseController.
func (w *Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Status is the status the client was sent (0: none yet).
func (w *Writer) Status() int { return w.status }

// TTFB is from Start to the first body byte, or to now when no body was
// written.
func (w *Writer) TTFB() time.Duration {
	if w.writes > 0 {
		return w.first.Sub(w.Start)
	}
	return time.Since(w.Start)
}

// Sample is what w measured, the request r having been answered by
// upstream ("" when none was).
func (w *Writer) Sample(r *http.Request, upstream string) Sample {
	total := time.Since(w.Start)
	s := Sample{Upstream: upstream, At: w.Start, Status: w.status, TotalMs: ms(total), Probe: !IsGeneration(r)}
	s.Error = w.status >= 500 || (w.status == 0 && r.Context().Err() == nil)
	s.TTFBMs = s.TotalMs
	if w.writes > 0 {
		s.TTFBMs = ms(w.first.Sub(w.Start))
	}
	s.Stream = strings.HasPrefix(w.Header().Get("Content-Type"), "text/event-stream")
	if s.Stream && w.writes > 1 {
		s.ITLMs = ms(w.gaps / time.Duration(w.writes-1))
	}
	return s
}

// IsGeneration reports whether r asks for a generation: a POST to
// /v1/completions or /v1/chat/completions (or any path ending so).
func IsGeneration(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/completions")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Analysis is s as package analysis reads it.
func (s Sample) Analysis() analysis.Sample {
	d := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	return analysis.Sample{At: s.At, Status: s.Status, Err: s.Error, TTFT: d(s.TTFBMs), ITL: d(s.ITLMs), Total: d(s.TotalMs), Probe: s.Probe}
}
