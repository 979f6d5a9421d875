//go:build !linux

package vaulttest

import "os/exec"

// dieWithParent is a no-op where the OS has no parent-death signal; cleanups still stop Vault.
func dieWithParent(*exec.Cmd) {}
