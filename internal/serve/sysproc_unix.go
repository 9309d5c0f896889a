//go:build unix

package serve

import (
	"os"
	"syscall"
)

// sysProcAttr puts the engine in its own process group, so a terminal's
// Ctrl-C reaches it only through modelship (once, after the drain) and a
// kill reaches its worker processes too.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// killGroup kills the engine and every process in its group.
func killGroup(p *os.Process) {
	if err := syscall.Kill(-p.Pid, syscall.SIGKILL); err != nil {
		p.Kill()
	}
}
