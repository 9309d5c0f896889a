package docker

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
)

// Attach is what the containers of a release and the environment's
// gateway carry beyond the docker target's own settings: the service of
// a docker compose project that the releases replace (package
// internal/deploy/compose builds it). The zero Attach changes nothing.
type Attach struct {
	// Labels go on every release container, under the release's own
	// (modelship's labels win).
	Labels map[string]string
	// Networks are joined by every release container (besides the
	// environment's network), with these aliases.
	Networks []NetworkAttach
	// GatewayNetworks are joined by the gateway: it answers the aliases
	// there (the compose service's name), so the project's clients reach
	// the active release through it and see every switch.
	GatewayNetworks []NetworkAttach
	// Mounts are added to every release container.
	Mounts []mount.Mount
	// Env (KEY=VALUE) is set in every release container, except the keys
	// the release sets itself (the release's environment wins).
	Env []string
	// DeviceRequests go on every release container. Where the deploy
	// attaches GPUs of its own choosing, those replace the requests for
	// capability "gpu" here.
	DeviceRequests []container.DeviceRequest
}

// NetworkAttach is a network a container joins, by its engine name, and
// the names it answers to there.
type NetworkAttach struct {
	Name    string
	Aliases []string
}

// release applies a to a release container's config and host config
// (whose Env, Labels and DeviceRequests the target has set).
func (a *Attach) release(cfg *container.Config, hc *container.HostConfig) {
	if a == nil {
		return
	}
	labels := maps.Clone(a.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, cfg.Labels)
	cfg.Labels = labels
	own := map[string]bool{}
	for _, kv := range cfg.Env {
		k, _, _ := strings.Cut(kv, "=")
		own[k] = true
	}
	var env []string
	for _, kv := range a.Env {
		if k, _, _ := strings.Cut(kv, "="); !own[k] {
			env = append(env, kv)
		}
	}
	cfg.Env = append(env, cfg.Env...)
	hc.Mounts = append(hc.Mounts, a.Mounts...)
	var devs []container.DeviceRequest
	for _, d := range a.DeviceRequests {
		if len(hc.DeviceRequests) > 0 && slices.ContainsFunc(d.Capabilities, func(c []string) bool { return slices.Contains(c, "gpu") }) {
			continue // the GPUs the deploy chose
		}
		devs = append(devs, d)
	}
	hc.DeviceRequests = append(devs, hc.DeviceRequests...)
}

// networks are the networks release containers join (none for nil).
func (a *Attach) networks() []NetworkAttach {
	if a == nil {
		return nil
	}
	return a.Networks
}

// join connects container name to nets (those it is not on yet). A
// network that does not exist is an error saying whose it is.
func (t *Target) join(ctx context.Context, name string, nets []NetworkAttach) error {
	if len(nets) == 0 {
		return nil
	}
	ins, err := t.cli.ContainerInspect(ctx, name)
	if err != nil {
		return t.wrap(err, "inspecting "+name)
	}
	for _, n := range nets {
		if ins.NetworkSettings != nil && ins.NetworkSettings.Networks[n.Name] != nil {
			continue
		}
		err := t.cli.NetworkConnect(ctx, n.Name, name, &network.EndpointSettings{Aliases: n.Aliases})
		if cerrdefs.IsNotFound(err) {
			if _, ierr := t.cli.NetworkInspect(ctx, n.Name, network.InspectOptions{}); cerrdefs.IsNotFound(ierr) {
				return fmt.Errorf("network %s does not exist on docker host %s: start the compose project's other services first (docker compose up -d SERVICE...), which creates it", n.Name, t.host)
			}
		}
		if err != nil {
			return t.wrap(err, "connecting "+name+" to network "+n.Name)
		}
	}
	return nil
}
