package pgtest

import "syscall"

// sysProcAttr runs a server process as cred (nil: the current user). The
// postmaster gets an immediate shutdown when the test binary dies, so a
// crashed or timed-out test leaves no server behind.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
}
