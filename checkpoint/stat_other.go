//go:build !unix

package checkpoint

import "io/fs"

// inode returns 0: inode numbers are not available on this platform.
func inode(fs.FileInfo) uint64 { return 0 }
