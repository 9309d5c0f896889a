package shadow

import (
	"fmt"
	"strings"
	"testing"
)

func TestAnswerText(t *testing.T) {
	for _, c := range []struct {
		name, body string
		chat       bool
		want, err  string
	}{
		{"chat JSON", `{"choices":[{"index":0,"message":{"role":"assistant","content":"Hello there"}}]}`, true, "Hello there", ""},
		{"chat tool call", `{"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[]}}]}`, true, "", ""},
		{"completion JSON, two choices out of order", `{"choices":[{"index":1,"text":"b"},{"index":0,"text":"a"}]}`, false, "a\nb", ""},
		{"chat stream", "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n" +
			"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n: keep-alive\n\n" +
			"data:{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n" +
			"data: [DONE]\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"after\"}}]}\n", true, "Hello", ""},
		{"completion stream without DONE", "data: {\"choices\":[{\"index\":0,\"text\":\"a \"}]}\r\n\r\ndata: {\"choices\":[{\"index\":0,\"text\":\"b\"}]}\r\n", false, "a b", ""},
		{"empty", "  \n", true, "", "empty answer"},
		{"no choices", `{"object":"list","data":[]}`, true, "", `no "choices"`},
		{"error", `{"error":{"message":"too long"}}`, false, "", "the answer is an error"},
		{"streamed error", "data: {\"choices\":[{\"index\":0,\"text\":\"a\"}]}\n\ndata: {\"error\":{\"message\":\"boom\"}}\n\n", false, "", "streamed event 2: the answer is an error"},
		{"not JSON", "<html>bad gateway</html>", true, "", `neither JSON nor a stream of "data:" events`},
		{"broken JSON", `{"choices":[`, true, "", "not a completion"},
	} {
		got, err := answerText([]byte(c.body), c.chat)
		if (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.err)
		}
		if got != c.want {
			t.Errorf("%s: text %q, want %q", c.name, got, c.want)
		}
	}
}

func TestPromptOf(t *testing.T) {
	for _, c := range []struct {
		body string
		chat bool
		want string
	}{
		{`{"messages":[{"role":"user","content":"first"},{"role":"assistant","content":"x"},{"role":"user","content":"last"},{"role":"assistant","content":"y"}]}`, true, "last"},
		{`{"messages":[{"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"data:"}},{"type":"text","text":"at this"}]}]}`, true, "look\nat this"},
		{`{"messages":[{"role":"system","content":"only system"}]}`, true, ""},
		{`{"prompt":"once"}`, false, "once"},
		{`{"prompt":["one","two"]}`, false, "two"},
		{`{"prompt":[1,2,3]}`, false, ""},
		{`not json`, false, ""},
	} {
		if got := promptOf([]byte(c.body), c.chat); got != c.want {
			t.Errorf("promptOf(%s) = %q, want %q", c.body, got, c.want)
		}
	}
}

func TestSimilarity(t *testing.T) {
	long := strings.Repeat("word ", 5000)
	for _, c := range []struct {
		a, b string
		want float64
	}{
		{"", "", 1},
		{"same words", " same\nwords ", 1},
		{"a b c d", "x y z w", 0},
		{"the cat sat on the mat", "the cat sat on a mat", 10.0 / 12},
		{"one two three", "one two three four five", 6.0 / 8},
		{"a b c", "c b a", 2.0 / 6},
		{"something", "", 0},
		{long, long + "tail", 1}, // only the first MaxSimilarityTokens words weigh
	} {
		if got := Similarity(c.a, c.b); fmt.Sprintf("%.6f", got) != fmt.Sprintf("%.6f", c.want) {
			t.Errorf("Similarity(%.30q, %.30q) = %v, want %v", c.a, c.b, got, c.want)
		}
		if got, back := Similarity(c.a, c.b), Similarity(c.b, c.a); got != back {
			t.Errorf("Similarity is not symmetric on %.30q, %.30q: %v, %v", c.a, c.b, got, back)
		}
	}
}

// BenchmarkSimilarity is the worst case one comparison costs a worker:
// two long answers with nothing in common.
func BenchmarkSimilarity(b *testing.B) {
	x := strings.Repeat("alpha ", 5000)
	y := strings.Repeat("beta ", 5000)
	for b.Loop() {
		Similarity(x, y)
	}
}
