// Package synth drives the synthetic gadget of bench/gadgets (synth64.bpf.o,
// synth256.bpf.o): a producer of ring buffer records that is not bound by
// syscall cost, for `make bench`, `make soak` and the tests that need a
// load heavier than real syscalls can make.
//
// The gadget's program runs on every getpgid(2) call and, when the
// argument carries Magic in its upper 32 bits, writes as many records as
// the lower 32 bits say (at most MaxBurst) in one bpf_loop. Each record
// carries kseq, a number the program takes from a global counter before
// it reserves room, so records lost in the kernel leave gaps in kseq.
//
// Burst, Producer and its methods are safe for concurrent use; a
// Producer's Run is called once, by the goroutine that owns it.
package synth

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Magic is what the upper 32 bits of getpgid's argument hold for the
// program to emit records (bench/gadgets/synth.bpf.c, SYNTH_MAGIC).
const Magic = 0x5e1cbe7c

// MaxBurst is the most records one call emits (SYNTH_MAX_BURST).
const MaxBurst = 4096

// RingSize is the size of the gadget's ring buffer as it declares it.
const RingSize = 1 << 20

// Record sizes the gadget is built for; Object names their objects.
var Sizes = []int{64, 256}

// Object returns the path of the gadget object for records of size bytes
// (64 or 256), relative to the repository root.
func Object(size int) string {
	return filepath.Join("bench", "gadgets", "synth"+strconv.Itoa(size)+".bpf.o")
}

// Burst asks the program for n records (capped at MaxBurst) and returns
// once it has written them (or counted them lost). Without the gadget
// attached it is a cheap failing syscall.
func Burst(n int) {
	n = min(n, MaxBurst)
	unix.Syscall(unix.SYS_GETPGID, uintptr(uint64(Magic)<<32|uint64(n)), 0, 0)
}

// Producer asks for records at a steady rate (Rate per second) or as fast
// as it can (Rate 0), in bursts of at most BurstSize records, from Threads
// threads (each with its share of the rate).
type Producer struct {
	Rate      int // records per second, all threads together; 0: flat out
	BurstSize int // records per call; 0: 256
	Threads   int // 0: 1
	// RealTime runs a paced producer's threads under SCHED_FIFO (needs
	// CAP_SYS_NICE; without it they run as usual, and RealTimeErr says
	// why) and keeps them off the Go scheduler between ticks, so that a
	// machine loaded by other work does not make them late: a late tick
	// asks for everything due since the last one (see CatchUp), a burst
	// no ring buffer of ordinary size takes (TakeLateMost).
	RealTime bool
	// CatchUp bounds what one tick of a paced run asks for, in ticks'
	// worth of records (1 ms at Rate): a tick that comes late asks for
	// at most CatchUp ticks' worth and leaves the rest to the next ticks,
	// so that the producer catches up at CatchUp times its rate instead
	// of in one burst. 0: everything due at once.
	CatchUp int

	rtErr     atomic.Pointer[error]
	requested atomic.Uint64
	// lateMost is the most records due at one tick of a paced run since
	// TakeLateMost last read it.
	lateMost atomic.Uint64
}

// Requested returns how many records the producer has asked for so far:
// what the program wrote plus what it lost. Safe for concurrent use.
func (p *Producer) Requested() uint64 { return p.requested.Load() }

// RealTimeErr returns why a RealTime producer's thread could not switch to
// SCHED_FIFO, or nil. Safe for concurrent use.
func (p *Producer) RealTimeErr() error {
	if e := p.rtErr.Load(); e != nil {
		return *e
	}
	return nil
}

// TakeLateMost returns the most records due at one tick of a paced run
// since the last call, and starts over. A tick on time finds Rate/1000
// due; a producer thread that was not scheduled for a while finds
// everything due since, and asks for it at once (in bursts of BurstSize
// back to back, which a ring buffer smaller than all of them cannot take
// however fast its reader is) or, with CatchUp, over the next ticks.
// Safe for concurrent use.
func (p *Producer) TakeLateMost() uint64 { return p.lateMost.Swap(0) }

// Run produces until ctx ends and returns once its threads have stopped.
// Paced runs catch up after a late tick (at once, or at CatchUp times
// their rate), so the average rate holds.
func (p *Producer) Run(ctx context.Context) {
	threads := max(p.Threads, 1)
	var wg sync.WaitGroup
	for i := range threads {
		rate := p.Rate / threads
		if i == 0 {
			rate += p.Rate % threads
		}
		if p.Rate > 0 && rate == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run(ctx, rate)
		}()
	}
	wg.Wait()
}

// run is one thread of Run.
func (p *Producer) run(ctx context.Context, rate int) {
	runtime.LockOSThread()
	unlock := true
	defer func() {
		if unlock {
			runtime.UnlockOSThread()
		}
	}()
	burst := p.BurstSize
	if burst <= 0 {
		burst = 256
	}
	burst = min(burst, MaxBurst)
	if rate <= 0 {
		for ctx.Err() == nil {
			for range 64 {
				Burst(burst)
			}
			p.requested.Add(uint64(64 * burst))
		}
		return
	}
	if p.RealTime {
		err := unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: 1}, 0)
		if err == nil {
			// The thread ends with the goroutine (it stays locked): no
			// other goroutine ever runs at real-time priority.
			unlock = false
			p.runRealTime(ctx, rate, burst)
			return
		}
		err = fmt.Errorf("switch the producer thread to SCHED_FIFO: %w", err)
		p.rtErr.Store(&err)
	}
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var done uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		done = p.catchUp(start, rate, burst, done, Burst)
	}
}

// catchUp asks for the records due at rate since start beyond done, in
// bursts of at most burst through emit, and returns the new done.
func (p *Producer) catchUp(start time.Time, rate, burst int, done uint64, emit func(int)) uint64 {
	due := uint64(time.Since(start).Seconds() * float64(rate))
	if due > done {
		for n, cur := due-done, p.lateMost.Load(); n > cur && !p.lateMost.CompareAndSwap(cur, n); cur = p.lateMost.Load() {
		}
	}
	if p.CatchUp > 0 {
		due = min(due, done+uint64(max(1, p.CatchUp*rate/1000)))
	}
	for done < due {
		n := min(uint64(burst), due-done)
		emit(int(n))
		done += n
		p.requested.Add(n)
	}
	return done
}

// runRealTime is run on a SCHED_FIFO thread. It sleeps and calls the
// program with raw system calls, which keep the thread's P: a goroutine
// woken by a Go timer, or back from an ordinary system call, waits for a
// P, and on a loaded machine the threads holding both Ps may wait for a
// CPU for hundreds of milliseconds. The rest of the process does without
// the P it keeps; the collector still stops it (a signal ends the sleep,
// and the loop is preemptible Go code).
func (p *Producer) runRealTime(ctx context.Context, rate, burst int) {
	raw := func(n int) {
		unix.RawSyscall(unix.SYS_GETPGID, uintptr(uint64(Magic)<<32|uint64(n)), 0, 0)
	}
	start := time.Now()
	var done uint64
	ts := unix.NsecToTimespec(int64(time.Millisecond))
	for ctx.Err() == nil {
		unix.RawSyscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
		done = p.catchUp(start, rate, burst, done, raw)
	}
}

// FindRoot returns the repository root: the nearest directory at or above
// the working directory that holds bench/gadgets. Tests and the bench find
// the gadget objects through it.
func FindRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "bench", "gadgets")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}
