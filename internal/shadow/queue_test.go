package shadow

import (
	"fmt"
	"net/http"
	"testing"
)

// blocked is a candidate that holds every request until release is closed
// or the request is cancelled, saying on arrived when one comes in.
func blocked(t *testing.T) (url string, arrived chan struct{}, release chan struct{}) {
	arrived, release = make(chan struct{}, 100), make(chan struct{})
	url = server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
			llm{answer: same}.ServeHTTP(w, r)
		case <-r.Context().Done():
		}
	}))
	return url, arrived, release
}

func TestQueueBoundedOfferNeverBlocks(t *testing.T) {
	stable := server(t, llm{answer: same})
	cand, arrived, release := blocked(t)
	defer close(release) // before the servers close: they wait for handlers
	m := mirror(t, Options{Upstream: cand, Queue: 4, Workers: 1})
	ex := capture(t, stable, ChatPath, chatBody("q", false), nil)
	offerAll(t, m, []Exchange{ex})
	<-arrived // the one worker is now held by the candidate
	queued := 0
	for range 99 {
		if m.Offer(ex) {
			queued++
		}
	}
	// All 99 offers returned while the candidate held the only worker:
	// the queue took 4, the rest were dropped.
	r := m.Report()
	if queued != 4 || r.Offered != 100 || r.Dropped != 95 {
		t.Errorf("queued %d, offered %d, dropped %d: want 4, 100, 95", queued, r.Offered, r.Dropped)
	}
	if r.Compared != 0 {
		t.Errorf("compared %d while the candidate held every request", r.Compared)
	}
}

func TestCloseCancelsInFlight(t *testing.T) {
	stable := server(t, llm{answer: same})
	cand, arrived, release := blocked(t)
	defer close(release)
	m, err := New(Options{Upstream: cand, Percent: 100, Queue: 8, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	ex := capture(t, stable, ChatPath, chatBody("q", false), nil)
	offerAll(t, m, []Exchange{ex, ex, ex, ex, ex})
	<-arrived
	<-arrived // both workers are held by the candidate, 3 queued
	m.Close() // returns only once the held requests were cancelled
	m.Close()
	r := m.Report()
	if r.Cancelled != 5 || r.CandidateErrors != 0 || r.Compared != 0 {
		t.Errorf("cancelled %d, candidate errors %d, compared %d: want 5, 0, 0", r.Cancelled, r.CandidateErrors, r.Compared)
	}
	if m.Offer(ex) || m.Report().Dropped != 1 {
		t.Errorf("an offer after Close was queued, or not counted as dropped: %+v", m.Report())
	}
}

// BenchmarkOffer is what a mirrored request costs the client's path:
// queued (the queue has room; the benchmark takes the exchanges off the
// queue itself, one receive per request, as a worker would), or dropped
// (the queue is full).
func BenchmarkOffer(b *testing.B) {
	ex := Exchange{Method: http.MethodPost, Path: ChatPath, Body: chatBody("q", false), Status: 200, Response: []byte(`{"choices":[]}`)}
	for _, full := range []bool{false, true} {
		b.Run(fmt.Sprintf("full=%v", full), func(b *testing.B) {
			m, err := build(Options{Upstream: "http://candidate:8000", Percent: 100})
			if err != nil {
				b.Fatal(err)
			}
			for full && m.Offer(ex) {
			}
			b.ReportAllocs()
			for b.Loop() {
				if m.Offer(ex) {
					<-m.queue
				}
			}
			if r := m.Report(); full != (r.Dropped > 0) {
				b.Fatalf("full=%v but dropped %d", full, r.Dropped)
			}
		})
	}
}

func BenchmarkSample(b *testing.B) {
	m, err := build(Options{Upstream: "http://candidate:8000", Percent: 5})
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for b.Loop() {
		if m.Sample() {
			n++
		}
	}
	b.ReportMetric(float64(n)/float64(b.N), "sampled/op")
}
