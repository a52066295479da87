package redistest

import (
	"os"
	"os/exec"
	"syscall"
)

// orphanProof kills the redis-server if the test binary dies without
// cleaning up (a panic, a -timeout), so no stray servers hold ports.
func orphanProof(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

func pause(p *os.Process) error  { return p.Signal(syscall.SIGSTOP) }
func resume(p *os.Process) error { return p.Signal(syscall.SIGCONT) }
