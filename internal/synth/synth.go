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
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

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

	requested atomic.Uint64
}

// Requested returns how many records the producer has asked for so far:
// what the program wrote plus what it lost. Safe for concurrent use.
func (p *Producer) Requested() uint64 { return p.requested.Load() }

// Run produces until ctx ends and returns once its threads have stopped.
// Paced runs catch up after a late tick, so the average rate holds over
// any second.
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
	defer runtime.UnlockOSThread()
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
		due := uint64(time.Since(start).Seconds() * float64(rate))
		for done < due {
			n := min(uint64(burst), due-done)
			Burst(int(n))
			done += n
			p.requested.Add(n)
		}
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
