package wasmstages_test

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/wasmstages"
)

// threadCPU returns the calling thread's CPU time.
func threadCPU(t *testing.T) time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ts.Nano())
}

// TestStarvedCallIsNotTimedOut checks that the deadline stops guests that
// spin, not calls slowed by a busy machine: a batch whose work takes half
// the timeout in CPU completes although its thread, starved by
// busy threads on its CPU, takes many timeouts of wall-clock time for it.
// With a wall-clock deadline the batch failed (and passed on unfiltered,
// or was dropped).
func TestStarvedCallIsNotTimedOut(t *testing.T) {
	const timeout = 100 * time.Millisecond
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	// The spins that cost about half the timeout in CPU on this machine.
	spins := uint64(1 << 16)
	var cpu time.Duration
	for {
		s := newStage(t, wasmstages.Config{Name: "spin", Module: guest("spin"), Params: map[string]any{"spins": spins}})
		start := threadCPU(t)
		if _, err := s.Process(context.Background(), events(8, "cat"), nil); err != nil {
			t.Fatal(err)
		}
		if cpu = threadCPU(t) - start; cpu >= timeout/16 {
			break
		}
		spins *= 4
	}
	spins = uint64(float64(spins) * float64(timeout/2) / float64(cpu))
	s := newStage(t, wasmstages.Config{Name: "spin", Module: guest("spin"), Params: map[string]any{"spins": spins}, Timeout: timeout})

	// The call runs on a thread of its own at nice 10, pinned with two
	// busy threads to one CPU: it gets about 5% of that CPU (weights 110
	// against 2 x 1024), so its half timeout of work takes about ten
	// timeouts.
	var cpus unix.CPUSet
	if err := unix.SchedGetaffinity(0, &cpus); err != nil {
		t.Fatal(err)
	}
	cpuN := -1
	for i := range 1024 {
		if cpus.IsSet(i) {
			cpuN = i
			break
		}
	}
	var one unix.CPUSet
	one.Set(cpuN)
	var stop atomic.Bool
	var hogs sync.WaitGroup
	defer hogs.Wait()
	defer stop.Store(true)
	for range 2 {
		hogs.Add(1)
		// Threads of their own, not handed back to Go pinned to one CPU.
		wasmstages.OnOwnThread(func() {
			defer hogs.Done()
			if err := unix.SchedSetaffinity(0, &one); err != nil {
				t.Error(err)
				return
			}
			for !stop.Load() {
			}
		})
	}
	type outcome struct {
		wall, cpu time.Duration
		kept      int
		err       error
	}
	done := make(chan outcome)
	// A thread of its own, which Go ends with the goroutine, so its
	// priority and affinity go with it.
	wasmstages.OnOwnThread(func() {
		if err := unix.SchedSetaffinity(0, &one); err != nil {
			done <- outcome{err: err}
			return
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 10); err != nil {
			done <- outcome{err: err}
			return
		}
		start, cpu0 := time.Now(), threadCPU(t)
		out, err := s.Process(context.Background(), events(8, "cat"), nil)
		done <- outcome{time.Since(start), threadCPU(t) - cpu0, len(out), err}
	})
	got := <-done
	stop.Store(true)
	t.Logf("starved call: %s of wall-clock time, %s of CPU (timeout %s), %d events kept, error %v", got.wall, got.cpu, timeout, got.kept, got.err)
	if got.err != nil {
		t.Fatalf("the starved call failed: %v", got.err)
	}
	if got.kept != 8 {
		t.Errorf("the starved call kept %d of 8 events", got.kept)
	}
	if got.wall < 2*timeout {
		t.Fatalf("the call took %s, under twice the %s timeout: it was not starved, so this test cannot tell", got.wall, timeout)
	}
}
