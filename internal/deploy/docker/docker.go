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
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/tlsconfig"

	"github.com/modelship/modelship/internal/deploy"
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
	// Attach is what release containers and the gateway carry besides
	// the target's own settings (a compose service's networks, mounts,
	// environment, devices and labels); nil for a plain Docker target.
	Attach *Attach
}

// Target deploys to one Docker engine.
type Target struct {
	cli  *client.Client
	host string
	// remote: the engine is on another machine (tcp, ssh). Releases
	// publish on that machine's loopback only, out of this process's
	// reach: their /ready is asked through the gateway (Ready).
	remote bool
	opt    Options
	// answered: a connection to the engine was made (see reconnecting).
	answered atomic.Bool
	// binSums are the sha256 of the modelship binary of release images,
	// by image ID and path (UpgradeRouter reads a binary once).
	binSums sync.Map
	// boots are, by environment, the boot of the gateway's measurement
	// ring Samples last read (measure.Samples.Boot): another one means
	// the gateway restarted and its seqs start over.
	boots sync.Map
	// gatewayRunner, when set, answers the gateway commands instead of
	// docker exec in the gateway container: the unit tests' fake gateway.
	gatewayRunner func(ctx context.Context, env, sub string, args ...string) (stdout, stderr []byte, code int, err error)
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
	var op *net.OpError
	if client.IsErrConnectionFailed(err) || errors.As(err, &op) || refused(err) {
		return fmt.Errorf("%w: docker host %s does not answer (%s): %v", deploy.ErrUnreachable, t.host, what, err)
	}
	return fmt.Errorf("docker host %s: %s: %w", t.host, what, err)
}

// Names of the engine objects of an environment.
func networkName(env string) string          { return "modelship-" + env }
func gatewayName(env string) string          { return "modelship-" + env + "-gateway" }
func gatewayTag(env string) string           { return "modelship-gateway:" + env }
func lockName(env string) string             { return "modelship-" + env + "-lock" }
func releaseName(env, release string) string { return "modelship-" + env + "-" + release }
func recordName(env, release string) string  { return "modelship-" + env + "-" + release + "-record" }

func (t *Target) logf(format string, a ...any) {
	if t.opt.Out != nil {
		fmt.Fprintf(t.opt.Out, format+"\n", a...)
	}
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

var (
	_ deploy.Target = (*Target)(nil)
	_ deploy.Pruner = (*Target)(nil)
)

// startContainer starts a container. A daemon restarted while a container
// of the same name stopped can keep that container's network endpoint
// ("endpoint with name NAME already exists in network NET"), and then no
// container of that name starts again until the endpoint is removed: it is
// disconnected by force (what `docker network disconnect -f` does) and the
// start tried once more.
func (t *Target) startContainer(ctx context.Context, id string) error {
	err := t.cli.ContainerStart(ctx, id, container.StartOptions{})
	m := staleEndpoint.FindStringSubmatch(fmt.Sprint(err))
	if m == nil {
		return err
	}
	t.logf("the engine kept a stale network endpoint %s in network %s (left by a daemon restart): removing it", m[1], m[2])
	if derr := t.cli.NetworkDisconnect(ctx, m[2], m[1], true); derr != nil {
		return fmt.Errorf("%w (and removing the stale endpoint failed: %v)", err, derr)
	}
	return t.cli.ContainerStart(ctx, id, container.StartOptions{})
}

var staleEndpoint = regexp.MustCompile(`endpoint with name (\S+) already exists in network (\S+)`)
