package wasmstages

import (
	"os/exec"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// asideSupported: compileAside starts the helper at low priority here.
const asideSupported = true

// asideExecutable is the program the helper runs: this very one, also
// when its file was replaced or removed since it started (an upgrade),
// so that it writes the cache entries this process reads.
func asideExecutable() string { return "/proc/self/exe" }

// asideNice is the nice value of the compile helper. Its weight for the
// scheduler is a tenth of a thread at nice 0 (110 to 1024): on a machine
// where every core is busy, it takes about a tenth of what one pipeline
// thread gets, and all of a core left idle. At nice 19 (weight 15) the
// helper got next to nothing where the pipelines kept the cores busy
// (BenchmarkSwapThroughput under two CPU hogs: no progress in 5 s).
const asideNice = 10

// startAside starts cmd, the helper, at nice asideNice in a process group
// of its own (raiseAside reaches every thread of it at once). It forks
// from an OS thread of its own at that priority (onOwnThread), which the
// child inherits before it runs anything, and every thread it makes
// inherits it from the first.
func startAside(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	started := make(chan error, 1)
	onOwnThread(func() { started <- startNiced(cmd) })
	return <-started
}

// onOwnThread runs f in a new goroutine locked for good to an OS thread
// that ends with it, so that whatever f changes of its thread (priority,
// CPU affinity) ends with it too; it does not wait for f. Never on the
// main thread: Go parks the main thread rather than end it with its
// goroutine, and a main thread at low priority is what ps shows as the
// agent's (a test that lowered it left TestCompileAside finding the
// main thread at nice 10).
func onOwnThread(f func()) {
	go func() {
		runtime.LockOSThread() // never unlocked but on the main thread
		if unix.Gettid() == unix.Getpid() {
			// While this goroutine holds the main thread, a new one
			// runs on another thread.
			locked := make(chan struct{})
			go func() {
				runtime.LockOSThread()
				close(locked)
				f()
			}()
			<-locked
			runtime.UnlockOSThread()
			return
		}
		f()
	}()
}

// startNiced lowers the priority of the calling thread, which must be
// locked to the goroutine for good, and starts cmd from it.
func startNiced(cmd *exec.Cmd) error {
	if err := unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), asideNice); err != nil {
		return err
	}
	return cmd.Start()
}

// currentNice returns the nice value of the calling thread.
func currentNice() int {
	p, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
	if err != nil {
		return 0
	}
	return 20 - p // the raw system call returns 20 - nice
}

// raiseAside sets every thread of the helper pid, the leader of its
// process group, to the agent's own nice value.
func raiseAside(pid int) error {
	return unix.Setpriority(unix.PRIO_PGRP, pid, currentNice())
}
