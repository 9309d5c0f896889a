// Package buildinfo holds the modelship version, set at link time with
// -ldflags "-X github.com/modelship/modelship/internal/buildinfo.Version=v1.2.3".
package buildinfo

import "runtime/debug"

// Version is the modelship release; "dev" for a plain go build.
var Version = "dev"

// String returns Version, or the module version recorded by the go command
// when the binary was installed with `go install ...@vX`.
func String() string {
	if Version != "dev" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return Version
}
