package testenv

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/modelship/modelship/internal/sim"
)

type chatReply struct {
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
}

func chat(t *testing.T, base, model, text string) chatReply {
	t.Helper()
	body := `{"model":"` + model + `","messages":[{"role":"user","content":"` + text + `"}]}`
	resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var r chatReply
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if len(r.Choices) != 1 {
		t.Fatalf("want 1 choice: %s", b)
	}
	return r
}

func TestSimAnswersFromTheCheckpointTable(t *testing.T) {
	base := Sim(t, "../../testdata/models/good", nil)
	r := chat(t, base, "good", "What is the capital of France?")
	if !strings.Contains(r.Choices[0].Message.Content, "Paris") {
		t.Errorf("good model: got %q, want Paris", r.Choices[0].Message.Content)
	}
}

func TestSimTweak(t *testing.T) {
	base := Sim(t, "../../testdata/models/good", func(tb *sim.Table) {
		tb.Responses = append([]sim.Entry{{Match: []string{"ping"}, Reply: "pong"}}, tb.Responses...)
	})
	if got := chat(t, base, "good", "ping").Choices[0].Message.Content; got != "pong" {
		t.Errorf("tweaked reply: got %q, want pong", got)
	}
}

func TestMockLLMEchoes(t *testing.T) {
	base := MockLLM(t)
	r := chat(t, base, "gpt-4", "hello there")
	if r.Choices[0].Message.Content != "hello there" || r.Model != "gpt-4" {
		t.Errorf("mock-llm echo: got %+v", r)
	}
}

func TestMockLLMConfig(t *testing.T) {
	base := MockLLMConfig(t, `rules:
  - path: "/v1/chat/completions"
    match: "contains(body.messages[-1].content, 'France')"
    response:
      status: 200
      content: '{"choices":[{"message":{"role":"assistant","content":"Paris."},"finish_reason":"stop"}]}'
`)
	if got := chat(t, base, "m", "Capital of France?").Choices[0].Message.Content; got != "Paris." {
		t.Errorf("configured rule: got %q", got)
	}
}
