package wasmstages

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/pipeline"
)

// instance is one instantiated guest. It is used by one goroutine at a time
// (the Stage hands each worker slot to one goroutine per batch).
type instance struct {
	mod  api.Module
	mem  api.Memory
	lm   *limitedMemory
	name string

	alloc, process, tick, close api.Function

	// interruptible: the module calls sluice.__yield (package interrupt),
	// which stops a call past deadline or once ctx is done, and records
	// why in stopped. Otherwise the runtime checks contexts itself.
	interruptible bool
	deadline      time.Time // when yield next looks at the call's time
	timeout       time.Duration
	overtime      bool  // past its deadline: the thread is locked and cpuMark read
	cpuMark       int64 // the thread's CPU time when the deadline passed, ns
	stopped       stopReason

	// abi is the ABI version the module declared (sluice_abi_version):
	// version 2 may SET.
	abi          int32
	inPtr, inCap uint32 // the host's input buffer, from sluice_alloc
	stack        []uint64
	result       resultScratch // reused by parseResult
	errMsg       []byte        // set by set_error during the current call
	// broken is set once a call failed in a way that leaves the instance
	// unusable or untrustworthy; the Stage then discards it.
	broken bool
}

// stopReason says why the host stopped a call.
type stopReason uint8

const (
	notStopped stopReason = iota
	stopDeadline
	stopCanceled
)

// errStopped is the panic of sluice.__yield that ends a call; wazero turns
// it into the call's error.
var errStopped = errors.New("stopped by the host")

// yield is sluice.__yield, which an interruptible guest calls every
// interrupt.Period function entries and loop iterations: it ends the call
// once its deadline has passed or ctx (the call's) is done. Being a Go
// call, it is also where the Go scheduler can preempt a busy guest.
func (inst *instance) yield(ctx context.Context) {
	switch {
	case ctx.Err() != nil:
		inst.stopped = stopCanceled
		panic(errStopped)
	case !time.Now().Before(inst.deadline) && !inst.goOn():
		inst.stopped = stopDeadline
		panic(errStopped)
	}
}

// goOn decides, each time a call's deadline has passed, whether it goes
// on. The deadline is wall-clock time, which a starved thread spends
// waiting for a CPU: on a loaded host a 256-event batch has timed out
// after using a fraction of its timeout, and then passed on unfiltered
// (on_error = "pass") or been lost ("drop"). So once the deadline passes
// the call's thread is held (LockOSThread) and its CPU time read, and
// the call goes on until it has spent another timeout of CPU: a runaway
// guest, which spins, is stopped within about twice its timeout; a call
// slowed by the machine completes. Nothing is read before the deadline,
// so a call that ends in time costs nothing more.
func (inst *instance) goOn() bool {
	now := time.Now()
	if !inst.overtime {
		runtime.LockOSThread()
		inst.overtime = true
		var ok bool
		if inst.cpuMark, ok = threadCPUTime(); !ok {
			return false
		}
		inst.deadline = now.Add(inst.timeout)
		return true
	}
	cpu, ok := threadCPUTime()
	used := time.Duration(cpu - inst.cpuMark)
	if !ok || used >= inst.timeout {
		return false
	}
	// The CPU left cannot be spent in less wall time than that.
	inst.deadline = now.Add(inst.timeout - used)
	return true
}

// endOvertime releases the thread goOn held, after the call.
func (inst *instance) endOvertime() {
	if inst.overtime {
		inst.overtime = false
		runtime.UnlockOSThread()
	}
}

// threadCPUTime returns the calling thread's CPU time in ns
// (CLOCK_THREAD_CPUTIME_ID); ok is false if the clock cannot be read, and
// then the wall-clock deadline stands.
func threadCPUTime() (ns int64, ok bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, false
	}
	return ts.Nano(), true
}

// callError is a failed call into a guest, classified.
func callError(kind, format string, args ...any) *pipeline.StageError {
	return &pipeline.StageError{Kind: kind, Err: fmt.Errorf(format, args...)}
}

// call runs fn with the deadline and classifies its failure. ctx is the
// caller's context: when it ends first the failure is KindCanceled, not
// the guest's fault.
func (inst *instance) call(ctx context.Context, timeout time.Duration, fn api.Function, what string) error {
	return inst.callUntil(ctx, time.Now().Add(timeout), timeout, fn, what)
}

// callUntil is call with a deadline shared by several calls (an Inspektor
// Gadget module's callbacks for one batch); timeout is what the deadline
// stands for, in messages.
func (inst *instance) callUntil(ctx context.Context, deadline time.Time, timeout time.Duration, fn api.Function, what string) error {
	inst.lm.refused.Store(false)
	inst.errMsg = inst.errMsg[:0]
	var err error
	inst.stopped = notStopped
	if inst.interruptible {
		inst.deadline, inst.timeout = deadline, timeout
		err = fn.CallWithStack(ctx, inst.stack)
		inst.endOvertime()
	} else {
		cctx, cancel := context.WithDeadline(ctx, deadline)
		err = fn.CallWithStack(cctx, inst.stack)
		cancel()
	}
	if err == nil {
		return nil
	}
	inst.broken = true
	switch {
	case inst.lm.refused.Load():
		return callError(KindOOM, "%s: the guest needed more memory than its limit of %d bytes: %w", what, inst.lm.limit, err)
	case inst.stopped == stopDeadline:
		return callError(KindTimeout, "%s: ran past its deadline of %s", what, timeout)
	case inst.stopped == stopCanceled:
		return callError(KindCanceled, "%s: cancelled: %w", what, ctx.Err())
	}
	if exit, ok := errors.AsType[*sys.ExitError](err); ok {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded, sys.ExitCodeContextCanceled:
			if ctx.Err() != nil {
				return callError(KindCanceled, "%s: cancelled: %w", what, ctx.Err())
			}
			return callError(KindTimeout, "%s: ran past its deadline of %s", what, timeout)
		}
		return callError(KindTrap, "%s: the guest exited with code %d", what, exit.ExitCode())
	}
	return callError(KindTrap, "%s: %w", what, err)
}

// guestMessage returns what the guest passed to set_error during the
// current call.
func (inst *instance) guestMessage() string {
	if len(inst.errMsg) == 0 {
		return "no message (the guest did not call set_error)"
	}
	return string(inst.errMsg)
}

// guestError turns a negative result into an error with the guest's message.
func (inst *instance) guestError(what string) error {
	msg := inst.guestMessage()
	if inst.lm.refused.Load() {
		inst.broken = true
		return callError(KindOOM, "%s: the guest needed more memory than its limit of %d bytes and failed: %s", what, inst.lm.limit, msg)
	}
	return callError(KindGuest, "%s failed: %s", what, msg)
}

// input returns a view of a guest buffer of at least size bytes for the host
// to write into, calling sluice_alloc when the current one is too small.
func (inst *instance) input(ctx context.Context, timeout time.Duration, size int) ([]byte, error) {
	if uint64(size) > inst.lm.limit {
		inst.broken = true
		return nil, callError(KindOOM, "a batch of %d bytes does not fit the memory limit of %d bytes", size, inst.lm.limit)
	}
	if uint32(size) > inst.inCap {
		want := max(uint64(size)+uint64(size)/4, 64<<10)
		want = min(want, inst.lm.limit/2, 1<<31-1)
		want = max(want, uint64(size))
		inst.stack[0] = uint64(want)
		if err := inst.call(ctx, timeout, inst.alloc, "sluice_alloc"); err != nil {
			return nil, err
		}
		ptr := uint32(inst.stack[0])
		if ptr == 0 {
			inst.broken = true
			return nil, callError(KindOOM, "sluice_alloc(%d) returned 0: the guest is out of memory", want)
		}
		inst.inPtr, inst.inCap = ptr, uint32(want)
	}
	view, ok := inst.mem.Read(inst.inPtr, uint32(size))
	if !ok {
		inst.broken = true
		return nil, callError(KindMalformed, "sluice_alloc returned %#x, whose %d bytes lie outside the guest's %d-byte memory", inst.inPtr, size, inst.mem.Size())
	}
	return view, nil
}

// appendResult appends the events of the result a process or tick call
// (what) returned to out; in are the call's inputs, none for a tick.
func (inst *instance) appendResult(what string, in, out []pipeline.Event, tick, returnInput bool, source string) ([]pipeline.Event, error) {
	r := int64(inst.stack[0])
	if r < 0 {
		return out, inst.guestError(what)
	}
	ptr, n := uint32(uint64(r)>>32), uint32(r)
	res, ok := inst.mem.Read(ptr, n)
	if !ok {
		inst.broken = true
		return out, callError(KindMalformed, "%s returned %d bytes at %#x, outside the guest's %d-byte memory", what, n, ptr, inst.mem.Size())
	}
	if cost := outputCost(res); inst.lm.size()+cost > inst.lm.limit {
		// The host's copy of the output counts against the limit with the
		// guest's memory: without that, a guest could hand the host its
		// whole memory as output again and again (or KEEP one input
		// millions of times, 5 bytes of result for each ~100-byte event),
		// and one instance held several times its limit.
		inst.broken = true
		return out, callError(KindOOM, "%s: the output (%d bytes, %d entries) would take the host %d bytes, which with the guest's %d bytes of memory exceeds the memory limit of %d bytes",
			what, len(res), resultEntries(res), cost, inst.lm.size(), inst.lm.limit)
	}
	rules := resultRules{tick: tick, set: inst.abi >= 2, source: source, returnInput: returnInput}
	// What SET entries may add: the limit less the guest's memory and the
	// copy of the result itself.
	if used := inst.lm.size() + outputCost(res); used < inst.lm.limit {
		rules.setBudget = inst.lm.limit - used
	}
	var err error
	out, err = parseResult(res, in, out, rules, &inst.result)
	inst.result.shrink(maxKeptEvents) // scratch of an unusual batch: let it go
	switch {
	case errors.Is(err, errOutputTooLarge):
		inst.broken = true
		return out, callError(KindOOM, "%s: %v, which with the guest's %d bytes of memory exceeds the memory limit of %d bytes", what, err, inst.lm.size(), inst.lm.limit)
	case err != nil:
		inst.broken = true
		return out, &pipeline.StageError{Kind: KindMalformed, Err: fmt.Errorf("%s: %w", what, err)}
	}
	return out, nil
}

// maxKeptEvents bounds the scratch and output slices kept for the next
// batch: one unusually large output must not stay pinned for the life of
// the stage.
const maxKeptEvents = 1 << 14

// eventCost is what an output event costs the host beyond its payload.
const eventCost = uint64(unsafe.Sizeof(pipeline.Event{}))

// resultEntries is the entry count a result declares (0 when it is too
// short to declare one; parseResult reports that).
func resultEntries(res []byte) uint64 {
	if len(res) < 4 {
		return 0
	}
	// No more than the result can hold (5 bytes an entry): a count that
	// lies is parseResult's malformed result, not an OOM.
	return min(uint64(binary.LittleEndian.Uint32(res)), uint64(len(res)-4)/5)
}

// outputCost bounds what parsing res will cost the host: a copy of the
// emitted payloads (at most the result's size) and one Event per entry.
func outputCost(res []byte) uint64 {
	return uint64(len(res)) + resultEntries(res)*eventCost
}

// processBatch runs one batch through the guest and appends its output.
// With returnInput, a result that keeps every input unchanged returns in
// itself (see resultRules).
func (inst *instance) processBatch(ctx context.Context, timeout time.Duration, in, out []pipeline.Event, source string, returnInput bool) ([]pipeline.Event, error) {
	size := batchSize(in)
	view, err := inst.input(ctx, timeout, size)
	if err != nil {
		return out, err
	}
	encodeBatch(view, in)
	inst.stack[0], inst.stack[1] = uint64(inst.inPtr), uint64(size)
	if err := inst.call(ctx, timeout, inst.process, "sluice_process"); err != nil {
		return out, err
	}
	return inst.appendResult("sluice_process", in, out, false, returnInput, source)
}

// tickOnce calls sluice_tick and appends what it emits.
func (inst *instance) tickOnce(ctx context.Context, timeout time.Duration, now time.Time, out []pipeline.Event, source string) ([]pipeline.Event, error) {
	inst.stack[0] = uint64(now.UnixNano())
	if err := inst.call(ctx, timeout, inst.tick, "sluice_tick"); err != nil {
		return out, err
	}
	return inst.appendResult("sluice_tick", nil, out, true, false, source)
}

// initialize runs the reactor's _initialize, checks the ABI version and
// calls sluice_init with the encoded params (not when init is nil: a
// gadget module need not export it). A failing sluice_init wraps failed
// (ErrInit, ErrGadgetInit).
func (inst *instance) initialize(ctx context.Context, initialize, version, init api.Function, params []byte, failed error) error {
	if initialize != nil {
		if err := inst.call(ctx, initTimeout, initialize, "_initialize"); err != nil {
			return err
		}
	}
	if err := inst.call(ctx, initTimeout, version, "sluice_abi_version"); err != nil {
		return err
	}
	v := int32(inst.stack[0])
	if v < MinABIVersion || v > ABIVersion {
		return fmt.Errorf("%w: sluice_abi_version returned %d; this host implements versions %d to %d", ErrABI, v, MinABIVersion, ABIVersion)
	}
	inst.abi = v
	if init == nil {
		return nil
	}
	view, err := inst.input(ctx, initTimeout, len(params))
	if err != nil {
		return err
	}
	copy(view, params)
	inst.stack[0], inst.stack[1] = uint64(inst.inPtr), uint64(len(params))
	if err := inst.call(ctx, initTimeout, init, "sluice_init"); err != nil {
		return err
	}
	if rc := int32(inst.stack[0]); rc != 0 {
		return fmt.Errorf("%w: sluice_init returned %d: %s", failed, rc, inst.guestMessage())
	}
	return nil
}

// closeGuest calls sluice_close on an instance that still works, then
// releases it.
func (inst *instance) closeGuest(ctx context.Context, timeout time.Duration) error {
	var err error
	if inst.close != nil && !inst.broken {
		err = inst.call(ctx, timeout, inst.close, "sluice_close")
	}
	if cerr := inst.mod.Close(context.WithoutCancel(ctx)); cerr != nil && err == nil {
		err = fmt.Errorf("close instance %s: %w", inst.name, cerr)
	}
	return err
}

// memoryAllocatorContext attaches an allocator that enforces limit to ctx,
// for one instantiation.
func memoryAllocatorContext(ctx context.Context, limit uint64) (context.Context, *limitedAllocator) {
	a := &limitedAllocator{limit: limit}
	return experimental.WithMemoryAllocator(ctx, a), a
}
