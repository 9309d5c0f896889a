package shadow

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"time"
)

// MaxAnswer bounds how much of a candidate's answer is kept to compare
// (the rest is read and dropped, so Total still times the whole answer).
const MaxAnswer = 1 << 20

// answer is the candidate's answer to one mirrored request.
type answer struct {
	err       error // no answer, or it broke off
	status    int
	body      []byte // at most MaxAnswer bytes
	truncated bool   // the answer was longer than body
	// ttfb is the time to the answer's first body byte (the first token
	// of a streamed generation), else to its headers; total to its end.
	ttfb, total time.Duration
}

// send mirrors ex to the candidate and reads its answer, within the
// mirror's timeout.
func (m *Mirror) send(ctx context.Context, ex Exchange) answer {
	ctx, cancel := context.WithTimeout(ctx, m.opt.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, methodOf(ex.Method), m.upstream+ex.Path, bytes.NewReader(ex.Body))
	if err != nil {
		return answer{err: err}
	}
	req.Header = forwardHeader(ex.Header)
	start := time.Now()
	resp, err := m.rt.RoundTrip(req)
	if err != nil {
		return answer{err: err, total: time.Since(start)}
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, ttfb: time.Since(start)}
	fb := &firstByte{r: resp.Body, start: start}
	a.body, err = io.ReadAll(io.LimitReader(fb, MaxAnswer+1))
	if err == nil && len(a.body) > MaxAnswer {
		a.body, a.truncated = a.body[:MaxAnswer], true
		_, err = io.Copy(io.Discard, fb)
	}
	a.total, a.err = time.Since(start), err
	if fb.seen {
		a.ttfb = fb.at
	}
	return a
}

// methodOf is the request's method, POST when the gateway left it empty.
func methodOf(m string) string {
	if m == "" {
		return http.MethodPost
	}
	return m
}

// firstByte notes when the first byte came through r.
type firstByte struct {
	r     io.Reader
	start time.Time
	at    time.Duration
	seen  bool
}

func (f *firstByte) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 && !f.seen {
		f.at, f.seen = time.Since(f.start), true
	}
	return n, err
}

// hopByHop are the headers that belong to one connection (RFC 9110
// 7.6.1), not to the request; Host and Content-Length are set for the
// candidate's request, and Accept-Encoding is left to the transport so
// that the answer arrives readable.
var hopByHop = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
	"Host", "Content-Length", "Accept-Encoding",
}

// forwardHeader is h as the candidate gets it: without the hop-by-hop
// headers (and those Connection names), with everything else, the API
// key in Authorization included.
func forwardHeader(h http.Header) http.Header {
	out := h.Clone()
	if out == nil {
		return http.Header{}
	}
	for _, v := range h.Values("Connection") {
		for name := range strings.SplitSeq(v, ",") {
			out.Del(strings.TrimSpace(name))
		}
	}
	for _, name := range hopByHop {
		out.Del(name)
	}
	return out
}
