package deploy

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// releases builds a history, oldest first, from specs "OUTCOME" or
// "OUTCOME*" (* serving): r1, r2, ... one minute apart.
func releases(specs ...string) []*Release {
	t0 := time.Date(2025, 1, 2, 15, 0, 0, 0, time.UTC)
	var out []*Release
	for i, s := range specs {
		o, star := strings.CutSuffix(s, "*")
		out = append(out, &Release{ID: "r" + string(rune('1'+i)), Env: "production", ImageID: "sha256:" + o,
			DeployedAt: t0.Add(time.Duration(i) * time.Minute), Outcome: Outcome(o), Serving: star})
	}
	return out
}

func ids(rs []*Release) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.ID)
	}
	return strings.Join(s, ",")
}

func TestPrunable(t *testing.T) {
	for _, c := range []struct {
		name string
		rels []*Release
		keep int
		want string // ids dropped
	}{
		{"fewer than keep", releases("live", "live*"), 2, ""},
		{"exactly keep", releases("live", "live", "live*"), 3, ""},
		{"keep 0 prunes nothing", releases("live", "live", "live*"), 0, ""},
		{"oldest beyond keep", releases("live", "live", "live", "live", "live*"), 2, "r1,r2,r3"},
		{"failed and interrupted go too", releases("failed", "interrupted", "live", "failed", "live*"), 2, "r1,r2"},
		{"serving older than the newest keep", releases("live", "live*", "failed", "failed", "failed"), 2, "r3"},
		{"rollback target older than the newest keep", releases("live", "failed", "failed", "live*"), 2, "r2"},
		{"rollback target is the newest live before the serving one", releases("live", "live", "live*", "live", "failed"), 2, "r1"},
		{"in-progress never dropped", releases("in-progress", "failed", "live", "live*"), 2, "r2"},
		{"as History reports it (superseded)", releases("superseded", "superseded", "superseded", "live*"), 2, "r1,r2"},
		{"keep 1 still keeps the rollback target", releases("live", "live", "live*"), 1, "r1"},
		{"nothing ever went live", releases("failed", "failed", "failed"), 2, "r1"},
		{"serving unknown: nothing dropped", releases("live", "live", "live", "live"), 2, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			drop := Prunable(c.rels, c.keep)
			if got := ids(drop); got != c.want {
				t.Errorf("Prunable(keep %d) dropped %q, want %q", c.keep, got, c.want)
			}
			// Whatever is dropped, what serves and what a rollback would
			// go back to stay.
			for _, r := range drop {
				if r.Serving || r == RollbackTarget(c.rels) || r.Outcome == InProgress {
					t.Errorf("dropped %s (%s, serving %v)", r.ID, r.Outcome, r.Serving)
				}
			}
		})
	}
}

// pruneTarget is a Target (only Releases is implemented) that prunes by
// forgetting releases; fail makes Prune fail for those ids.
type pruneTarget struct {
	Target
	rels  []*Release
	fail  map[string]bool
	calls [][]*Release
}

func (p *pruneTarget) Releases(context.Context, string) ([]*Release, error) {
	return slices.Clone(p.rels), nil
}

func (p *pruneTarget) Prune(_ context.Context, env string, drop []*Release) error {
	p.calls = append(p.calls, drop)
	var errs []error
	for _, r := range drop {
		if p.fail[r.ID] {
			errs = append(errs, errors.New("release "+r.ID+": removing its record: engine said no"))
			continue
		}
		p.rels = slices.DeleteFunc(p.rels, func(x *Release) bool { return x.ID == r.ID })
	}
	return errors.Join(errs...)
}

func TestDeployerPrune(t *testing.T) {
	ledger := filepath.Join(t.TempDir(), "ledger.jsonl")
	tg := &pruneTarget{rels: releases("live", "failed", "live", "live", "live*")}
	var out bytes.Buffer
	d := &Deployer{Target: tg, Out: &out, Ledger: &Ledger{Path: ledger}}

	d.prune(context.Background(), Request{Env: "production"}) // no keep: nothing
	if len(tg.calls) != 0 {
		t.Fatalf("pruned without keep-releases: %v", tg.calls)
	}
	d.prune(context.Background(), Request{Env: "production", KeepReleases: 2})
	if got := ids(tg.rels); got != "r4,r5" {
		t.Errorf("after pruning to 2: %s, want r4,r5", got)
	}
	if want := "pruned 3 old releases: r1, r2, r3 (keep-releases 2)\n"; out.String() != want {
		t.Errorf("log %q, want %q", out.String(), want)
	}
	if b, _ := os.ReadFile(ledger); strings.Count(string(b), `"event":"pruned"`) != 3 {
		t.Errorf("ledger has not one pruned event per release:\n%s", b)
	}
	d.prune(context.Background(), Request{Env: "production", KeepReleases: 2})
	if len(tg.calls) != 1 {
		t.Errorf("pruned again with nothing to drop: %v", tg.calls)
	}

	// A failure is a warning naming the release; what did go is said.
	out.Reset()
	tg.rels, tg.fail = releases("live", "live", "live", "live*"), map[string]bool{"r2": true}
	d.prune(context.Background(), Request{Env: "production", KeepReleases: 2})
	log := out.String()
	if !strings.Contains(log, "pruned 1 old release: r1 (keep-releases 2)") ||
		!strings.Contains(log, "warning: pruning old releases of production (the deploy is not affected): release r2: removing its record: engine said no") {
		t.Errorf("log after a failed prune:\n%s", log)
	}
}
