package wasmstages

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// OnOwnThread lets a test change its thread's priority and affinity
// without leaving them on a thread Go reuses.
var OnOwnThread = onOwnThread

// cacheEntries lists the compiled modules in the cache directory dir.
func cacheEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := filepath.Glob(filepath.Join(dir, "wazero-*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// TestCompileAside compiles a guest in the helper: it runs at nice
// asideNice, and leaves the machine code in the cache directory, where a
// runtime of the agent finds it. The agent's own thread keeps its
// priority. A module that does not compile is reported as ErrCompile.
// (A small guest: at nice 10 next to two CPU hogs, a Go guest's compile
// took a minute.)
func TestCompileAside(t *testing.T) {
	defer func(g time.Duration) { asideGrace = g }(asideGrace)
	asideGrace = time.Hour // not raised, however loaded the machine
	ctx := context.Background()
	before := currentNice()
	module, err := os.ReadFile(filepath.Join("testdata", "filter.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	code, _, err := rewriteModule(module)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	report, err := compileAside(ctx, dir, code, false)
	if err != nil {
		t.Fatalf("compileAside: %v", err)
	}
	if want := fmt.Sprintf("nice %d", asideNice); report != want {
		t.Errorf("helper reported %q, want %q", report, want)
	}
	if n := len(cacheEntries(t, dir)); n != 1 {
		t.Errorf("%d entries in the cache after the helper, want 1", n)
	}
	if p, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Getpid()); err != nil || 20-p != before {
		t.Errorf("the main thread runs at nice %d (%v), want %d as before", 20-p, err, before)
	}
	if got := currentNice(); got != before {
		t.Errorf("this thread runs at nice %d, want %d as before", got, before)
	}

	garbage := append([]byte("\x00asm\x01\x00\x00\x00\x05garbage"), make([]byte, 256<<10)...)
	if _, err := compileAside(ctx, t.TempDir(), garbage, false); !errors.Is(err, ErrCompile) {
		t.Errorf("compileAside(garbage) = %v, want ErrCompile", err)
	}
}

// TestCompileAsideGrace: a helper not done within asideGrace is raised to
// the agent's priority, or, where the agent may not raise one, stopped
// with errNoAside (the caller compiles in the process). A Go guest, whose
// compile cannot end before the grace of 0 does.
func TestCompileAsideGrace(t *testing.T) {
	defer func(g time.Duration) { asideGrace = g }(asideGrace)
	asideGrace = 0
	module, err := os.ReadFile(filepath.Join("testdata", "gofilter.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	report, err := compileAside(context.Background(), dir, module, true)
	if !mayRaisePriority() {
		if !errors.Is(err, errNoAside) {
			t.Errorf("compileAside without the right to raise a priority = %q, %v; want errNoAside", report, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("compileAside: %v", err)
	}
	if want := fmt.Sprintf("nice %d", currentNice()); report != want {
		t.Errorf("helper reported %q after the grace, want %q", report, want)
	}
	if n := len(cacheEntries(t, dir)); n != 1 {
		t.Errorf("%d entries in the cache after the helper, want 1", n)
	}
}

// mayRaisePriority tells whether this process may raise a thread's
// priority (CAP_SYS_NICE, or RLIMIT_NICE).
func mayRaisePriority() bool {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	n := currentNice()
	if unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), n-1) != nil {
		return false
	}
	return unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), n) == nil
}
