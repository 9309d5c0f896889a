// Package rollouttest holds what the Docker and Kubernetes e2e tests of a
// canary or shadow rollout share: a conversations load that says which
// release answered, the sticky checks, and the shadow step's spec and
// checks. It imports internal/deploy, so it is apart from testenv (which
// the packages deploy uses import in their tests).
package rollouttest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelship/modelship/internal/analysis"
	"github.com/modelship/modelship/internal/testenv"
)

// Answered is one GET /version of a conversation ("" when none): the
// image that answered it, when it was sent and when the answer was read.
type Answered struct {
	Conv       string
	Image      string
	Sent, Back time.Time
}

// Conversations is a load loop whose requests say which release answered
// them: each worker sends completions at temperature 0 (the simulator's
// table answers them the same every time: Paris from the good model, Lyon
// from the regressed one), and after every fourth GET /version, both
// carrying X-Conversation-Id when there are conversations (cycled
// through). An answer without "Paris" is a failure: a client saw the
// regressed model. (GET /version is a probe: the analysis judges latency
// on the completions only.)
type Conversations struct {
	*testenv.Load
	mu   sync.Mutex
	seen []Answered
}

// ConvHeader is the sticky header of the conversations' requests.
const ConvHeader = "X-Conversation-Id"

func StartConversations(url string, workers, convs int) *Conversations {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	body := `{"model":"current","prompt":"What is the capital of France?","max_tokens":32,"temperature":0}`
	c := &Conversations{}
	var n atomic.Int64
	send := func(method, path, conv string, body io.Reader) ([]byte, error) {
		req, err := http.NewRequest(method, url+path, body)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		if conv != "" {
			req.Header.Set(ConvHeader, conv)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s %s: status %d: %.200s", method, path, resp.StatusCode, b)
		}
		return b, err
	}
	c.Load = testenv.StartLoad(workers, func(_, i int) error {
		conv := ""
		if convs > 0 {
			conv = fmt.Sprintf("conv-%02d", n.Add(1)%int64(convs))
		}
		b, err := send("POST", "/v1/completions", conv, strings.NewReader(body))
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), "Paris") {
			return fmt.Errorf("a client got %.200s, want the serving release's answer (Paris)", b)
		}
		if i%4 != 0 {
			return nil
		}
		a := Answered{Conv: conv, Sent: time.Now()}
		if b, err = send("GET", "/version", conv, nil); err != nil {
			return err
		}
		a.Back = time.Now()
		var v testenv.Version
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("GET /version: %v: %.200s", err, b)
		}
		a.Image = v.Image
		c.mu.Lock()
		c.seen = append(c.seen, a)
		c.mu.Unlock()
		return nil
	})
	return c
}

// Seen stops the loop, fails the test on any failed request, and returns
// what GET /version answered.
func (c *Conversations) Seen(t *testing.T) []Answered {
	t.Helper()
	reqs, fails, errs := c.Stop()
	if fails != 0 {
		t.Errorf("%d of %d requests failed, want 0: %q", fails, reqs, errs)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen
}

// StaysOnNew checks that once the new release (image next) answered a
// conversation, the serving one never answered it again: a sticky
// header's values only ever move to the new release, as its share grows.
func StaysOnNew(t *testing.T, seen []Answered, next string) {
	t.Helper()
	firstNew := map[string]time.Time{} // when the new release first answered each conversation
	for _, a := range seen {
		if f, ok := firstNew[a.Conv]; a.Image == next && (!ok || a.Back.Before(f)) {
			firstNew[a.Conv] = a.Back
		}
	}
	for _, a := range seen {
		if f, ok := firstNew[a.Conv]; ok && a.Image != next && a.Sent.After(f) {
			t.Errorf("conversation %s: answered by the new release at %s, then by %s at %s", a.Conv, f.Format(time.StampMilli), a.Image, a.Sent.Format(time.StampMilli))
		}
	}
}

// StickyStep checks that no conversation was answered by both versions
// between the step's split taking effect (from) and its end, and logs the
// share of conversations the new release answered.
func StickyStep(t *testing.T, seen []Answered, from time.Time, st analysis.Step, next string, convs int) {
	t.Helper()
	if from.IsZero() {
		t.Errorf("step %s: its hook was not reached", st.Name)
		return
	}
	versions := map[string]map[string]bool{}
	reqs := 0
	for _, a := range seen {
		if a.Sent.Before(from) || a.Back.After(st.Ended) {
			continue
		}
		reqs++
		if versions[a.Conv] == nil {
			versions[a.Conv] = map[string]bool{}
		}
		versions[a.Conv][a.Image] = true
	}
	onNew := 0
	for conv, v := range versions {
		if len(v) > 1 {
			t.Errorf("step %s: conversation %s was answered by %d versions, want one", st.Name, conv, len(v))
		}
		if v[next] {
			onNew++
		}
	}
	t.Logf("step %s: %d of %d conversations (%.0f%%) on the new release over %d requests", st.Name, onNew, len(versions), 100*float64(onNew)/float64(max(len(versions), 1)), reqs)
	if st.Percent >= 50 && (onNew == 0 || onNew == len(versions) || len(versions) < convs/2) {
		t.Errorf("step %s: %d of %d conversations seen (of %d) on the new release, want most seen and split between both", st.Name, onNew, len(versions), convs)
	}
}
