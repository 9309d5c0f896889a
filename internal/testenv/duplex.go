package testenv

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// DuplexUpstream is an OpenAI-like upstream that starts a stream (its first
// chunk) before reading the request body, then reads the body and sends it
// back as the second chunk: how an engine may answer while a client is
// still sending. CheckDuplex drives it through a proxy.
func DuplexUpstream(t testing.TB) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
			t.Errorf("upstream: %v", err)
		}
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"chunk\":1}\n\n")
		w.(http.Flusher).Flush()
		body, err := io.ReadAll(r.Body)
		if err != nil {
			io.WriteString(w, "data: body error "+err.Error()+"\n\n")
			return
		}
		io.WriteString(w, "data: "+string(body)+"\n\ndata: [DONE]\n\n")
	}))
	t.Cleanup(s.Close)
	return s
}

// CheckDuplex posts to url (a proxy in front of a DuplexUpstream) a request
// body sent in two parts, the second only once the answer's first chunk has
// come back, and checks that the whole body reached the upstream and the
// whole stream came back. A proxy that waits for the body before letting
// the answer through, or closes the body when the answer starts (Go's
// server does both unless the handler enables full duplex), fails it.
func CheckDuplex(t testing.TB, url string) {
	t.Helper()
	pr, pw := io.Pipe()
	sent := make(chan struct{})
	go func() {
		io.WriteString(pw, `{"stream":true,`)
		<-sent
		io.WriteString(pw, `"messages":[]}`)
		pw.Close()
	}()
	resp := make(chan *http.Response, 1)
	go func() {
		r, err := http.Post(url, "application/json", pr)
		if err != nil {
			t.Errorf("POST %s: %v", url, err)
			close(resp)
			return
		}
		resp <- r
	}()
	var r *http.Response
	select {
	case r = <-resp:
	case <-time.After(10 * time.Second):
		pw.CloseWithError(io.ErrUnexpectedEOF) // let the servers finish and close
		t.Fatal("the answer did not start while the request body was still being sent")
	}
	if r == nil {
		return
	}
	defer r.Body.Close()
	rd := bufio.NewReader(r.Body)
	if line, err := rd.ReadString('\n'); err != nil || line != "data: {\"chunk\":1}\n" {
		t.Fatalf("first line = %q, %v", line, err)
	}
	close(sent)
	rest, err := io.ReadAll(rd)
	if err != nil {
		t.Fatalf("reading the rest of the stream: %v", err)
	}
	if want := "\ndata: {\"stream\":true,\"messages\":[]}\n\ndata: [DONE]\n\n"; string(rest) != want {
		t.Fatalf("rest of the stream = %q, want %q (the upstream got the whole body)", rest, want)
	}
}
