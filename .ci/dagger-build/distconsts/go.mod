// Stand-in for github.com/dagger/dagger/engine/distconsts, a nested module of
// dagger that was never tagged and is left out of the main module's zip on the
// Go module proxy. It holds only constants; see consts.go.
module github.com/dagger/dagger/engine/distconsts

go 1.24
