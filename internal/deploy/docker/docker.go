// Package docker is the deploy target for one Docker host, reached through
// the Docker Engine API with Docker's own Go client (DOCKER_HOST: unix
// socket, tcp with TLS, or ssh).
//
// Per environment ENV it keeps, on the engine:
//
//   - network modelship-ENV, on which releases and the gateway talk;
//   - container modelship-ENV-gateway: `modelship gateway`, publishing the
//     environment's port, the stable endpoint traffic is switched at; its
//     state lives in volume modelship-ENV-gateway;
//   - one container per release, modelship-ENV-RELEASE, labelled with the
//     release's facts (image, digests, git SHA, who, when), with the health
//     check of its image's modelship.healthcheck label (see Healthcheck);
//   - one never-started container per finished release,
//     modelship-ENV-RELEASE-record, whose labels hold the release's
//     outcome, so the history outlives the release's container and cannot
//     drift from what the engine holds;
//   - while a deploy runs, the container modelship-ENV-lock running
//     `modelship lock-hold`: container names are unique on an engine and
//     created atomically, so two deploys (from any machine) cannot both
//     hold it; it runs only while its deployer renews it (SIGUSR1 every
//     quarter of the lease), so the lock of a killed deployer is free
//     within the lease (a minute) and is taken over by container id.
//
// Releases beyond the environment's keep-releases are pruned after each
// deploy (Prune): their records and stopped containers, and their images
// when nothing kept uses them, so that old multi-GB serving images do not
// fill the disk.
//
// The gateway runs the modelship binary of the first image deployed to the
// environment, tagged modelship-gateway:ENV so that it stays on disk
// whatever happens to releases; its admin socket is inside its container and
// is used with `docker exec`, so nothing but the public port is exposed.
package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
	"github.com/docker/go-connections/tlsconfig"

	"github.com/modelship/modelship/internal/deploy"
	"github.com/modelship/modelship/internal/gateway"
	"github.com/modelship/modelship/internal/registryauth"
	"github.com/modelship/modelship/serving"
)

// Labels of the objects the target creates, beside the release's own.
const (
	LabelRole   = "modelship.role" // release, gateway, record, lock
	LabelBinary = serving.LabelBinary
	LabelHolder = "modelship.lock-holder" // JSON deploy.Holder

	roleRelease = "release"
	roleGateway = "gateway"
	roleRecord  = "record"
	roleLock    = "lock"

	// ServePort is the port `modelship serve` listens on inside a release.
	ServePort = serving.Port
	// ShmSize is a tensor-parallel release's /dev/shm (Docker's default is
	// 64 MiB; NCCL between the workers needs far more). vLLM's docs run
	// its image with --ipc=host; a private shm of this size keeps the
	// container's IPC namespace its own.
	ShmSize = 16 << 30
	// adminSocket is the gateway's admin socket inside its container.
	adminSocket = "unix:///run/modelship/gateway.sock"
)

// Options configure a Target.
type Options struct {
	// Host is DOCKER_HOST (unix://, tcp://, ssh://); "" reads the
	// environment (DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH).
	Host string
	// TLSVerify and CertPath are DOCKER_TLS_VERIFY and DOCKER_CERT_PATH
	// for a tcp Host given here (with Host "", the environment's). CertPath
	// holds ca.pem, cert.pem and key.pem: TLS with that client
	// certificate; TLSVerify also checks the engine's certificate against
	// ca.pem (without it, as `docker --tls`, the engine is not
	// authenticated). TLSVerify needs CertPath.
	TLSVerify bool
	CertPath  string
	// AllowPlaintext allows a tcp host without TLS. Otherwise it is
	// refused: whoever can reach the port runs containers as root on the
	// host, and sees the secrets a deploy hands to its release.
	AllowPlaintext bool
	// StopTimeout is how long a release gets to drain after SIGTERM.
	StopTimeout time.Duration
	// SwitchReadyTimeout bounds the gateway's own /ready check at a switch.
	SwitchReadyTimeout time.Duration
	// Credentials are sent with every pull from a registry they name
	// (X-Registry-Auth); nil pulls anonymously.
	Credentials *registryauth.Store
	// Out receives plain-language notes (a gateway moved to a new port).
	Out io.Writer
	// ReconnectFor is how long a connection to an engine that does not
	// answer is tried again (its daemon restarting); default
	// DefaultReconnectFor.
	ReconnectFor time.Duration
}

// Target deploys to one Docker engine.
type Target struct {
	cli  *client.Client
	host string
	// remote: the engine is on another machine (tcp, ssh). Releases
	// publish on that machine's loopback only, out of this process's
	// reach: their /ready is asked through the gateway (ProbeReady).
	remote bool
	opt    Options
	// answered: a connection to the engine was made (see reconnecting).
	answered atomic.Bool
}

// New connects to the engine (lazily: nothing is sent until the first call)
// and negotiates the API version, so older engines (20.10, API 1.41) work.
func New(opt Options) (*Target, error) {
	if opt.StopTimeout == 0 {
		opt.StopTimeout = 30 * time.Second
	}
	if opt.SwitchReadyTimeout == 0 {
		opt.SwitchReadyTimeout = 30 * time.Second
	}
	host := opt.Host
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if host == "" {
		host = os.Getenv(client.EnvOverrideHost)
	}
	if host == "" {
		host = client.DefaultDockerHost
	}
	u, err := url.Parse(host)
	if err != nil || u.Scheme == "" {
		return nil, fmt.Errorf("docker host %q: expected unix://PATH, tcp://HOST:PORT or ssh://[USER@]HOST", host)
	}
	t := &Target{host: u.Redacted(), opt: opt}
	switch u.Scheme {
	case "unix", "npipe":
		if opt.Host != "" {
			opts = append(opts, client.WithHost(host))
		}
		if u.Scheme == "unix" {
			opts = append(opts, client.WithDialContext(t.reconnecting(func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", u.Path)
			})))
		}
	case "tcp":
		tlsOpt, err := tcpTLS(u.Redacted(), opt)
		if err != nil {
			return nil, err
		}
		if opt.Host != "" {
			opts = append(opts, client.WithHost(host))
		}
		if tlsOpt != nil {
			opts = append(opts, tlsOpt)
		}
		opts = append(opts, client.WithDialContext(t.reconnecting(func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext(ctx, "tcp", u.Host)
		})))
		t.remote = true
	case "ssh":
		dial, err := sshDialer(u)
		if err != nil {
			return nil, err
		}
		opts = append(opts, client.WithHost("http://docker.example.com"), client.WithDialContext(t.reconnecting(dial)))
		t.remote = true
	default:
		return nil, fmt.Errorf("docker host %q: scheme %s is not supported (unix, tcp, ssh)", u.Redacted(), u.Scheme)
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker host %s: %w", u.Redacted(), err)
	}
	t.cli = cli
	return t, nil
}

// tcpTLS is the client option for a tcp host's TLS (nil: plaintext,
// allowed only by AllowPlaintext). With Host "" the environment's
// DOCKER_CERT_PATH and DOCKER_TLS_VERIFY count as CertPath and TLSVerify.
func tcpTLS(host string, opt Options) (client.Opt, error) {
	certPath, verify := opt.CertPath, opt.TLSVerify
	if opt.Host == "" {
		if certPath == "" {
			certPath = os.Getenv(client.EnvOverrideCertPath)
		}
		verify = verify || os.Getenv(client.EnvTLSVerify) != ""
	}
	if certPath == "" {
		switch {
		case verify:
			return nil, fmt.Errorf("docker host %s: tls-verify needs cert-path, a directory with ca.pem, cert.pem and key.pem", host)
		case !opt.AllowPlaintext:
			return nil, fmt.Errorf("docker host %s: plaintext TCP refused: whoever reaches the port runs containers as root there and sees the secrets a deploy sends; give cert-path (and tls-verify: true), use ssh://, or set allow-plaintext: true", host)
		}
		return nil, nil
	}
	files := []string{filepath.Join(certPath, "ca.pem"), filepath.Join(certPath, "cert.pem"), filepath.Join(certPath, "key.pem")}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("docker host %s: cert-path: %w (expected ca.pem, cert.pem and key.pem)", host, err)
		}
	}
	cfg, err := tlsconfig.Client(tlsconfig.Options{CAFile: files[0], CertFile: files[1], KeyFile: files[2],
		ExclusiveRootPools: true, InsecureSkipVerify: !verify})
	if err != nil {
		return nil, fmt.Errorf("docker host %s: cert-path %s: %w", host, certPath, err)
	}
	return func(c *client.Client) error {
		tr, ok := c.HTTPClient().Transport.(*http.Transport) // the client's own transport, shared
		if !ok {
			return fmt.Errorf("docker host %s: cannot apply TLS to transport %T", host, c.HTTPClient().Transport)
		}
		tr.TLSClientConfig = cfg
		return nil
	}, nil
}

// Client is the engine client, for tests and tools.
func (t *Target) Client() *client.Client { return t.cli }

// Close releases the client's connections.
func (t *Target) Close() error { return t.cli.Close() }

// Describe names the engine.
func (t *Target) Describe() string { return "docker " + t.host }

// Ping checks the engine answers, with a clear error when it does not.
func (t *Target) Ping(ctx context.Context) error {
	_, err := t.cli.Ping(ctx)
	return t.wrap(err, "reaching the engine")
}

// wrap turns connection failures into deploy.ErrUnreachable errors naming
// the host.
func (t *Target) wrap(err error, what string) error {
	if err == nil {
		return nil
	}
	if client.IsErrConnectionFailed(err) || isDialError(err) {
		return fmt.Errorf("%w: docker host %s does not answer (%s): %v", deploy.ErrUnreachable, t.host, what, err)
	}
	return fmt.Errorf("docker host %s: %s: %w", t.host, what, err)
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT)
}

// Names of the engine objects of an environment.
func networkName(env string) string          { return "modelship-" + env }
func gatewayName(env string) string          { return "modelship-" + env + "-gateway" }
func gatewayTag(env string) string           { return "modelship-gateway:" + env }
func lockName(env string) string             { return "modelship-" + env + "-lock" }
func releaseName(env, release string) string { return "modelship-" + env + "-" + release }
func recordName(env, release string) string  { return "modelship-" + env + "-" + release + "-record" }

// Image returns ref's details, pulling it when the engine lacks it.
func (t *Target) Image(ctx context.Context, ref string) (*deploy.ImageInfo, error) {
	if _, err := reference.ParseAnyReference(ref); err != nil || strings.TrimSpace(ref) == "" {
		return nil, fmt.Errorf("image reference %q is not valid: expected NAME[:TAG] or NAME@sha256:DIGEST", ref)
	}
	info := &deploy.ImageInfo{Ref: ref}
	ins, err := t.cli.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		if perr := t.pull(ctx, ref); perr != nil {
			return nil, fmt.Errorf("image %s is not on docker host %s and pulling it failed: %v", ref, t.host, perr)
		}
		info.Pulled = true
		ins, err = t.cli.ImageInspect(ctx, ref)
	}
	if err != nil {
		return nil, t.wrap(err, "inspecting image "+ref)
	}
	info.ID = ins.ID
	if len(ins.RepoDigests) > 0 {
		info.RepoDigest = ins.RepoDigests[0]
	}
	if ins.Config != nil {
		info.Labels = ins.Config.Labels
		info.Entrypoint = ins.Config.Entrypoint
		info.Cmd = ins.Config.Cmd
	}
	return info, nil
}

// pull pulls ref with the registry's credentials when there are some; a
// registry's refusal says which registry and whether credentials were sent.
func (t *Target) pull(ctx context.Context, ref string) error {
	var opt image.PullOptions
	cred, ok := t.opt.Credentials.For(ref)
	var with *registryauth.Credential
	if ok {
		opt.RegistryAuth, with = cred.Header(), &cred
	}
	return registryauth.Refused(ref, t.pullWith(ctx, ref, opt), with)
}

func (t *Target) pullWith(ctx context.Context, ref string, opt image.PullOptions) error {
	rc, err := t.cli.ImagePull(ctx, ref, opt)
	if err != nil {
		return t.wrap(err, "pulling "+ref)
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var m struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}

// Lock takes the environment's lock: the container modelship-ENV-lock,
// running `modelship lock-hold` (the image's own binary) for the
// holder's TTL after each renewal. Its name makes it exclusive; it runs
// while the holder renews it, so a lock whose container has exited (or
// whose holder's process on this machine is gone) is stale and removed by
// its container id, never by name: of two deploys taking a stale lock
// over, one creates the new container and the other is told who holds it.
func (t *Target) Lock(ctx context.Context, env string, h deploy.Holder, img *deploy.ImageInfo) (deploy.Lease, error) {
	bin, err := binaryOf(img)
	if err != nil {
		return nil, err
	}
	hj, _ := json.Marshal(h)
	name := lockName(env)
	for attempt := 0; ; attempt++ {
		if attempt == 8 {
			return nil, fmt.Errorf("taking the lock of %s: it keeps changing hands; try again", env)
		}
		created, err := t.cli.ContainerCreate(ctx, &container.Config{
			Image: img.ID, Entrypoint: []string{bin, "lock-hold", "--ttl", h.LeaseTTL().String()}, Cmd: []string{},
			Labels: map[string]string{LabelRole: roleLock, deploy.LabelEnv: env, LabelHolder: string(hj)},
		}, &container.HostConfig{NetworkMode: "none"}, nil, nil, name)
		if err == nil {
			l := &lease{t: t, env: env, id: created.ID}
			if err := t.cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				defer cancel()
				_ = l.Release(rctx)
				return nil, t.wrap(err, "starting the lock of "+env)
			}
			return l, nil
		}
		if !cerrdefs.IsConflict(err) {
			return nil, t.wrap(err, "taking the lock of "+env)
		}
		held, ins, err := t.lockState(ctx, env)
		if err != nil {
			return nil, err
		}
		if ins == nil {
			// Released meanwhile, or another deploy's create holds the
			// name but has not finished: look again in a moment.
			if err := sleepCtx(ctx, time.Duration(attempt+1)*100*time.Millisecond); err != nil {
				return nil, err
			}
			continue
		}
		if !lockStale(held, ins) {
			return nil, &deploy.LockedError{Env: env, Holder: held, Renewed: lockRenewed(ins)}
		}
		if err := t.cli.ContainerRemove(ctx, ins.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return nil, t.wrap(err, "removing the stale lock of "+env)
		}
	}
}

// lockState reads the lock container (nil when there is none).
func (t *Target) lockState(ctx context.Context, env string) (deploy.Holder, *container.InspectResponse, error) {
	var held deploy.Holder
	ins, err := t.cli.ContainerInspect(ctx, lockName(env))
	if cerrdefs.IsNotFound(err) {
		return held, nil, nil
	}
	if err != nil {
		return held, nil, t.wrap(err, "reading the lock of "+env)
	}
	if ins.Config != nil {
		_ = json.Unmarshal([]byte(ins.Config.Labels[LabelHolder]), &held)
	}
	return held, &ins, nil
}

// lockStale: the lock container no longer runs (its lease expired, or it
// was never started and is older than a start takes), or the holder's
// process on this machine is gone.
func lockStale(h deploy.Holder, ins *container.InspectResponse) bool {
	if ins.State != nil && !ins.State.Running {
		created, _ := time.Parse(time.RFC3339Nano, ins.Created)
		return ins.State.Status != "created" || time.Since(created) > 30*time.Second
	}
	return h.Stale(time.Now()) // running: renewed; only a dead local process makes it stale
}

// lockRenewed is the last time the lock container was known alive.
func lockRenewed(ins *container.InspectResponse) time.Time {
	if ins.State != nil && ins.State.Running {
		return time.Now()
	}
	return time.Time{}
}

// BreakLock removes the environment's lock when its container no longer
// runs (deploy.LockBreaker).
func (t *Target) BreakLock(ctx context.Context, env string) (*deploy.Holder, error) {
	held, ins, err := t.lockState(ctx, env)
	if err != nil || ins == nil {
		return nil, err
	}
	if !lockStale(held, ins) {
		return nil, &deploy.LockedError{Env: env, Holder: held, Renewed: lockRenewed(ins)}
	}
	if err := t.cli.ContainerRemove(ctx, ins.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return nil, t.wrap(err, "removing the lock of "+env)
	}
	return &held, nil
}

// lease is a held Docker lock: its container, by id.
type lease struct {
	t   *Target
	env string
	id  string
}

// Renew signals the lock's process (SIGUSR1), which extends it.
func (l *lease) Renew(ctx context.Context) error {
	err := l.t.cli.ContainerKill(ctx, l.id, "USR1")
	if cerrdefs.IsNotFound(err) || (err != nil && strings.Contains(err.Error(), "is not running")) {
		return fmt.Errorf("%w: the lock container of %s is gone or stopped (its lease ran out)", deploy.ErrLockLost, l.env)
	}
	return l.t.wrap(err, "renewing the lock of "+l.env)
}

// Release removes the lock's container, by id: a lock someone else took
// over is left alone.
func (l *lease) Release(ctx context.Context) error {
	err := l.t.cli.ContainerRemove(ctx, l.id, container.RemoveOptions{Force: true})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	return l.t.wrap(err, "releasing the lock of "+l.env)
}

// Router creates the environment's network and gateway when missing and
// starts the gateway when it is stopped.
func (t *Target) Router(ctx context.Context, spec deploy.RouterSpec, img *deploy.ImageInfo) error {
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
		if err := t.cli.ContainerStart(ctx, name, container.StartOptions{}); err != nil {
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
	if err := t.cli.ContainerStart(ctx, name, container.StartOptions{}); err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = t.cli.ContainerRemove(rctx, name, container.RemoveOptions{Force: true}) // the state volume stays
		return t.portError(err, spec.Port, "starting the gateway "+name)
	}
	return t.waitGateway(ctx, spec.Env)
}

func (t *Target) logf(format string, a ...any) {
	if t.opt.Out != nil {
		fmt.Fprintf(t.opt.Out, format+"\n", a...)
	}
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
	name := gatewayName(env)
	ins, err := t.cli.ContainerInspect(ctx, name)
	if err != nil {
		return nil, nil, 0, t.wrap(err, "inspecting the gateway "+name)
	}
	bin := ins.Config.Labels[LabelBinary]
	return t.exec(ctx, name, append([]string{bin, "gateway", sub, "--admin", adminSocket}, args...))
}

func (t *Target) exec(ctx context.Context, ctr string, cmd []string) (stdout, stderr []byte, code int, err error) {
	ex, err := t.cli.ContainerExecCreate(ctx, ctr, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return nil, nil, 0, t.wrap(err, "exec in "+ctr)
	}
	att, err := t.cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return nil, nil, 0, t.wrap(err, "exec in "+ctr)
	}
	defer att.Close()
	var o, e bytes.Buffer
	done := make(chan error, 1)
	go func() { _, err := stdcopy.StdCopy(&o, &e, att.Reader); done <- err }()
	select {
	case err = <-done:
	case <-ctx.Done():
		att.Close()
		return nil, nil, 0, ctx.Err()
	}
	if err != nil {
		return nil, nil, 0, fmt.Errorf("exec in %s: %w", ctr, err)
	}
	ei, err := t.cli.ContainerExecInspect(ctx, ex.ID)
	if err != nil {
		return nil, nil, 0, t.wrap(err, "exec in "+ctr)
	}
	return o.Bytes(), e.Bytes(), ei.ExitCode, nil
}

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
	_, err = t.cli.ContainerCreate(ctx, &container.Config{
		Image: r.ImageID, Env: append(slices.Clone(spec.Env), deploy.SecretEnv(spec.Secrets)...), Labels: labels, ExposedPorts: nat.PortSet{port: {}},
		Healthcheck: health,
	}, hc, &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		networkName(r.Env): {Aliases: []string{name}},
	}}, nil, name)
	if err != nil {
		return nil, t.wrap(err, "creating release container "+name)
	}
	if err := t.cli.ContainerStart(ctx, name, container.StartOptions{}); err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = t.cli.ContainerRemove(rctx, name, container.RemoveOptions{Force: true})
		if strings.Contains(err.Error(), "could not select device driver") {
			return nil, fmt.Errorf("docker host %s cannot give GPUs to containers (is the NVIDIA Container Toolkit installed?): %v", t.host, err)
		}
		return nil, t.wrap(err, "starting release container "+name)
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

// ProbeReady asks in's GET /ready through the gateway, for a remote host
// (deploy.ReadyProber): the release publishes on that host's loopback only.
func (t *Target) ProbeReady(ctx context.Context, in *deploy.Instance) (bool, string) {
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

// Switch points the gateway at in; the gateway checks in's /ready first.
func (t *Target) Switch(ctx context.Context, env string, in *deploy.Instance) error {
	// What the gateway points at comes back after a daemon restart or a
	// reboot, verified or not: otherwise a deployer killed between the
	// switch and verify leaves the gateway pointing at nothing.
	if _, err := t.cli.ContainerUpdate(ctx, in.ID, container.UpdateConfig{
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
	}); err != nil {
		return t.wrap(err, "setting release "+in.Release+" to restart unless stopped before the switch")
	}
	_, err := t.gatewayExec(ctx, env, "switch", "--to", in.Upstream, "--ready-timeout", t.opt.SwitchReadyTimeout.String())
	if err != nil {
		return fmt.Errorf("switching %s to release %s: %w", env, in.Release, err)
	}
	return nil
}

// WaitDrained waits until the gateway has nothing in flight to in.
func (t *Target) WaitDrained(ctx context.Context, env string, in *deploy.Instance, timeout time.Duration) error {
	_, err := t.gatewayExec(ctx, env, "wait-drained", "--upstream", in.Upstream, "--timeout", timeout.String())
	if err != nil {
		return fmt.Errorf("draining release %s: %w", in.Release, err)
	}
	return nil
}

// Stop stops the container (SIGTERM, StopTimeout to drain) and keeps it.
func (t *Target) Stop(ctx context.Context, in *deploy.Instance) error {
	secs := int(t.opt.StopTimeout / time.Second)
	err := t.cli.ContainerStop(ctx, in.ID, container.StopOptions{Timeout: &secs})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	return t.wrap(err, "stopping "+in.Name)
}

// Resume starts a stopped release again (its image is still on disk).
func (t *Target) Resume(ctx context.Context, in *deploy.Instance) (*deploy.Instance, error) {
	if err := t.cli.ContainerStart(ctx, in.ID, container.StartOptions{}); err != nil {
		return nil, t.wrap(err, "starting "+in.Name+" again")
	}
	out, err := t.Instance(ctx, in.Env, in.Release)
	if err == nil && out == nil {
		err = fmt.Errorf("release %s vanished while starting again", in.Release)
	}
	return out, err
}

// Remove deletes the container; its image stays.
func (t *Target) Remove(ctx context.Context, in *deploy.Instance) error {
	err := t.cli.ContainerRemove(ctx, in.ID, container.RemoveOptions{Force: true})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	return t.wrap(err, "removing "+in.Name)
}

// Record writes the release's outcome as a never-started container's
// labels. A release that went live is also set to restart unless stopped,
// like the gateway, so both come back after a daemon restart or a reboot
// (while the deploy watched it, it ran without restarts: a crash had to
// show).
func (t *Target) Record(ctx context.Context, r *deploy.Release) error {
	if r.Outcome == deploy.Live {
		_, err := t.cli.ContainerUpdate(ctx, releaseName(r.Env, r.ID), container.UpdateConfig{
			RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
		})
		if err != nil && !cerrdefs.IsNotFound(err) {
			return t.wrap(err, "setting release "+r.ID+" to restart unless stopped")
		}
	}
	name := recordName(r.Env, r.ID)
	if err := t.cli.ContainerRemove(ctx, name, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return t.wrap(err, "replacing record "+name)
	}
	labels := r.Labels()
	labels[LabelRole] = roleRecord
	_, err := t.cli.ContainerCreate(ctx, &container.Config{
		Image: r.ImageID, Entrypoint: []string{"/modelship-record"}, Labels: labels,
	}, &container.HostConfig{NetworkMode: "none"}, nil, nil, name)
	return t.wrap(err, "writing record "+name)
}

// Releases lists the environment's releases from records and release
// containers, marking the one the gateway serves.
func (t *Target) Releases(ctx context.Context, env string) ([]*deploy.Release, error) {
	list, err := t.cli.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", deploy.LabelEnv+"="+env))})
	if err != nil {
		return nil, t.wrap(err, "listing the containers of "+env)
	}
	byID := map[string]*deploy.Release{}
	for _, c := range list {
		role := c.Labels[LabelRole]
		if role != roleRelease && role != roleRecord {
			continue
		}
		r, err := deploy.ReleaseFromLabels(c.Labels)
		if err != nil {
			continue // not ours to judge; history lists what it can read
		}
		if prev, ok := byID[r.ID]; ok && role == roleRelease && prev.Outcome != deploy.InProgress {
			continue // the record's outcome wins
		}
		byID[r.ID] = r
	}
	var out []*deploy.Release
	for _, r := range byID {
		out = append(out, r)
	}
	deploy.SortReleases(out)
	if st, err := t.GatewayState(ctx, env); err == nil && st.Active != "" {
		for _, r := range out {
			if fmt.Sprintf("http://%s:%d", releaseName(env, r.ID), ServePort) == st.Active {
				r.Serving = true
			}
		}
	}
	return out, nil
}

// Prune deletes the dropped releases of env (deploy.Pruner): the release
// container when one is left (stopped; a running one is left alone with
// its record and reported), the record, then each dropped release's image
// by content id, without force, unless a kept release or the gateway uses
// it. The engine itself refuses to delete an image a container still
// uses (another environment's) or one with several tags; such images stay
// quietly. A release the gateway serves is never touched.
func (t *Target) Prune(ctx context.Context, env string, drop []*deploy.Release) error {
	rels, err := t.Releases(ctx, env)
	if err != nil {
		return err
	}
	dropped := map[string]bool{}
	for _, r := range drop {
		dropped[r.ID] = true
	}
	// Images that stay whatever happens: the kept releases' and the
	// gateway's (its container's image and its tag).
	keep := map[string]bool{}
	for _, r := range rels {
		if !dropped[r.ID] {
			keep[r.ImageID] = true
		}
	}
	gw := gatewayName(env)
	if ins, err := t.cli.ContainerInspect(ctx, gw); err == nil {
		keep[ins.Image] = true
	} else if !cerrdefs.IsNotFound(err) {
		return t.wrap(err, "inspecting the gateway "+gw+" (to keep its image)")
	}
	if img, err := t.cli.ImageInspect(ctx, gatewayTag(env)); err == nil {
		keep[img.ID] = true
	} else if !cerrdefs.IsNotFound(err) {
		return t.wrap(err, "inspecting the gateway image "+gatewayTag(env)+" (to keep it)")
	}
	var errs []error
	var images []string
	for _, r := range drop {
		if i := slices.IndexFunc(rels, func(x *deploy.Release) bool { return x.ID == r.ID }); i >= 0 && rels[i].Serving {
			errs = append(errs, fmt.Errorf("release %s serves %s: not pruned", r.ID, env))
			continue
		}
		if err := t.pruneContainers(ctx, env, r.ID); err != nil {
			errs = append(errs, fmt.Errorf("release %s: %w", r.ID, err))
			continue
		}
		if r.ImageID != "" && !keep[r.ImageID] && !slices.Contains(images, r.ImageID) {
			images = append(images, r.ImageID)
		}
	}
	// Images last: two dropped releases may share one.
	for _, id := range images {
		_, err := t.cli.ImageRemove(ctx, id, image.RemoveOptions{Force: false, PruneChildren: false})
		if err == nil || cerrdefs.IsNotFound(err) || cerrdefs.IsConflict(err) {
			continue // removed, already gone, or still used / tagged elsewhere
		}
		errs = append(errs, t.wrap(err, "removing image "+id))
	}
	return errors.Join(errs...)
}

// pruneContainers removes a release's container (unless it runs) and
// then its record, so that the release is not half there: with the record
// gone, a left container would show the release in progress again.
func (t *Target) pruneContainers(ctx context.Context, env, release string) error {
	name := releaseName(env, release)
	ins, err := t.cli.ContainerInspect(ctx, name)
	switch {
	case cerrdefs.IsNotFound(err):
	case err != nil:
		return t.wrap(err, "inspecting "+name)
	case ins.State != nil && (ins.State.Running || ins.State.Restarting):
		return fmt.Errorf("its container %s is running: left it and its record (stop it, then the next deploy prunes it)", name)
	default:
		// No force: a container started meanwhile is refused, not killed.
		if err := t.cli.ContainerRemove(ctx, name, container.RemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			return t.wrap(err, "removing "+name)
		}
	}
	rec := recordName(env, release)
	if err := t.cli.ContainerRemove(ctx, rec, container.RemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
		return t.wrap(err, "removing record "+rec)
	}
	return nil
}

// Destroy removes everything the target created for env (tests, teardown).
func (t *Target) Destroy(ctx context.Context, env string) error {
	list, err := t.cli.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", deploy.LabelEnv+"="+env))})
	if err != nil {
		return t.wrap(err, "listing the containers of "+env)
	}
	for _, c := range list {
		if err := t.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return t.wrap(err, "removing "+c.ID)
		}
	}
	_ = t.cli.NetworkRemove(ctx, networkName(env))
	_ = t.cli.VolumeRemove(ctx, gatewayName(env), true)
	// Untag only: the image stays while other tags or releases use it.
	_, _ = t.cli.ImageRemove(ctx, gatewayTag(env), image.RemoveOptions{})
	return nil
}

var (
	_ deploy.Target = (*Target)(nil)
	_ deploy.Pruner = (*Target)(nil)
)

// sleepCtx waits d, or returns ctx's error if it ends first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
