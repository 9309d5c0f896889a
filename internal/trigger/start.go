package trigger

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Starter starts the release pipeline for an event. Start must return soon:
// a webhook sender waits for the answer.
type Starter interface {
	Start(ctx context.Context, ev Event) error
	// Describe says where releases go, for the log and the store.
	Describe() string
}

// Dispatch starts a GitHub Actions workflow with a workflow_dispatch event:
// POST {API}/repos/{Owner}/{Repo}/actions/workflows/{Workflow}/dispatches
// with {"ref": Ref, "inputs": {...}}
// (https://docs.github.com/en/rest/actions/workflows#create-a-workflow-dispatch-event).
// The inputs are Inputs plus "source" (Event.Key) and, for MLflow events
// with a digest, nothing more: the workflow's own inputs must declare every
// name sent, or GitHub answers 422.
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

// Start implements Starter.
func (d *Dispatch) Start(ctx context.Context, ev Event) error {
	api := strings.TrimSuffix(d.API, "/")
	if api == "" {
		api = "https://api.github.com"
	}
	inputs := map[string]string{}
	for k, v := range d.Inputs {
		inputs[k] = v
	}
	inputs["source"] = ev.Key()
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

// Command starts a local command, e.g. modelship release, for each event.
// Argv is run directly, never through a shell; in each argument
// {source}, {repo}, {revision} and {digest} are replaced by the event's
// values (each stays one argument whatever it holds). The command also gets
// MODELSHIP_TRIGGER_SOURCE, _REPO, _REVISION and _DIGEST in its
// environment. Start returns once the process has started; its exit is
// logged. Releases run one at a time: an event arriving while one runs
// starts after it.
type Command struct {
	Argv   []string
	Stdout io.Writer // default os.Stderr
	Log    *slog.Logger

	mu sync.Mutex // one release at a time
	wg sync.WaitGroup
}

// Describe implements Starter.
func (c *Command) Describe() string { return "command " + strings.Join(c.Argv, " ") }

// Start implements Starter.
func (c *Command) Start(_ context.Context, ev Event) error {
	if len(c.Argv) == 0 {
		return fmt.Errorf("no command to run")
	}
	r := strings.NewReplacer("{source}", ev.Key(), "{repo}", ev.Repo, "{revision}", ev.Revision, "{digest}", ev.Digest)
	argv := make([]string, len(c.Argv))
	for i, a := range c.Argv {
		argv[i] = r.Replace(a)
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return fmt.Errorf("run: %v", err)
	}
	out := c.Stdout
	if out == nil {
		out = os.Stderr
	}
	log := c.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c.wg.Add(1)
	started := make(chan error, 1)
	go func() {
		defer c.wg.Done()
		c.mu.Lock()
		defer c.mu.Unlock()
		cmd := exec.Command(path, argv[1:]...)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.Env = append(os.Environ(),
			"MODELSHIP_TRIGGER_SOURCE="+ev.Key(), "MODELSHIP_TRIGGER_REPO="+ev.Repo,
			"MODELSHIP_TRIGGER_REVISION="+ev.Revision, "MODELSHIP_TRIGGER_DIGEST="+ev.Digest)
		if err := cmd.Start(); err != nil {
			log.Error("release command did not start", "source", ev.Key(), "command", argv[0], "error", err.Error())
			started <- fmt.Errorf("run %s: %v", argv[0], err)
			return
		}
		started <- nil
		err := cmd.Wait()
		if err != nil {
			log.Error("release command failed", "source", ev.Key(), "command", argv[0], "error", err.Error())
		} else {
			log.Info("release command finished", "source", ev.Key(), "command", argv[0])
		}
	}()
	// Queued behind a running release: accepted now, started later.
	select {
	case err := <-started:
		return err
	case <-time.After(2 * time.Second):
		return nil
	}
}

// Wait waits for the commands started so far to end.
func (c *Command) Wait() { c.wg.Wait() }
