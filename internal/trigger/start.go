package trigger

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Starter starts the release pipeline for an event. The Server calls it
// from one goroutine, one release at a time, on a context of its own (never
// a webhook's request): a sender giving up does not cancel a release.
type Starter interface {
	// Start starts the release of ev and returns once it is under way
	// (GitHub accepted the dispatch, the process started), or an error
	// when it could not start. end, when not nil, waits for the end of
	// what it started and says whether it succeeded.
	Start(ctx context.Context, ev Event) (end func() error, err error)
	// Describe says where releases go, for the log and the store.
	Describe() string
}

// Checker is a Starter that can refuse an event before it is queued:
// a command that needs a value the event lacks.
type Checker interface {
	Check(ev Event) error
}

// Dispatch starts a GitHub Actions workflow with a workflow_dispatch event:
// POST {API}/repos/{Owner}/{Repo}/actions/workflows/{Workflow}/dispatches
// with {"ref": Ref, "inputs": {...}}
// (https://docs.github.com/en/rest/actions/workflows#create-a-workflow-dispatch-event).
// The inputs are Inputs plus "source" (Event.Key: what to fetch) and
// "digest" (the checkpoint digest the registry announced, "" when it
// names none: what the fetched checkpoint must hash to). The workflow's
// own inputs must declare every name sent, or GitHub answers 422.
type Dispatch struct {
	API      string // default https://api.github.com
	Owner    string
	Repo     string
	Workflow string // file name (deploy-model.yml) or id
	Ref      string // branch or tag the workflow runs on
	Token    string // a token allowed actions:write on the repository
	Inputs   map[string]string
	Client   *http.Client // default: 30 s timeout
}

// Describe implements Starter.
func (d *Dispatch) Describe() string {
	return fmt.Sprintf("workflow_dispatch %s/%s %s@%s", d.Owner, d.Repo, d.Workflow, d.Ref)
}

// Start implements Starter: the release is under way (and, as far as the
// trigger follows it, finished) when GitHub accepts the dispatch.
func (d *Dispatch) Start(ctx context.Context, ev Event) (func() error, error) {
	return nil, d.dispatch(ctx, ev)
}

func (d *Dispatch) dispatch(ctx context.Context, ev Event) error {
	if err := ev.Validate(); err != nil {
		return err
	}
	api := strings.TrimSuffix(d.API, "/")
	if api == "" {
		api = "https://api.github.com"
	}
	inputs := map[string]string{}
	for k, v := range d.Inputs {
		inputs[k] = v
	}
	// What the workflow fetches (source: the registry's repository and
	// revision) and checks it got (digest, when the registry names one).
	inputs["source"], inputs["digest"] = ev.Key(), ev.Digest
	body, _ := json.Marshal(map[string]any{"ref": d.Ref, "inputs": inputs})
	u := fmt.Sprintf("%s/repos/%s/%s/actions/workflows/%s/dispatches", api, url.PathEscape(d.Owner), url.PathEscape(d.Repo), url.PathEscape(d.Workflow))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("Authorization", "Bearer "+d.Token)
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "modelship-trigger")
	c := d.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("workflow_dispatch: %v", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		var e struct {
			Message string `json:"message"`
		}
		json.Unmarshal(msg, &e)
		if e.Message == "" {
			e.Message = strings.TrimSpace(string(msg))
		}
		return fmt.Errorf("workflow_dispatch: GitHub answered %s: %s", resp.Status, e.Message)
	}
	return nil
}

// Command starts a local command for each event, e.g. a gh workflow run
// or a dagger call. Argv is run directly, never through a shell; in each
// argument the Placeholders {source}, {repo}, {revision} and {digest} are
// replaced by the event's values, each checked by Event.Validate first
// (each stays one argument). An event without a value a placeholder of
// Argv needs (an event without a digest for {digest}) is refused by Check.
// The command also gets MODELSHIP_TRIGGER_SOURCE, _REPO, _REVISION and
// _DIGEST in its environment. Its end is its exit: the Server runs one
// command at a time.
type Command struct {
	Argv   []string
	Stdout io.Writer // default os.Stderr
}

// Describe implements Starter.
func (c *Command) Describe() string { return "command " + strings.Join(c.Argv, " ") }

// Validate checks Argv: a command, and only known Placeholders.
func (c *Command) Validate() error {
	if len(c.Argv) == 0 {
		return fmt.Errorf("no command to run: expected a program and its arguments")
	}
	for _, a := range c.Argv {
		for _, p := range placeholderRE.FindAllString(a, -1) {
			if !isPlaceholder(p) {
				return fmt.Errorf("argument %q: unknown placeholder %s: expected %s", a, p, strings.Join(Placeholders, ", "))
			}
		}
	}
	return nil
}

func isPlaceholder(p string) bool {
	for _, k := range Placeholders {
		if k == p {
			return true
		}
	}
	return false
}

// Check implements Checker: ev is valid, and has a value for every
// placeholder Argv holds.
func (c *Command) Check(ev Event) error {
	if err := ev.Validate(); err != nil {
		return err
	}
	for _, a := range c.Argv {
		for _, p := range placeholderRE.FindAllString(a, -1) {
			if v, field := ev.value(p); v == "" && field != "" {
				return errMissing{fmt.Errorf("the command uses %s: %w", p, &FieldError{Field: field, Want: ev.want(field)})}
			}
		}
	}
	return nil
}

// Start implements Starter: it returns once the process has started; end
// waits for its exit.
func (c *Command) Start(_ context.Context, ev Event) (func() error, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := c.Check(ev); err != nil {
		return nil, err
	}
	r := strings.NewReplacer("{source}", ev.Key(), "{repo}", ev.Repo, "{revision}", ev.Revision, "{digest}", ev.Digest)
	argv := make([]string, len(c.Argv))
	for i, a := range c.Argv {
		argv[i] = r.Replace(a)
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("run: %v", err)
	}
	out := c.Stdout
	if out == nil {
		out = os.Stderr
	}
	cmd := exec.Command(path, argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(),
		"MODELSHIP_TRIGGER_SOURCE="+ev.Key(), "MODELSHIP_TRIGGER_REPO="+ev.Repo,
		"MODELSHIP_TRIGGER_REVISION="+ev.Revision, "MODELSHIP_TRIGGER_DIGEST="+ev.Digest)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %v", argv[0], err)
	}
	return func() error {
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("%s: %v", argv[0], err)
		}
		return nil
	}, nil
}
