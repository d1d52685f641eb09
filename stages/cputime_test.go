package stages_test

import (
	"runtime"
	"syscall"
	"testing"
	"unsafe"
)

// threadCPU returns the CPU time the calling thread has used, in ns
// (CLOCK_THREAD_CPUTIME_ID). A Wasm stage runs on the thread that calls
// it, so on a shared machine this counts the stage's work and not the time
// other processes held the core, as wall time does.
func threadCPU() int64 {
	var ts syscall.Timespec
	const clockThreadCPUTimeID = 3
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0
	}
	return ts.Nano()
}

// perEvent runs process until b.Loop says stop and reports ns/event (wall)
// and cpu-ns/event (the thread's CPU time) for batches of n events.
func perEvent(b *testing.B, n int, process func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c0 := threadCPU()
	for b.Loop() {
		process()
	}
	b.ReportMetric(float64(threadCPU()-c0)/float64(b.N*n), "cpu-ns/event")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
}
