// Package syscalls maps Linux system call numbers to names and back, for
// x86_64 and arm64 (aarch64), from tables generated out of the kernel's
// uapi headers as golang.org/x/sys/unix records them (see gen.go; `go
// generate ./internal/syscalls` regenerates them from the x/sys version in
// go.mod).
//
// Names are the uapi's (__NR_openat is "openat"), the spelling strace and
// seccomp use. Number also accepts the few names under which the kernel's
// syscalls/sys_enter_* tracepoints differ from them ("newstat" for "stat",
// "umount" for "umount2"). The tables are read-only and every function is
// safe for concurrent use.
package syscalls
