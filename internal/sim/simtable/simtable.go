// Package simtable declares the simulator's response table, the content of
// a checkpoint's modelship-sim.json: what the simulated model answers and how
// fast. internal/sim reads it; internal/testmodels writes it.
package simtable

import "strings"

// Entry is one canned answer: Reply is given when every string of Match
// occurs, case-insensitively, in the request text (the last user message of a
// chat request, the prompt of a completion request).
type Entry struct {
	Match []string `json:"match"`
	Reply string   `json:"reply"`
}

// Latency is the simulated timing of a checkpoint. Each delay is drawn
// uniformly from [d*(1-Jitter), d*(1+Jitter)].
type Latency struct {
	TTFTms float64 `json:"ttft_ms"` // time to first token
	ITLms  float64 `json:"itl_ms"`  // inter-token latency
	Jitter float64 `json:"jitter"`  // relative spread, 0 ≤ Jitter ≤ 1
}

// Table is the content of modelship-sim.json: what a simulated checkpoint
// answers and how fast.
type Table struct {
	Responses    []Entry `json:"responses"`
	DefaultReply string  `json:"default_reply"`
	Latency      Latency `json:"latency"`
	// LoadSeconds is how long the simulated model takes to load; /health
	// answers 503 until then.
	LoadSeconds float64 `json:"load_seconds"`
}

// Reply returns the reply of the first entry whose Match strings all occur in
// text (case-insensitive), else DefaultReply.
func (t Table) Reply(text string) string {
	lower := strings.ToLower(text)
	for _, e := range t.Responses {
		ok := true
		for _, m := range e.Match {
			if !strings.Contains(lower, strings.ToLower(m)) {
				ok = false
				break
			}
		}
		if ok {
			return e.Reply
		}
	}
	return t.DefaultReply
}
