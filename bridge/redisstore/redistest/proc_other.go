//go:build !linux

package redistest

import (
	"errors"
	"os"
	"os/exec"
)

func orphanProof(*exec.Cmd) {}

var errUnsupported = errors.New("pausing a process is only supported on Linux")

func pause(*os.Process) error  { return errUnsupported }
func resume(*os.Process) error { return errUnsupported }
