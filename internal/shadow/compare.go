package shadow

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/modelship/modelship/internal/clip"
)

// Report sizes.
const (
	// MaxWorst is how many disagreements a report lists.
	MaxWorst = 5
	// ClipText bounds the prompt and answers of a listed disagreement, in
	// characters.
	ClipText = 300
	// MaxSimilarityTokens is how many tokens of each answer Similarity
	// weighs (its cost grows with the product of the two counts).
	MaxSimilarityTokens = 1000
)

// outcome is what one mirrored exchange counts for.
type outcome struct {
	answered       bool // the candidate answered (Compared)
	candidateError bool
	comparable     bool
	agreed         bool
	checked        bool          // Check had assertions for the prompt
	stableCheck    error         // stable's answer failed them
	candCheck      error         // the candidate's answer failed them
	worst          *Disagreement // when the answers differ
	stable, cand   [2]int64      // ttfb, total in ns, when answered
}

// assert runs check on the candidate's text and, when stable's was read
// (a 200, whole, with a text), on stable's; else stable's counts as
// passing.
func (o *outcome) assert(check func(prompt, answer string) (bool, error), prompt, candText, stableText string, stableRead bool) {
	checked, err := check(prompt, candText)
	if !checked {
		return
	}
	o.checked, o.candCheck = true, err
	if stableRead {
		_, o.stableCheck = check(prompt, stableText)
	}
}

// judge compares the candidate's answer a with stable's in ex, and runs
// check on both texts when both were read whole.
func judge(ex Exchange, a answer, check func(prompt, answer string) (bool, error)) outcome {
	if a.err != nil {
		return outcome{candidateError: ex.Status < 500}
	}
	o := outcome{
		answered:       true,
		candidateError: a.status >= 500 && ex.Status < 500,
		stable:         [2]int64{int64(ex.TTFB), int64(ex.Total)},
		cand:           [2]int64{int64(a.ttfb), int64(a.total)},
	}
	chat, _ := generation(ex.Path)
	var candText string
	var candErr error = errNotRead
	if a.status == http.StatusOK && !a.truncated {
		candText, candErr = answerText(a.body, chat)
	}
	var stableText string
	var stableErr error = errNotRead
	if ex.Status == http.StatusOK && !ex.Truncated {
		stableText, stableErr = answerText(ex.Response, chat)
	}
	if check != nil && candErr == nil {
		o.assert(check, promptOf(ex.Body, chat), candText, stableText, stableErr == nil)
	}
	if a.status != ex.Status {
		o.comparable = true
		o.worst = disagreement(ex, chat, shown(ex.Status, ex.Response, chat), shown(a.status, a.body, chat), 0)
		return o
	}
	if ex.Status != http.StatusOK || ex.Truncated || a.truncated {
		return o // the same failure, or a text not read whole: nothing to compare
	}
	if stableErr != nil {
		return o // stable's answer has no text to compare with
	}
	o.comparable = true
	if candErr != nil {
		o.worst = disagreement(ex, chat, stableText, "unreadable answer: "+candErr.Error(), 0)
		return o
	}
	if strings.TrimSpace(stableText) == strings.TrimSpace(candText) {
		o.agreed = true
		return o
	}
	o.worst = disagreement(ex, chat, stableText, candText, Similarity(stableText, candText))
	return o
}

// errNotRead: the candidate's answer was not a whole 200.
var errNotRead = errors.New("not a whole answer")

// shown is how an answer is listed when the statuses differ: its text
// when it has one, else its status and body.
func shown(status int, body []byte, chat bool) string {
	if status == http.StatusOK {
		if t, err := answerText(body, chat); err == nil {
			return t
		}
	}
	return fmt.Sprintf("HTTP %d: %s", status, clip.Bytes(string(body), ClipText))
}

// disagreement is one listed disagreement, clipped for the report.
func disagreement(ex Exchange, chat bool, stable, cand string, sim float64) *Disagreement {
	return &Disagreement{
		Path:       ex.Path,
		Prompt:     clip.Line(promptOf(ex.Body, chat), ClipText),
		Stable:     clip.Runes(stable, ClipText),
		Candidate:  clip.Runes(cand, ClipText),
		Similarity: sim,
	}
}

// Similarity is how alike two texts are, 0 (nothing in common) to 1 (the
// same words in the same order): the longest common subsequence of their
// words (split at white space), twice over the sum of their word counts.
// Only the first MaxSimilarityTokens words of each are weighed. Two empty
// texts are the same (1).
func Similarity(a, b string) float64 {
	x, y := words(a), words(b)
	if len(x)+len(y) == 0 {
		return 1
	}
	if len(x) < len(y) {
		x, y = y, x // the shorter one sizes the rows
	}
	prev := make([]int32, len(y)+1)
	cur := make([]int32, len(y)+1)
	for i := range x {
		for j := range y {
			switch {
			case x[i] == y[j]:
				cur[j+1] = prev[j] + 1
			case prev[j+1] >= cur[j]:
				cur[j+1] = prev[j+1]
			default:
				cur[j+1] = cur[j]
			}
		}
		prev, cur = cur, prev
	}
	return 2 * float64(prev[len(y)]) / float64(len(x)+len(y))
}

// words are the first MaxSimilarityTokens words of s.
func words(s string) []string {
	w := strings.Fields(s)
	return w[:min(len(w), MaxSimilarityTokens)]
}
