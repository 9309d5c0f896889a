//go:build !cgo

package gpu

import "fmt"

// Detect reports ErrNoNVML: this binary was built without cgo, and NVML is
// reached only through cgo.
func Detect() (*Report, error) {
	return nil, fmt.Errorf("%w (this modelship binary was built without cgo)", ErrNoNVML)
}
