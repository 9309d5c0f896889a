package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/modelship/modelship/internal/deploy"
)

// Router creates the environment's network and gateway when missing and
// starts the gateway when it is stopped; with Options.Attach, the gateway
// joins its GatewayNetworks.
func (t *Target) Router(ctx context.Context, spec deploy.RouterSpec, img *deploy.ImageInfo) error {
	if err := t.router(ctx, spec, img); err != nil {
		return err
	}
	if t.opt.Attach == nil {
		return nil
	}
	return t.join(ctx, gatewayName(spec.Env), t.opt.Attach.GatewayNetworks)
}

func (t *Target) router(ctx context.Context, spec deploy.RouterSpec, img *deploy.ImageInfo) error {
	net := networkName(spec.Env)
	if _, err := t.cli.NetworkInspect(ctx, net, network.InspectOptions{}); cerrdefs.IsNotFound(err) {
		if _, err := t.cli.NetworkCreate(ctx, net, network.CreateOptions{
			Driver: "bridge", Labels: map[string]string{deploy.LabelEnv: spec.Env},
		}); err != nil && !cerrdefs.IsConflict(err) {
			return t.wrap(err, "creating network "+net)
		}
	} else if err != nil {
		return t.wrap(err, "inspecting network "+net)
	}
	name := gatewayName(spec.Env)
	ins, err := t.cli.ContainerInspect(ctx, name)
	switch {
	case err == nil && gatewayBinding(ins) != (nat.PortBinding{HostIP: spec.PublishIP, HostPort: strconv.Itoa(spec.Port)}):
		return t.moveGateway(ctx, spec, img, gatewayBinding(ins))
	case err == nil:
		if ins.State != nil && ins.State.Running {
			return nil
		}
		if err := t.startContainer(ctx, name); err != nil {
			return t.portError(err, spec.Port, "starting the gateway "+name)
		}
		return t.waitGateway(ctx, spec.Env)
	case !cerrdefs.IsNotFound(err):
		return t.wrap(err, "inspecting the gateway "+name)
	}
	return t.createGateway(ctx, spec, img)
}

// gatewayBinding is the host address the gateway container publishes.
func gatewayBinding(ins container.InspectResponse) nat.PortBinding {
	if ins.HostConfig != nil {
		if b := ins.HostConfig.PortBindings[nat.Port(strconv.Itoa(ServePort)+"/tcp")]; len(b) > 0 {
			return b[0]
		}
	}
	return nat.PortBinding{}
}

// moveGateway puts the environment's gateway on the address the config
// now gives (environments.ENV.port changed): the old one steps aside
// under another name, a new one starts on the new address with the same
// state volume (so the same active release), and the old one is removed
// once the new one answers. If the new one cannot start (its port taken),
// the old one takes its name back and keeps serving where it was.
func (t *Target) moveGateway(ctx context.Context, spec deploy.RouterSpec, img *deploy.ImageInfo, was nat.PortBinding) error {
	name := gatewayName(spec.Env)
	aside := name + "-moving"
	t.logf("gateway of %s publishes %s:%s, the config says %s:%d: moving it (the active release stays; clients of the old port must move)",
		spec.Env, was.HostIP, was.HostPort, spec.PublishIP, spec.Port)
	_ = t.cli.ContainerRemove(ctx, aside, container.RemoveOptions{Force: true}) // left by an interrupted move
	if err := t.cli.ContainerRename(ctx, name, aside); err != nil {
		return t.wrap(err, "renaming the gateway "+name+" aside")
	}
	if err := t.createGateway(ctx, spec, img); err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if rerr := t.cli.ContainerRename(rctx, aside, name); rerr != nil {
			return fmt.Errorf("%w; and giving the old gateway its name back failed: %v (it still serves on port %s as %s)", err, rerr, was.HostPort, aside)
		}
		return fmt.Errorf("%w; the gateway stays on port %s", err, was.HostPort)
	}
	if err := t.cli.ContainerRemove(ctx, aside, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return t.wrap(err, "removing the old gateway "+aside)
	}
	return nil
}

// createGateway creates and starts the environment's gateway on spec's
// address, with its state volume (kept from an earlier gateway).
func (t *Target) createGateway(ctx context.Context, spec deploy.RouterSpec, img *deploy.ImageInfo) error {
	name := gatewayName(spec.Env)
	net := networkName(spec.Env)
	bin, err := binaryOf(img)
	if err != nil {
		return err
	}
	tag := gatewayTag(spec.Env)
	if err := t.cli.ImageTag(ctx, img.ID, tag); err != nil {
		return t.wrap(err, "tagging the gateway image "+tag)
	}
	port := nat.Port(strconv.Itoa(ServePort) + "/tcp")
	_, err = t.cli.ContainerCreate(ctx, &container.Config{
		Image:        tag,
		Entrypoint:   []string{bin, "gateway", "--listen", ":" + strconv.Itoa(ServePort), "--admin", adminSocket, "--state", "/var/lib/modelship/gateway.json"},
		Cmd:          []string{},
		ExposedPorts: nat.PortSet{port: {}},
		Labels:       map[string]string{LabelRole: roleGateway, deploy.LabelEnv: spec.Env, LabelBinary: bin},
	}, &container.HostConfig{
		NetworkMode:   container.NetworkMode(net),
		PortBindings:  nat.PortMap{port: {{HostIP: spec.PublishIP, HostPort: strconv.Itoa(spec.Port)}}},
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
		Mounts:        []mount.Mount{{Type: mount.TypeVolume, Source: name, Target: "/var/lib/modelship"}},
	}, nil, nil, name)
	if err != nil {
		return t.wrap(err, "creating the gateway "+name)
	}
	if err := t.startContainer(ctx, name); err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = t.cli.ContainerRemove(rctx, name, container.RemoveOptions{Force: true}) // the state volume stays
		return t.portError(err, spec.Port, "starting the gateway "+name)
	}
	return t.waitGateway(ctx, spec.Env)
}

func (t *Target) portError(err error, port int, what string) error {
	msg := err.Error()
	if strings.Contains(msg, "address already in use") || strings.Contains(msg, "port is already allocated") {
		return fmt.Errorf("port %d on docker host %s is already in use by another program; free it or set environments.<env>.port (engine said: %v)", port, t.host, err)
	}
	return t.wrap(err, what)
}

// waitGateway waits until the gateway's admin API answers.
func (t *Target) waitGateway(ctx context.Context, env string) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := t.GatewayState(ctx, env)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("gateway of %s did not answer: %w", env, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// binaryOf finds the modelship binary of a serving image: the first word
// of its entrypoint (`modelship serve`), or the label modelship.binary.
func binaryOf(img *deploy.ImageInfo) (string, error) {
	if b := img.Labels[LabelBinary]; b != "" {
		return b, nil
	}
	if len(img.Entrypoint) > 0 && strings.Contains(filepath.Base(img.Entrypoint[0]), "modelship") {
		return img.Entrypoint[0], nil
	}
	return "", fmt.Errorf("image %s: cannot find the modelship binary (it runs the gateway and the GPU probe): its entrypoint is %q; expected [/PATH/modelship serve] or a label %s=/PATH/modelship",
		img.Ref, img.Entrypoint, LabelBinary)
}

// GatewayState is what `modelship gateway state` in the environment's
// gateway container says (the fields a deploy reads).
type GatewayState struct {
	Active       string `json:"active"`
	Previous     string `json:"previous"`
	PID          int    `json:"pid"`
	BinarySHA256 string `json:"binary_sha256"` // "" from a gateway older than upgrades in place
	// StartedAt is when the gateway process started (a restart, or an
	// upgrade in place, moves it).
	StartedAt time.Time `json:"started_at"`
}

func (t *Target) GatewayState(ctx context.Context, env string) (*GatewayState, error) {
	out, err := t.gatewayExec(ctx, env, "state")
	if err != nil {
		return nil, err
	}
	var st GatewayState
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("gateway state: %v", err)
	}
	return &st, nil
}

// gatewayExec runs `modelship gateway SUB --admin SOCK ARGS...` in the
// environment's gateway and returns its stdout; a non-zero exit is an error
// carrying its stderr.
func (t *Target) gatewayExec(ctx context.Context, env, sub string, args ...string) ([]byte, error) {
	stdout, stderr, code, err := t.gatewayRun(ctx, env, sub, args...)
	if err != nil {
		return nil, err
	}
	if code != 0 {
		return nil, fmt.Errorf("gateway %s (exit %d): %s", sub, code, strings.TrimSpace(string(stderr)))
	}
	return stdout, nil
}

// gatewayRun runs `modelship gateway SUB ARGS` in the gateway container.
func (t *Target) gatewayRun(ctx context.Context, env, sub string, args ...string) (stdout, stderr []byte, code int, err error) {
	if t.gatewayRunner != nil {
		return t.gatewayRunner(ctx, env, sub, args...)
	}
	name := gatewayName(env)
	ins, err := t.cli.ContainerInspect(ctx, name)
	if err != nil {
		return nil, nil, 0, t.wrap(err, "inspecting the gateway "+name)
	}
	bin := ins.Config.Labels[LabelBinary]
	return t.exec(ctx, name, append([]string{bin, "gateway", sub, "--admin", adminSocket}, args...))
}
