package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/gateway"
	"github.com/modelship/modelship/serving"
)

// Start creates and starts a release's container on the environment's
// network, its port published on an ephemeral host port for readiness
// probes, GPUs attached by UUID (--gpus device=UUID).
func (t *Target) Start(ctx context.Context, spec *deploy.Spec) (*deploy.Instance, error) {
	r := spec.Release
	name := releaseName(r.Env, r.ID)
	port := nat.Port(strconv.Itoa(ServePort) + "/tcp")
	labels := r.Labels()
	labels[LabelRole] = roleRelease
	hc := &container.HostConfig{
		NetworkMode:  container.NetworkMode(networkName(r.Env)),
		PortBindings: nat.PortMap{port: {{HostIP: "127.0.0.1", HostPort: ""}}}, // candidates: the engine host's loopback only
		// No restart while the deploy watches it: a crash must show.
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
	}
	if len(spec.GPUs) > 0 {
		hc.DeviceRequests = DeviceRequests(spec.GPUs)
	}
	if spec.SharedMemory {
		hc.IpcMode = container.IPCModePrivate
		hc.ShmSize = ShmSize
	}
	img, err := t.cli.ImageInspect(ctx, r.ImageID)
	if err != nil {
		return nil, t.wrap(err, "inspecting image "+r.ImageID)
	}
	var imgLabels map[string]string
	if img.Config != nil {
		imgLabels = img.Config.Labels
	}
	health, err := Healthcheck(imgLabels, spec.LoadBudget)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", r.Image, err)
	}
	cfg := &container.Config{
		Image: r.ImageID, Env: append(slices.Clone(spec.Env), deploy.SecretEnv(spec.Secrets)...), Labels: labels, ExposedPorts: nat.PortSet{port: {}},
		Healthcheck: health,
	}
	t.opt.Attach.release(cfg, hc)
	_, err = t.cli.ContainerCreate(ctx, cfg, hc, &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		networkName(r.Env): {Aliases: []string{name}},
	}}, nil, name)
	if err != nil {
		return nil, t.wrap(err, "creating release container "+name)
	}
	err = t.join(ctx, name, t.opt.Attach.networks())
	if err == nil {
		if err = t.startContainer(ctx, name); err != nil && strings.Contains(err.Error(), "could not select device driver") {
			err = fmt.Errorf("docker host %s cannot give GPUs to containers (is the NVIDIA Container Toolkit installed?): %v", t.host, err)
		} else if err != nil {
			err = t.wrap(err, "starting release container "+name)
		}
	}
	if err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = t.cli.ContainerRemove(rctx, name, container.RemoveOptions{Force: true})
		return nil, err
	}
	return t.Instance(ctx, r.Env, r.ID)
}

// LabelHealthcheck is the serving image's label holding its health check
// command as a JSON array in Docker's HEALTHCHECK exec form, e.g.
// ["CMD","/usr/local/bin/modelship","smoke","--endpoint","http://127.0.0.1:8000"].
// Images built with Dagger v0.19 cannot carry a HEALTHCHECK in their
// config, so the target sets it on each release container from this label.
const LabelHealthcheck = serving.LabelHealthcheck

// Health check timings of a release container: probe every 10 s, a probe
// taking over 5 s fails, unhealthy after 3 failures in a row.
const (
	HealthInterval = 10 * time.Second
	HealthTimeout  = 5 * time.Second
	HealthRetries  = 3
)

// Healthcheck is the health check of a release container whose image has
// labels: the command of LabelHealthcheck (a JSON array starting with CMD,
// CMD-SHELL or NONE; a bare exec array gets CMD in front), run every
// HealthInterval with HealthTimeout, HealthRetries failures to be
// unhealthy, and failures not counted during loadBudget (the start
// period: weights are loading). Nil when the label is absent or blank (the
// image's own HEALTHCHECK, if any, applies); an error naming the label and
// the expected form when it is not such an array.
func Healthcheck(labels map[string]string, loadBudget time.Duration) (*container.HealthConfig, error) {
	raw := strings.TrimSpace(labels[LabelHealthcheck])
	if raw == "" {
		return nil, nil
	}
	const want = `expected a JSON array of strings such as ["CMD","/usr/local/bin/modelship","smoke","--endpoint","http://127.0.0.1:8000"]`
	var test []string
	if err := json.Unmarshal([]byte(raw), &test); err != nil {
		return nil, fmt.Errorf("label %s %q: %v; %s", LabelHealthcheck, raw, err, want)
	}
	if len(test) == 0 {
		return nil, fmt.Errorf("label %s is an empty array; %s", LabelHealthcheck, want)
	}
	switch test[0] {
	case "NONE":
		if len(test) != 1 {
			return nil, fmt.Errorf("label %s: NONE takes no command; %s", LabelHealthcheck, want)
		}
		return &container.HealthConfig{Test: test}, nil
	case "CMD", "CMD-SHELL":
	default:
		test = append([]string{"CMD"}, test...)
	}
	if len(test) < 2 || strings.TrimSpace(test[1]) == "" {
		return nil, fmt.Errorf("label %s names no command after %s; %s", LabelHealthcheck, test[0], want)
	}
	if test[0] == "CMD-SHELL" && len(test) != 2 {
		return nil, fmt.Errorf("label %s: CMD-SHELL takes one shell command string, got %d; %s", LabelHealthcheck, len(test)-1, want)
	}
	if loadBudget < 0 {
		loadBudget = 0
	}
	return &container.HealthConfig{
		Test:        test,
		Interval:    HealthInterval,
		Timeout:     HealthTimeout,
		StartPeriod: loadBudget,
		Retries:     HealthRetries,
	}, nil
}

// DeviceRequests is `--gpus device=UUID,...`.
func DeviceRequests(uuids []string) []container.DeviceRequest {
	return []container.DeviceRequest{{Driver: "nvidia", DeviceIDs: uuids, Capabilities: [][]string{{"gpu"}}}}
}

// Instance reads a release's container; nil, nil when it does not exist.
func (t *Target) Instance(ctx context.Context, env, release string) (*deploy.Instance, error) {
	name := releaseName(env, release)
	ins, err := t.cli.ContainerInspect(ctx, name)
	if cerrdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, t.wrap(err, "inspecting "+name)
	}
	in := &deploy.Instance{Release: release, Env: env, ID: ins.ID, Name: name,
		Upstream: fmt.Sprintf("http://%s:%d", name, ServePort)}
	if ins.NetworkSettings != nil {
		if b := ins.NetworkSettings.Ports[nat.Port(strconv.Itoa(ServePort)+"/tcp")]; len(b) > 0 && b[0].HostPort != "" {
			if !t.remote {
				in.URL = "http://" + net.JoinHostPort("127.0.0.1", b[0].HostPort)
			}
		}
	}
	return in, nil
}

// Status reports whether the container runs; when not, its exit code and
// last 15 log lines.
func (t *Target) Status(ctx context.Context, in *deploy.Instance) (*deploy.Status, error) {
	ins, err := t.cli.ContainerInspect(ctx, in.ID)
	if cerrdefs.IsNotFound(err) {
		return &deploy.Status{Running: false, ExitCode: -1, Logs: []string{"(the container was removed)"}}, nil
	}
	if err != nil {
		return nil, t.wrap(err, "inspecting "+in.Name)
	}
	st := &deploy.Status{Running: ins.State != nil && ins.State.Running}
	if st.Running {
		return st, nil
	}
	if ins.State != nil {
		st.ExitCode = ins.State.ExitCode
		if ins.State.Error != "" {
			st.Logs = append(st.Logs, "engine: "+ins.State.Error)
		}
	}
	st.Logs = append(st.Logs, t.lastLogs(ctx, in.ID, 15)...)
	return st, nil
}

func (t *Target) lastLogs(ctx context.Context, id string, n int) []string {
	rc, err := t.cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(n)})
	if err != nil {
		return []string{"(logs unavailable: " + err.Error() + ")"}
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := stdcopy.StdCopy(&buf, &buf, rc); err != nil && buf.Len() == 0 {
		return []string{"(logs unreadable: " + err.Error() + ")"}
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
		if l = strings.TrimRight(l, "\r"); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// Ready asks in's GET /ready (deploy.Readiness): directly when this
// process reaches it, else through the gateway (a remote host: the release
// publishes on that host's loopback only).
func (t *Target) Ready(ctx context.Context, in *deploy.Instance) (bool, string) {
	if in.URL != "" {
		return deploy.ProbeReady(ctx, in.URL)
	}
	out, stderr, _, err := t.gatewayRun(ctx, in.Env, "probe", "--upstream", in.Upstream)
	var res gateway.ProbeResult
	if err == nil {
		err = json.Unmarshal(out, &res)
	}
	if err != nil || res.Upstream == "" {
		return false, fmt.Sprintf("asking through the gateway: %v %s", err, strings.TrimSpace(string(stderr)))
	}
	return res.Ready, res.Reason
}
