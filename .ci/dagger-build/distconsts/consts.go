// Package distconsts declares the paths, names and images the Dagger engine and
// CLI v0.19.10 are built against. It replaces dagger's own untagged
// engine/distconsts module (missing from the Go module proxy) with the same
// values, so the engine finds runc, dagger-init and the builtin SDK content
// where .ci/deps/dagger-engine.sh puts them.
package distconsts

// Paths and names inside (or used by) the engine.
const (
	// EngineContainerName is the container the CLI would start for a
	// container:// runner host (not used here: the engine runs on the host).
	EngineContainerName = "dagger-engine.dev"
	// DefaultEngineSockAddr is the engine's default listening socket.
	DefaultEngineSockAddr = "unix:///run/dagger/engine.sock"
	// EngineDefaultStateDir is the default --root of the engine.
	EngineDefaultStateDir = "/var/lib/dagger"
	// RuncPath is the OCI runtime binary the engine's worker runs.
	RuncPath = "/usr/local/bin/runc"
	// DaggerInitPath is bind-mounted into every exec as its init process.
	DaggerInitPath = "/usr/local/bin/dagger-init"
	// EngineContainerBuiltinContentDir holds the builtin SDK runtime images
	// as an OCI layout.
	EngineContainerBuiltinContentDir = "/usr/local/share/dagger/content"
	// EngineCustomCACertsDir is where extra CA certificates are read from.
	EngineCustomCACertsDir = "/usr/local/share/ca-certificates"
)

// Environment variables naming the builtin SDK runtime images by manifest
// digest in EngineContainerBuiltinContentDir.
const (
	GoSDKManifestDigestEnvName         = "DAGGER_GO_SDK_MANIFEST_DIGEST"
	PythonSDKManifestDigestEnvName     = "DAGGER_PYTHON_SDK_MANIFEST_DIGEST"
	TypescriptSDKManifestDigestEnvName = "DAGGER_TYPESCRIPT_SDK_MANIFEST_DIGEST"
)

// Images the engine pulls by name for its own helpers.
const (
	AlpineVersion  = "3.22.1"
	AlpineImage    = "alpine:" + AlpineVersion
	GolangVersion  = "1.25.5"
	GolangImage    = "golang:" + GolangVersion + "-alpine"
	BusyboxVersion = "1.37.0"
	BusyboxImage   = "busybox:" + BusyboxVersion
)

// OCIVersionAnnotation carries the engine version on its image.
const OCIVersionAnnotation = "org.opencontainers.image.version"
