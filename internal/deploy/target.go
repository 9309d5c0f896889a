package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/modelship/modelship/gpu"
)

// Target is where releases run: a Docker host (deploy/docker) or a
// Kubernetes cluster (deploy/kubernetes). It is defined here, by the
// strategies that use it, as the small interfaces each step needs
// (Starter, Stopper, Switcher, Records, Locker, Readiness); what only some
// targets do is an optional interface of its own (Planner, Pruner,
// LockBreaker, GPUProber, RouterUpgrader), asked for by type assertion.
// The command picks the implementation from the environment's target.
type Target interface {
	// Describe names the target for messages ("docker unix:///run/docker.sock").
	Describe() string
	Starter
	Stopper
	Switcher
	Records
	Locker
	Readiness
}

// Starter brings releases up: their image, their instance, its state.
type Starter interface {
	// Image makes ref available on the target (pulling it when absent) and
	// returns what the deploy needs to know about it.
	Image(ctx context.Context, ref string) (*ImageInfo, error)
	// Start creates and starts a release; Readiness.Ready then says when
	// it answers /ready.
	Start(ctx context.Context, spec *Spec) (*Instance, error)
	// Instance finds a release's instance (running or stopped); nil when
	// it is gone.
	Instance(ctx context.Context, env, release string) (*Instance, error)
	// Status reports whether the instance still runs and, when it stopped,
	// its exit code and last log lines.
	Status(ctx context.Context, in *Instance) (*Status, error)
}

// Stopper takes releases down: for a recreate, to retire the previous
// release, and to undo a failed deploy.
type Stopper interface {
	// Stop stops an instance and keeps it (and its image) for a quick restart.
	Stop(ctx context.Context, in *Instance) error
	// Resume starts a stopped instance again.
	Resume(ctx context.Context, in *Instance) (*Instance, error)
	// Remove deletes the instance; its image stays on the target.
	Remove(ctx context.Context, in *Instance) error
}

// Switcher is the environment's stable endpoint and where it sends traffic.
type Switcher interface {
	// Router makes sure the environment's stable endpoint exists (network
	// and gateway on Docker), creating it from image on first use.
	Router(ctx context.Context, env RouterSpec, image *ImageInfo) error
	// Switch sends the environment's traffic to in, atomically, once in
	// answers /ready through the router.
	Switch(ctx context.Context, env string, in *Instance) error
	// WaitDrained waits until no request is in flight to in through the router.
	WaitDrained(ctx context.Context, env string, in *Instance, timeout time.Duration) error
}

// Records are the environment's releases as the target keeps them, so
// history outlives the instances.
type Records interface {
	// Releases lists the environment's releases, oldest first; Serving
	// marks the one the router sends traffic to.
	Releases(ctx context.Context, env string) ([]*Release, error)
	// Record stores the release's final outcome with the target.
	Record(ctx context.Context, r *Release) error
}

// Locker holds the environment's deploy lock.
type Locker interface {
	// Lock takes the environment's deploy lock as a lease of holder.TTL,
	// or returns *LockedError naming the holder when another deploy has it
	// and renews it. A lock whose holder stopped renewing (killed, its
	// machine gone) is taken over, by identity: two takers cannot both win.
	Lock(ctx context.Context, env string, holder Holder, image *ImageInfo) (Lease, error)
}

// Readiness says whether an instance is ready to take traffic.
type Readiness interface {
	// Ready asks in's readiness once: true when it answers GET /ready with
	// 200 (Docker: directly, or through the gateway for a remote host;
	// Kubernetes: the rollout's state, which the pods' readiness probes on
	// /ready decide), else a short reason ("503 model: loading").
	Ready(ctx context.Context, in *Instance) (ok bool, reason string)
}

// ImageInfo is what a target knows about an image.
type ImageInfo struct {
	Ref string // as asked for
	ID  string // content digest, sha256:...
	// RepoDigest is a registry digest (repo@sha256:...) when the image came
	// from a registry; empty for images built on the host.
	RepoDigest string
	Labels     map[string]string
	// Entrypoint and Cmd of the image config.
	Entrypoint []string
	Cmd        []string
	Pulled     bool // pulled now
}

// Spec is a release to start.
type Spec struct {
	Release *Release
	// Env is extra environment (KEY=VALUE) for the serving container.
	Env []string
	// Secrets are further variables of the serving container that hold
	// secrets (name → value): Docker sets them in the container's
	// environment, Kubernetes in a Secret the pod reads. A target never
	// logs them nor puts them in a record.
	Secrets map[string]string
	// GPUs are device UUIDs to attach; empty attaches none.
	GPUs []string
	// Port is the container's serving port (8000).
	Port int
	// SharedMemory asks for a large memory-backed /dev/shm: tensor-parallel
	// workers exchange tensors through it (Docker: --ipc host is not used;
	// a private shm of ShmSize; Kubernetes: an emptyDir of medium Memory).
	SharedMemory bool
	// Engine is the engine the image runs (vllm, sim, ollama): a target
	// runs the engines that allow it as a non-root user.
	Engine string
	// LoadBudget is how long the release may take to become ready (sized
	// from the checkpoint); a target that probes by itself (Kubernetes'
	// startup probe and progress deadline) sizes its probes from it.
	LoadBudget time.Duration
}

// Instance is a running (or stopped) release.
type Instance struct {
	Release string
	Env     string
	// ID is the target's handle (a container id).
	ID string
	// Name is a human name (the container name).
	Name string
	// URL reaches the release from this process (http://127.0.0.1:PORT)
	// when it can; "" when only the target reaches it (a remote Docker
	// host's loopback, a Kubernetes pod).
	URL string
	// Upstream reaches the release from the router: http://NAME:8000.
	Upstream string
}

// Status of an instance.
type Status struct {
	Running  bool
	ExitCode int
	// Logs are the last lines the instance wrote, for error messages.
	Logs []string
	// Reason, when the instance is not running but did not simply exit,
	// says why it will not become ready (a Kubernetes rollout that exceeded
	// its progress deadline, with the events that explain it).
	Reason string
}

// GPUProber is implemented by targets whose host's GPUs must be read
// there (a Docker host, which may be another machine than the deployer's):
// Deploy plans on what the probe reports instead of this machine's GPUs.
type GPUProber interface {
	GPUs(ctx context.Context, img *ImageInfo) ([]gpu.Device, error)
}

// RouterUpgrader is a Target whose router runs the modelship binary of a
// release image (the Docker gateway): once a release is live, the router
// moves to that release's binary, in place, when it differs.
type RouterUpgrader interface {
	UpgradeRouter(ctx context.Context, env string, live *Instance) error
}

// Planner is implemented by targets that place releases themselves (a
// Kubernetes cluster schedules pods on its own GPUs): Deploy then asks the
// target for the plan instead of fitting the model on this host's GPUs.
type Planner interface {
	Plan(ctx context.Context, p Placement) (*Plan, error)
}

// RouterSpec is the stable endpoint of an environment.
type RouterSpec struct {
	Env string
	// Port is the public port on the target host.
	Port int
	// PublishIP is the host address the port is bound to ("" all).
	PublishIP string
}

// DefaultLockTTL is how long a deploy lock stays its holder's after the
// holder's last renewal; the holder renews every quarter of it.
const DefaultLockTTL = time.Minute

// Holder says who holds (or wants) a lock.
type Holder struct {
	Who   string    `json:"who"`   // user@host or GITHUB_ACTOR via workflow
	Host  string    `json:"host"`  // hostname of the process
	PID   int       `json:"pid"`   // process id
	Since time.Time `json:"since"` // when it was taken
	What  string    `json:"what"`  // "deploy IMAGE", "rollback"
	// TTL is the lease: the lock is the holder's while it renews within
	// TTL (0: DefaultLockTTL).
	TTL time.Duration `json:"ttl_ns,omitempty"`
}

// LeaseTTL is h.TTL, or DefaultLockTTL.
func (h Holder) LeaseTTL() time.Duration {
	if h.TTL > 0 {
		return h.TTL
	}
	return DefaultLockTTL
}

func (h Holder) String() string {
	return fmt.Sprintf("%s (pid %d on %s, %s, since %s)", h.Who, h.PID, h.Host, h.What, h.Since.Format(time.RFC3339))
}

// Lease is a deploy lock held.
type Lease interface {
	// Renew extends the lease by the holder's TTL. It returns an error
	// wrapping ErrLockLost when the lock is no longer this holder's.
	Renew(ctx context.Context) error
	// Release gives the lock up; a lock that is no longer this holder's
	// is left alone.
	Release(ctx context.Context) error
}

// ErrLockLost: another holder took the lock over (this one did not renew
// in time).
var ErrLockLost = errors.New("the deploy lock is no longer this deploy's")

// LockBreaker is a target whose lock `modelship unlock` can break.
type LockBreaker interface {
	// BreakLock removes the environment's lock when its holder no longer
	// renews it and returns that holder (nil: there was no lock); while
	// the holder is alive it returns *LockedError and changes nothing.
	BreakLock(ctx context.Context, env string) (*Holder, error)
}

// LockedError is returned by Target.Lock when another deploy holds the lock.
type LockedError struct {
	Env    string
	Holder Holder
	// Renewed is the holder's last renewal, when the target knows it.
	Renewed time.Time
}

func (e *LockedError) Error() string {
	msg := fmt.Sprintf("environment %s is locked by another deploy: %s", e.Env, e.Holder)
	if !e.Renewed.IsZero() {
		msg += fmt.Sprintf("; renewed %s ago, it is taken over if not renewed within %s", time.Since(e.Renewed).Round(time.Second), e.Holder.LeaseTTL())
	}
	return msg
}

// Stale reports whether a lock of h, last renewed at renewed, may be
// taken over: not renewed within its TTL, or held by a process of this
// machine that is gone.
func (h Holder) Stale(renewed time.Time) bool {
	if renewed.IsZero() || time.Since(renewed) > h.LeaseTTL() {
		return true
	}
	if me, _ := os.Hostname(); h.Host == me && h.PID > 0 {
		if err := syscall.Kill(h.PID, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
	}
	return false
}

// ErrUnreachable marks errors where the target itself could not be reached.
var ErrUnreachable = errors.New("target unreachable")

// Sleep waits d, or until ctx is done (then it returns ctx's error): the
// pause of the targets' polling loops.
func Sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
