package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/modelship/modelship/internal/clip"
	"github.com/modelship/modelship/internal/deploy"
)

func init() {
	register(command{name: "history", summary: "list an environment's releases: image, model digest, git SHA, who, when, outcome", run: runHistory})
}

const historyUsage = `Usage: modelship history --env NAME [--json] [--config modelship.yaml]

Lists the environment's releases, oldest first, as the target records
them (on Docker, labels on the release containers and their records; on
Kubernetes, annotations of the release ConfigMaps and Deployments, so the
list cannot drift from what runs): release id, outcome (live, superseded,
failed, interrupted, in-progress, abandoned), * for the one serving now, image, model
digest, git SHA, who deployed and when.

Flags:
`

func runHistory(ctx context.Context, args []string, s stdio) int {
	var f envTargetFlags
	var asJSON bool
	tg, closeTarget, code := f.parse("history", historyUsage, args, s, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print the releases as a JSON array")
	})
	if tg == nil {
		return code
	}
	defer closeTarget()
	rels, err := deploy.History(ctx, tg, f.env)
	if err != nil {
		fmt.Fprintf(s.err, "modelship history: %v%s\n", err, hint(err))
		return exitFailed
	}
	if asJSON {
		if rels == nil {
			rels = []*deploy.Release{}
		}
		enc := json.NewEncoder(s.out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rels); err != nil {
			return exitFailed
		}
		return exitOK
	}
	return printHistory(s, f.env, rels)
}

// printHistory prints the releases of environment env as a table, with *
// marking the one serving.
func printHistory(s stdio, env string, rels []*deploy.Release) int {
	if len(rels) == 0 {
		fmt.Fprintf(s.out, "no releases in %s yet\n", env)
		return exitOK
	}
	tw := tabwriter.NewWriter(s.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\tRELEASE\tOUTCOME\tIMAGE\tMODEL DIGEST\tGIT SHA\tDEPLOYED BY\tDEPLOYED AT\tREASON")
	for _, r := range rels {
		mark := ""
		if r.Serving {
			mark = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", mark, r.ID, r.Outcome, r.Image, shortDigest(r.ModelDigest),
			shortSHA(r.GitSHA), r.DeployedBy, r.DeployedAt.Local().Format(time.DateTime), clip.Bytes(r.Reason, 80))
	}
	return exitOfFlush(tw.Flush())
}

func exitOfFlush(err error) int {
	if err != nil {
		return exitFailed
	}
	return exitOK
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return orDash(d)
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return orDash(s)
}
