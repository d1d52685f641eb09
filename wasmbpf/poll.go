package wasmbpf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental/table"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/sources"
	"github.com/sluice-dev/sluice/sources/decode"
)

// buffer is an output map the guest polls: a reader on it, the plan that
// decodes its records, and the records read and emitted but not yet
// handed to the guest.
type buffer struct {
	gm     *guestMap
	reader *sources.Reader
	perf   bool
	plan   *decode.Plan // nil: the records are not decoded
	schema *pipeline.Schema

	// held are the raw records of the last read (ends[i] is where record
	// i ends in raw), next the first not yet handed to the guest: a
	// callback that returns < 0 stops a ring buffer poll (libbpf's rule),
	// and the rest waits for the next poll.
	raw  []byte
	ends []int
	next int

	arena []byte // encoded events; the pipeline keeps what it accepted
}

// pollArgs are the arguments of one poll call.
type pollArgs struct {
	obj               uint64
	fd                int32
	cb                api.Function
	cbCtx, data, size uint32
	timeout           time.Duration // < 0: no timeout
}

// hostPoll is int wasm_bpf_buffer_poll(u64 obj, int fd, int32 sample_func,
// u32 ctx, char *data, int max_size, int timeout_ms): wait up to timeout_ms
// (forever when negative) for records of the output map fd, then take what
// it holds; each record becomes an event and is then copied to data (cut to
// max_size) for the callback at table index sample_func, called as
// int sample(void *ctx, void *data, size_t size). 0 on success, a ring
// buffer callback's negative result, or -errno.
func (a *App) hostPoll(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "wasm_bpf_buffer_poll"
	p := pollArgs{obj: stack[0], fd: int32(stack[1]), cbCtx: uint32(stack[3]), data: uint32(stack[4]), size: uint32(stack[5]), timeout: timeoutOf(int32(stack[6]))}
	if int32(stack[5]) < 0 {
		stack[0] = uint64(uint32(a.refuse(fn, "size", errnoINVAL)))
		return
	}
	cb, err := a.tableFunction(mod, uint32(stack[2]))
	if err != nil {
		a.log.Warn(fn+": the callback is not a function of type int (void *, void *, size_t) in the guest's table", "index", uint32(stack[2]), "error", err)
		stack[0] = uint64(uint32(a.refuse(fn, "callback", errnoINVAL)))
		return
	}
	p.cb = cb
	stack[0] = uint64(uint32(a.poll(ctx, mod, fn, p)))
}

// hostPollGo is TinyGo's callback-wrapper.wasm_bpf_buffer_poll: the same
// poll without a table index; the callback is the export go-callback.
func (a *App) hostPollGo(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "callback-wrapper.wasm_bpf_buffer_poll"
	p := pollArgs{obj: stack[0], fd: int32(stack[1]), cbCtx: uint32(stack[2]), data: uint32(stack[3]), size: uint32(stack[4]), timeout: timeoutOf(int32(stack[5]))}
	if int32(stack[4]) < 0 {
		stack[0] = uint64(uint32(a.refuse(fn, "size", errnoINVAL)))
		return
	}
	p.cb = mod.ExportedFunction(goCallbackExport) // checked at New
	stack[0] = uint64(uint32(a.poll(ctx, mod, fn, p)))
}

func timeoutOf(ms int32) time.Duration {
	if ms < 0 {
		return -1
	}
	return time.Duration(ms) * time.Millisecond
}

// tableFunction returns the function at index i of the guest's table 0
// with the callback's type.
func (a *App) tableFunction(mod api.Module, i uint32) (f api.Function, err error) {
	if f := a.tableFns[i]; f != nil {
		return f, nil
	}
	defer func() {
		// LookupFunction panics as call_indirect traps: a bad index or
		// a function of another type.
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("%v", r)
		}
	}()
	f = table.LookupFunction(mod, 0, i, callbackType.params, callbackType.results)
	a.tableFns[i] = f
	return f, nil
}

func (a *App) poll(ctx context.Context, mod api.Module, fn string, p pollArgs) int32 {
	a.lastPoll.Store(time.Now().UnixNano())
	gm := a.fds[p.fd]
	switch {
	case gm == nil || a.object(p.obj) != gm.obj:
		return a.refuse(fn, "fd", errnoNOENT)
	case !gm.output:
		a.log.Warn(fn+": the map is not a ring buffer or perf event array", "map", gm.name)
		return a.refuse(fn, "fd", errnoINVAL)
	}
	if _, ok := guestBytes(mod, p.data, p.size); !ok {
		return a.refuse(fn, "pointer", errnoFAULT)
	}
	b, err := a.buffer(p.fd, gm)
	if err != nil {
		a.log.Error(fn+": open the buffer", "map", gm.name, "error", err)
		return -errnoOf(err)
	}
	if a.stopping.Load() && a.eintrReturned {
		// A poll already returned -EINTR; the guest went on.
		a.interruptGuest()
	}
	if rc, stop := a.deliver(ctx, mod, b, p); stop {
		return rc
	}
	var deadline time.Time
	switch {
	case a.stopping.Load(), p.timeout == 0:
		deadline = time.Now()
	case p.timeout > 0:
		deadline = time.Now().Add(p.timeout)
	}
	for total := 0; total < maxPerPoll; {
		n := a.fill(b, deadline, total == 0)
		if n == 0 {
			break
		}
		total += n
		if rc, stop := a.deliver(ctx, mod, b, p); stop {
			return rc
		}
		if n < batchSize {
			break
		}
	}
	if a.stopping.Load() {
		a.eintrReturned = true
		return -errnoINTR
	}
	return 0
}

// buffer returns the buffer of fd, with the reader its perf event array
// got at load, or opening its ring buffer's reader on the first poll.
func (a *App) buffer(fd int32, gm *guestMap) (*buffer, error) {
	if b := a.buffers[fd]; b != nil {
		return b, nil
	}
	r := gm.obj.perf[gm.name]
	if r != nil {
		delete(gm.obj.perf, gm.name)
	} else {
		var err error
		if r, err = gm.obj.obj.OpenReader(gm.name); err != nil {
			return nil, err
		}
	}
	b := &buffer{gm: gm, reader: r, perf: gm.m.Type() == ebpf.PerfEventArray}
	if plan := gm.obj.plans[gm.name]; plan != nil && a.cfg.Emit.records() {
		b.plan, b.schema = plan, plan.Schema()
	}
	a.buffers[fd] = b
	return b, nil
}

// fill reads up to batchSize records, waiting for the first until
// deadline (zero: no deadline) when wait is set, and emits them. It
// returns how many it read.
func (a *App) fill(b *buffer, deadline time.Time, wait bool) int {
	b.raw, b.ends, b.next = b.raw[:0], b.ends[:0], 0
	var batch []pipeline.Event
	if b.plan != nil {
		batch = make([]pipeline.Event, 0, batchSize)
	}
	past := time.Now().Add(-time.Second)
	for len(b.ends) < batchSize {
		if wait && len(b.ends) == 0 {
			// Wait in slices: records below the kernel's wakeup threshold
			// arrive without one, and a stop must be seen.
			slice := time.Now().Add(pollSlice)
			if !deadline.IsZero() && deadline.Before(slice) {
				slice = deadline
			}
			b.reader.SetDeadline(slice)
		} else {
			b.reader.SetDeadline(past)
		}
		rec, lost, err := b.reader.Read()
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			if wait && len(b.ends) == 0 && !a.stopping.Load() && (deadline.IsZero() || time.Now().Before(deadline)) {
				continue
			}
			a.emit(b, batch)
			return len(b.ends)
		default:
			a.log.Error("read the guest's output map", "map", b.gm.name, "error", err)
			a.emit(b, batch)
			return len(b.ends)
		}
		if lost > 0 {
			a.reportLoss(lost)
			continue
		}
		if len(rec) == 0 {
			continue
		}
		b.raw = append(b.raw, rec...)
		b.ends = append(b.ends, len(b.raw))
		if b.plan == nil {
			if a.cfg.Emit.records() {
				a.m.undecoded.Inc()
			}
			continue
		}
		// Append writes fixed-size fields without checking room
		// (decode.Plan.Room).
		if room := max(b.plan.Size()*2+512, b.plan.Room()); cap(b.arena)-len(b.arena) < room {
			b.arena = make([]byte, 0, max(256<<10, b.plan.Size()*8, room*4))
		}
		seq := a.cfg.Seq.Add(1)
		start := len(b.arena)
		b.arena = b.plan.Append(b.arena, rec, seq, time.Now())
		batch = append(batch, pipeline.Event{Data: b.arena[start:len(b.arena):len(b.arena)], Schema: b.schema, Source: a.cfg.Source, Seq: seq})
	}
	a.emit(b, batch)
	return len(b.ends)
}

// emit hands a batch of decoded records to the pipeline.
func (a *App) emit(b *buffer, batch []pipeline.Event) {
	if len(batch) == 0 {
		return
	}
	if err := a.out.Emit(a.emitCtx, batch); err != nil && a.emitCtx.Err() == nil {
		a.log.Warn("emit the guest's records", "map", b.gm.name, "error", err)
	}
}

func (a *App) reportLoss(n uint64) {
	if lr, ok := a.out.(pipeline.LossReporter); ok {
		lr.ReportLoss(a.cfg.Source, a.cfg.App, pipeline.ReasonKernel, n)
	}
}

// deliver hands the held records to the guest's callback, one call each.
// It reports stop when a ring buffer callback returned < 0 (its result is
// the poll's).
func (a *App) deliver(ctx context.Context, mod api.Module, b *buffer, p pollArgs) (int32, bool) {
	mem := mod.Memory()
	start := b.next
	defer func() { a.m.callbacks.Add(uint64(b.next - start)) }()
	for b.next < len(b.ends) {
		from := 0
		if b.next > 0 {
			from = b.ends[b.next-1]
		}
		rec := b.raw[from:b.ends[b.next]]
		b.next++
		n := uint32(len(rec))
		if n > p.size {
			n = p.size
			a.m.truncated.Inc()
		}
		// The callback may have grown memory since the check: write
		// through the memory, which checks again.
		if !mem.Write(p.data, rec[:n]) {
			a.guestErr = errors.New("the poll's data buffer left the guest's memory")
			a.interrupts.CompareAndSwap(notInterrupted, interruptCallback)
			panic(a.guestErr)
		}
		a.stack[0], a.stack[1], a.stack[2] = uint64(p.cbCtx), uint64(p.data), uint64(n)
		if err := p.cb.CallWithStack(ctx, a.stack); err != nil {
			if a.stopping.Load() && ctx.Err() != nil {
				panic(err) // the stop's grace ran out during the callback
			}
			a.guestErr = fmt.Errorf("the sample callback failed: %w", err)
			a.interrupts.CompareAndSwap(notInterrupted, interruptCallback)
			panic(a.guestErr)
		}
		if rc := int32(a.stack[0]); rc < 0 && !b.perf {
			return rc, true
		}
	}
	return 0, false
}

// drain emits what an output still holds, after its programs were
// detached: records the guest did not poll are not lost.
func (a *App) drain(b *buffer) {
	for a.fill(b, time.Time{}, false) > 0 {
	}
	if err := b.reader.Close(); err != nil {
		a.log.Debug("close reader", "map", b.gm.name, "error", err)
	}
}

// drainAll drains every buffer the guest opened. Run's goroutine, once the
// guest returned.
func (a *App) drainAll() {
	for fd, b := range a.buffers {
		a.drain(b)
		delete(a.buffers, fd)
	}
}
