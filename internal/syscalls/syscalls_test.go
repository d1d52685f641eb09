package syscalls

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestKnownNumbers(t *testing.T) {
	for _, tc := range []struct {
		table *Table
		name  string
		nr    int
	}{
		{X86_64, "read", 0},
		{X86_64, "execve", 59},
		{X86_64, "openat", 257},
		{X86_64, "_sysctl", 156},
		{X86_64, "bpf", 321},
		{AArch64, "openat", 56},
		{AArch64, "newfstatat", 79},
		{AArch64, "execve", 221},
		{AArch64, "bpf", 280},
		{AArch64, "io_setup", 0},
	} {
		if got, ok := tc.table.Name(tc.nr); !ok || got != tc.name {
			t.Errorf("%s Name(%d) = %q, %v; want %q", tc.table.Arch(), tc.nr, got, ok, tc.name)
		}
		if got, ok := tc.table.Number(tc.name); !ok || got != tc.nr {
			t.Errorf("%s Number(%q) = %d, %v; want %d", tc.table.Arch(), tc.name, got, ok, tc.nr)
		}
	}
	for _, table := range []*Table{X86_64, AArch64} {
		if _, ok := table.Name(-1); ok {
			t.Errorf("%s: Name(-1) found a syscall", table.Arch())
		}
		if _, ok := table.Name(100000); ok {
			t.Errorf("%s: Name(100000) found a syscall", table.Arch())
		}
		if _, ok := table.Number("no_such_syscall"); ok {
			t.Errorf("%s: Number found no_such_syscall", table.Arch())
		}
		// Every name maps back to its number.
		for nr, name := range table.names {
			if name == "" {
				continue
			}
			if back, ok := table.Number(name); !ok || back != nr {
				t.Errorf("%s: Number(Name(%d) = %q) = %d, %v", table.Arch(), nr, name, back, ok)
			}
		}
	}
}

// TestHostMatchesUnix checks the host's table against the constants the Go
// toolchain compiles in for this architecture.
func TestHostMatchesUnix(t *testing.T) {
	host := Host()
	want := map[string]int{
		"read": unix.SYS_READ, "write": unix.SYS_WRITE, "openat": unix.SYS_OPENAT, "close": unix.SYS_CLOSE,
		"execve": unix.SYS_EXECVE, "execveat": unix.SYS_EXECVEAT, "getpriority": unix.SYS_GETPRIORITY,
		"clone3": unix.SYS_CLONE3, "kill": unix.SYS_KILL, "connect": unix.SYS_CONNECT, "bpf": unix.SYS_BPF,
	}
	switch runtime.GOARCH {
	case "amd64", "arm64":
	default:
		if host.Arch() != "" {
			t.Fatalf("host table %q on %s", host.Arch(), runtime.GOARCH)
		}
		return
	}
	for name, nr := range want {
		if got, ok := host.Number(name); !ok || got != nr {
			t.Errorf("Host().Number(%q) = %d, %v; unix.SYS_ says %d", name, got, ok, nr)
		}
	}
}

// TestTracepointNames checks that every syscall tracepoint of the running
// kernel names a syscall of the host's table.
func TestTracepointNames(t *testing.T) {
	dir := "/sys/kernel/tracing/events/syscalls"
	if _, err := os.Stat(dir); err != nil && os.Geteuid() == 0 {
		// tracefs is not mounted yet (the agent mounts it when it loads a
		// gadget); mount it the same way.
		if err := unix.Mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, ""); err != nil {
			t.Logf("mount tracefs: %v", err)
		}
	}
	entries, err := filepath.Glob(filepath.Join(dir, "sys_enter_*"))
	if err != nil || len(entries) == 0 {
		if os.Geteuid() == 0 && os.Getenv("SLUICE_REQUIRE_BPF") == "1" {
			t.Fatalf("no syscall tracepoints under %s (tracefs not mounted?)", dir)
		}
		t.Skipf("skipping: no syscall tracepoints under %s (needs root and tracefs)", dir)
	}
	for _, e := range entries {
		name := strings.TrimPrefix(filepath.Base(e), "sys_enter_")
		if _, ok := Host().Number(name); !ok {
			t.Errorf("tracepoint %s names no syscall of the %s table", filepath.Base(e), Host().Arch())
		}
	}
}
