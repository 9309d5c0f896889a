package shadow

import (
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/modelship/modelship/internal/measure"
)

// MaxCapture bounds the request body a captured exchange carries (a
// larger request is skipped, not mirrored) and the response it keeps
// (beyond it, Exchange.Truncated).
const MaxCapture = 1 << 20

// Sink takes the exchanges a Capture completes: a Mirror, or a proxy's
// guard around one. Offer must not block.
type Sink interface {
	Offer(Exchange) bool
	Skip()
}

// Capture is one sampled exchange on its way through a proxy: the request
// as it arrived, its body as the proxy reads it, and the response as the
// client is sent it. The Docker gateway and `modelship serve` both capture
// what they mirror with it, so a shadow compares the same exchanges on
// either target.
type Capture struct {
	sink      Sink
	header    http.Header
	body      *teeBody // nil: no request body
	resp      []byte
	truncated bool
}

// StartCapture begins capturing r, which the caller sampled for sink. A
// request whose body is known to be over MaxCapture is skipped at once
// (sink.Skip) and the answer is nil; otherwise r's header is copied as it
// is now (before a proxy removes any of it: the candidate gets the API
// key the client sent) and r.Body is replaced by one that keeps a copy as
// the proxy reads it. Pass Response as the measure.Writer's OnWrite and
// call Finish once the client's answer is complete.
func StartCapture(r *http.Request, sink Sink) *Capture {
	if r.ContentLength > MaxCapture {
		sink.Skip()
		return nil
	}
	c := &Capture{sink: sink, header: r.Header.Clone()}
	if r.Body != nil && r.Body != http.NoBody {
		c.body = &teeBody{rc: r.Body, want: r.ContentLength}
		r.Body = c.body
	}
	return c
}

// Response keeps p, a piece of the response body the client is sent, up
// to MaxCapture in all.
func (c *Capture) Response(p []byte) {
	if c.truncated {
		return
	}
	if n := MaxCapture - len(c.resp); len(p) > n {
		p, c.truncated = p[:n], true
	}
	c.resp = append(c.resp, p...)
}

// Finish offers the exchange to the sink once the client's answer, timed
// by w, is complete; it skips it when the request body was too large or
// not read whole.
func (c *Capture) Finish(r *http.Request, w *measure.Writer) {
	var body []byte
	if c.body != nil {
		var ok bool
		if body, ok = c.body.whole(); !ok {
			c.sink.Skip()
			return
		}
	}
	c.sink.Offer(Exchange{
		Method: r.Method, Path: r.URL.RequestURI(), Header: c.header, Body: body,
		Status: w.Status(), Response: c.resp, Truncated: c.truncated, Total: time.Since(w.Start), TTFB: w.TTFB(),
	})
}

// teeBody passes a request body through, keeping a copy up to
// MaxCapture. The transport may still be reading it when the answer is
// complete, hence the lock.
type teeBody struct {
	rc   io.ReadCloser
	mu   sync.Mutex
	want int64 // the Content-Length, -1 when unknown
	buf  []byte
	over bool
	eof  bool
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.over {
		if len(b.buf)+n > MaxCapture {
			b.over, b.buf = true, nil
		} else {
			b.buf = append(b.buf, p[:n]...)
		}
	}
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *teeBody) Close() error { return b.rc.Close() }

// whole returns the body read, ok false when it is not the whole body.
func (b *teeBody) whole() (body []byte, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf, !b.over && (b.eof || (b.want >= 0 && int64(len(b.buf)) == b.want))
}
