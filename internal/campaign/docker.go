package campaign

import (
	"context"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/deploy/docker"
)

// DockerSite is a campaign on a Docker host: releases are containers
// behind the environment's gateway.
type DockerSite struct{ T *docker.Target }

func (s DockerSite) Target() deploy.Target { return s.T }

func (s DockerSite) Alias(ctx context.Context, src, alias string) error {
	return s.T.Client().ImageTag(ctx, src, alias)
}

func (s DockerSite) Unalias(ctx context.Context, alias string) {
	s.T.Client().ImageRemove(ctx, alias, image.RemoveOptions{})
}

func (s DockerSite) releases(ctx context.Context, env string) ([]container.Summary, error) {
	return s.T.Client().ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", deploy.LabelEnv+"="+env), filters.Arg("label", docker.LabelRole+"=release"))})
}

func (s DockerSite) KillEngine(ctx context.Context, env string, spare ...string) string {
	list, err := s.releases(ctx, env)
	if err != nil {
		return "listing containers failed: " + err.Error()
	}
	for _, ct := range list {
		if id := ct.Labels[deploy.LabelRelease]; !slices.Contains(spare, id) {
			s.T.Client().ContainerKill(ctx, ct.ID, "KILL")
			return "killed " + strings.TrimPrefix(ct.Names[0], "/")
		}
	}
	return "no candidate that does not serve yet"
}

func (s DockerSite) Running(ctx context.Context, env string) (map[string][]string, error) {
	list, err := s.releases(ctx, env)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, ct := range list {
		id := ct.Labels[deploy.LabelRelease]
		out[id] = append(out[id], strings.TrimPrefix(ct.Names[0], "/"))
	}
	return out, nil
}

// Settle: nothing on Docker goes on without its deployer.
func (DockerSite) Settle(context.Context, string) {}
