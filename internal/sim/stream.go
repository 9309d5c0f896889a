package sim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"
)

// streamer writes server-sent events in vLLM's chunk shapes.
type streamer struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	s       *Server
	chat    bool
	usage   bool
	id      string
	created int64
	started bool // role chunks sent
	buf     bytes.Buffer
}

func newStreamer(w http.ResponseWriter, s *Server, chat, includeUsage bool) *streamer {
	st := &streamer{w: w, rc: http.NewResponseController(w), s: s, chat: chat, usage: includeUsage, created: time.Now().Unix()}
	if chat {
		st.id = "chatcmpl-" + randomHex()
	} else {
		st.id = "cmpl-" + randomHex()
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	return st
}

func (st *streamer) event(v any) {
	st.buf.WriteString("data: ")
	b, _ := json.Marshal(v)
	st.buf.Write(b)
	st.buf.WriteString("\n\n")
}

func (st *streamer) flush() error {
	_, err := st.w.Write(st.buf.Bytes())
	st.buf.Reset()
	if err == nil {
		err = st.rc.Flush()
	}
	return err
}

// step sends the token of every sequence at position i (and, first, the
// role chunks of a chat stream). The last token of a sequence carries its
// finish_reason, as in vLLM.
func (st *streamer) step(seqs []seq, i int) error {
	st.started = true
	for _, q := range seqs {
		if i == 0 && st.chat {
			empty := ""
			st.event(st.chatChunk(chatChunkChoice{Index: q.index, Delta: delta{Role: "assistant", Content: &empty}}))
		}
		if i >= len(q.toks) {
			continue
		}
		tok := q.toks[i]
		var fin *string
		if i == len(q.toks)-1 {
			f := q.finish
			fin = &f
		}
		if st.chat {
			c := chatChunkChoice{Index: q.index, Delta: delta{Content: &tok}, FinishReason: fin}
			if fin != nil {
				c.StopReason = json.RawMessage("null")
			}
			st.event(st.chatChunk(c))
		} else {
			st.event(completionResponse{ID: st.id, Object: "text_completion", Created: st.created, Model: st.s.name,
				Choices: []completionChoice{{Index: q.index, Text: tok, FinishReason: fin}}})
		}
	}
	return st.flush()
}

func (st *streamer) chatChunk(c chatChunkChoice) chatChunk {
	return chatChunk{ID: st.id, Object: "chat.completion.chunk", Created: st.created, Model: st.s.name, Choices: []chatChunkChoice{c}}
}

// finish closes sequences that produced no token, sends the usage chunk
// when asked for, and [DONE].
func (st *streamer) finish(seqs []seq, u usage) {
	for _, q := range seqs {
		if len(q.toks) > 0 {
			continue
		}
		f := q.finish
		if st.chat {
			if !st.started {
				empty := ""
				st.event(st.chatChunk(chatChunkChoice{Index: q.index, Delta: delta{Role: "assistant", Content: &empty}}))
			}
			st.event(st.chatChunk(chatChunkChoice{Index: q.index, FinishReason: &f}))
		} else {
			st.event(completionResponse{ID: st.id, Object: "text_completion", Created: st.created, Model: st.s.name,
				Choices: []completionChoice{{Index: q.index, FinishReason: &f}}})
		}
	}
	if st.usage {
		if st.chat {
			st.event(chatChunk{ID: st.id, Object: "chat.completion.chunk", Created: st.created, Model: st.s.name, Choices: []chatChunkChoice{}, Usage: &u})
		} else {
			st.event(completionResponse{ID: st.id, Object: "text_completion", Created: st.created, Model: st.s.name, Choices: []completionChoice{}, Usage: &u})
		}
	}
	st.buf.WriteString("data: [DONE]\n\n")
	st.flush()
}
