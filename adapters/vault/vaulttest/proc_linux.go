package vaulttest

import (
	"os/exec"
	"syscall"
)

// dieWithParent kills the dev server if the test binary dies without running its cleanups
// (a panic, a timeout), so no orphaned Vault outlives the test run.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
