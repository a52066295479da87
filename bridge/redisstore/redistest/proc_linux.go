package redistest

import (
	"os/exec"
	"syscall"
)

// orphanProof kills the redis-server if the test binary dies without
// cleaning up (a panic, a -timeout), so no stray servers hold ports.
func orphanProof(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
