//go:build !amd64

package decode

import "golang.org/x/sys/unix"

const largeFile = unix.O_LARGEFILE

// syscallNames maps the generic (arm64, riscv64) syscall numbers to names,
// for the syscalls security gadgets meet most; others render as
// syscall_<n>.
var syscallNames = func() []string {
	t := make([]string, 460)
	for n, name := range map[int]string{
		17: "getcwd", 23: "dup", 24: "dup3", 25: "fcntl", 29: "ioctl", 33: "mknodat", 34: "mkdirat", 35: "unlinkat",
		36: "symlinkat", 37: "linkat", 38: "renameat", 40: "mount", 39: "umount2", 46: "ftruncate", 48: "faccessat",
		49: "chdir", 51: "chroot", 52: "fchmod", 53: "fchmodat", 54: "fchownat", 55: "fchown", 56: "openat", 57: "close",
		59: "pipe2", 61: "getdents64", 62: "lseek", 63: "read", 64: "write", 78: "readlinkat", 79: "newfstatat", 80: "fstat",
		93: "exit", 94: "exit_group", 96: "set_tid_address", 98: "futex", 101: "nanosleep", 117: "ptrace", 129: "kill",
		130: "tkill", 131: "tgkill", 134: "rt_sigaction", 135: "rt_sigprocmask", 144: "setgid", 146: "setuid", 147: "setresuid",
		149: "setresgid", 157: "setsid", 160: "uname", 167: "prctl", 172: "getpid", 173: "getppid", 174: "getuid", 175: "geteuid",
		176: "getgid", 177: "getegid", 178: "gettid", 198: "socket", 200: "bind", 201: "listen", 202: "accept", 203: "connect",
		206: "sendto", 207: "recvfrom", 214: "brk", 215: "munmap", 220: "clone", 221: "execve", 222: "mmap", 226: "mprotect",
		242: "accept4", 260: "wait4", 261: "prlimit64", 268: "setns", 273: "finit_module", 277: "seccomp", 278: "getrandom",
		279: "memfd_create", 280: "bpf", 281: "execveat", 291: "statx", 434: "pidfd_open", 435: "clone3", 437: "openat2",
	} {
		t[n] = name
	}
	return t
}()
