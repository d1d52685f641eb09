package sluice

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"time"

	"github.com/sluice-dev/sluice/pipeline/codec"
)

// Result ops, as docs/stage-abi.md defines them.
const (
	opKeep = 1
	opEmit = 2
	opSet  = 3 // ABI version 2
)

// stage is the state of the one stage a module implements. A Wasm instance
// runs one call at a time, so it needs no locking.
type stage struct {
	initFn   func(Params) error
	eventFn  func(*Event, *Output)
	filterFn func(*Event) bool // set by Filter: the loop calls it directly
	mapFn    func(*Event)      // set by Map: likewise
	tickFn   func(time.Time, *Output)
	closeFn  func()
	regErr   error
	inited   bool

	gen      uint32  // numbers the calls, so stale events are caught
	ev       Event   // the input event handed to the handler, reused
	arena    []Event // events made by NewEvent and Clone, reused per call
	arenaN   int
	out      Output
	counters []*Counter

	batch  []byte   // the batch of the current process call, nil in others
	batchN int      // its event count
	keys   keyTable // one key's values in batch, found by the host
}

// current is the stage of this module. Registration functions fill it from
// init functions; the exports drive it.
var current = &stage{}

func (s *stage) register(name string, fn func(*Event, *Output)) {
	if s.eventFn != nil {
		s.regErr = errors.Join(s.regErr, fmt.Errorf("sluice.%s: an event handler is already registered (a stage has one Filter, Map or FlatMap)", name))
		return
	}
	s.eventFn = fn
}

// Filter registers the stage's event handler: fn is called for each event
// and the event is kept when it returns true, dropped otherwise. Changes fn
// makes to an event it keeps (Set, Delete) are emitted with it; an event
// kept without changes costs the host nothing to pass on. Call it from an
// init function.
func Filter(fn func(ev *Event) bool) {
	if current.eventFn == nil {
		current.filterFn = fn
	}
	current.register("Filter", func(ev *Event, out *Output) {
		if fn(ev) {
			out.Emit(ev)
		}
	})
}

// Map registers the stage's event handler: fn changes each event in place
// with Set and Delete (or leaves it unchanged), and every event is emitted.
// Call it from an init function.
func Map(fn func(ev *Event)) {
	if current.eventFn == nil {
		current.mapFn = fn
	}
	current.register("Map", func(ev *Event, out *Output) {
		fn(ev)
		out.Emit(ev)
	})
}

// FlatMap registers the stage's event handler: fn emits any number of
// events for each input through out (none drops it; out.Emit(ev) keeps it;
// Clone and NewEvent make more). Call it from an init function.
func FlatMap(fn func(ev *Event, out *Output)) {
	current.register("FlatMap", fn)
}

// OnInit registers fn to run once per instance, before any batch, with the
// stage's params (the HCL params attribute). A returned error rejects the
// module and is shown to the user, so make it say what is wrong with which
// param.
func OnInit(fn func(p Params) error) {
	if current.initFn != nil {
		current.regErr = errors.Join(current.regErr, errors.New("sluice.OnInit: registered twice"))
		return
	}
	current.initFn = fn
}

// OnTick registers fn to run on the stage's timer, for stateful stages that
// emit on time (window summaries, rate-limit reports, dedup expiry). Events
// it emits must be made with NewEvent.
func OnTick(fn func(now time.Time, out *Output)) {
	if current.tickFn != nil {
		current.regErr = errors.Join(current.regErr, errors.New("sluice.OnTick: registered twice"))
		return
	}
	current.tickFn = fn
}

// OnClose registers fn to run before the instance is discarded (shutdown,
// hot swap). Events cannot be emitted from it: emit on tick instead.
func OnClose(fn func()) { current.closeFn = fn }

// NewEvent returns an empty event derived from no input, for summaries and
// events a tick emits. Fill it with Set and emit it with Output.Emit. It is
// valid until the current call returns.
func NewEvent() *Event { return current.newEvent() }

func (s *stage) newEvent() *Event {
	if s.arenaN == len(s.arena) {
		s.arena = append(s.arena, Event{})
	}
	e := &s.arena[s.arenaN]
	s.arenaN++
	e.reset(nil, noInput, false, s.gen)
	return e
}

// Output collects what a handler emits for a batch (or a tick). It is
// valid during the call that received it.
type Output struct {
	buf []byte // the result: u32 count, then entries
	n   uint32
	gen uint32
}

func (o *Output) reset(gen uint32) {
	o.buf = append(o.buf[:0], 0, 0, 0, 0)
	o.n, o.gen = 0, gen
}

func (o *Output) finish() []byte {
	binary.LittleEndian.PutUint32(o.buf, o.n)
	return o.buf
}

// Emit emits e: an input event without changes is passed on as it came
// (once per input; a second Emit of it copies it), any other event is
// encoded with its changes.
func (o *Output) Emit(e *Event) {
	if e.gen != o.gen {
		panic("sluice: Emit of an event from an earlier call (events are valid until their call returns)")
	}
	if e.input && !e.kept && len(e.edits) == 0 {
		e.kept = true
		o.buf = append(o.buf, opKeep)
		o.buf = binary.LittleEndian.AppendUint32(o.buf, e.index)
		o.n++
		return
	}
	o.emitChanged(e)
}

// emitChanged is Emit for an event that is not a KEEP, apart so that
// Emit stays small: in Go's Wasm code a call costs more the more blocks
// and locals its function has, and a filter's KEEPs are most calls.
func (o *Output) emitChanged(e *Event) {
	if e.raw != nil && e.setOnly() {
		// Fields set on an input (an enrichment, a masked field): the
		// host makes the event from the input in native code (SET), so
		// the guest writes the fields, not a copy of the event.
		o.buf = append(o.buf, opSet)
		o.buf = binary.LittleEndian.AppendUint32(o.buf, e.index)
		at := len(o.buf)
		o.buf = append(o.buf, 0, 0, 0, 0)
		if len(e.edits) == 1 { // the commonest: one field, written here
			ed := &e.edits[0]
			o.buf = append(o.buf, 0x81)
			o.buf = codec.AppendString(o.buf, ed.key)
			o.buf = append(o.buf, e.vals[ed.start:ed.end]...)
		} else {
			o.buf = e.appendSetFields(o.buf)
		}
		binary.LittleEndian.PutUint32(o.buf[at:], uint32(len(o.buf)-at-4))
		o.n++
		return
	}
	o.buf = append(o.buf, opEmit)
	o.buf = binary.LittleEndian.AppendUint32(o.buf, e.index)
	at := len(o.buf)
	o.buf = append(o.buf, 0, 0, 0, 0)
	var err error
	if o.buf, err = e.appendEncoded(o.buf); err != nil {
		panic(err)
	}
	binary.LittleEndian.PutUint32(o.buf[at:], uint32(len(o.buf)-at-4))
	o.n++
}

// EmitBytes emits an event given as its msgpack map (built with a Writer,
// say), derived from the input from (nil: from no input). It panics if
// msgpack is not one well-formed map, which the host would reject with the
// whole batch.
func (o *Output) EmitBytes(from *Event, msgpack []byte) {
	index := uint32(noInput)
	if from != nil {
		if from.gen != o.gen {
			panic("sluice: EmitBytes from an event of an earlier call")
		}
		index = from.index
	}
	if _, i := mapHeader(msgpack, 0); i < 0 || skip(msgpack, 0) != len(msgpack) {
		panic("sluice: EmitBytes: not one well-formed msgpack map")
	}
	o.buf = append(o.buf, opEmit)
	o.buf = binary.LittleEndian.AppendUint32(o.buf, index)
	o.buf = binary.LittleEndian.AppendUint32(o.buf, uint32(len(msgpack)))
	o.buf = append(o.buf, msgpack...)
	o.n++
}

// Len returns the number of entries emitted so far in this call.
func (o *Output) Len() int { return int(o.n) }

// begin starts a call from the host.
func (s *stage) begin() {
	s.gen++
	s.arenaN = 0
	s.batch, s.batchN = nil, 0
	s.out.reset(s.gen)
}

// init runs the registered init function with the params map.
func (s *stage) init(params []byte) (err error) {
	defer s.recoverInto(&err)
	defer s.flushCounters()
	if s.regErr != nil {
		return s.regErr
	}
	if s.eventFn == nil {
		return errors.New("no event handler: call sluice.Filter, sluice.Map or sluice.FlatMap from an init function")
	}
	if len(params) == 0 {
		params = []byte{0x80}
	}
	if _, i := mapHeader(params, 0); i < 0 || skip(params, 0) != len(params) {
		return errors.New("params are not one well-formed msgpack map")
	}
	s.begin()
	if s.initFn != nil {
		if err := s.initFn(Params{Value{raw: params}}); err != nil {
			return err
		}
	}
	s.inited = true
	return nil
}

// process runs the event handler over one batch (u32 count, then count ×
// {u32 len, event}) and returns the result, which stays valid until the
// next call.
func (s *stage) process(batch []byte) (result []byte, err error) {
	defer s.recoverInto(&err)
	defer s.flushCounters()
	if !s.inited {
		return nil, errors.New("process called before a successful init")
	}
	if len(batch) < 4 {
		return nil, fmt.Errorf("read batch: %d bytes is too short for its count", len(batch))
	}
	count := binary.LittleEndian.Uint32(batch)
	if uint64(count) > uint64(len(batch)-4)/4 {
		return nil, fmt.Errorf("read batch: count %d does not fit %d bytes", count, len(batch))
	}
	s.begin()
	s.batch, s.batchN = batch, int(count)
	// Each loop is a function of its own: process keeps few returns, so
	// that Go open-codes its defers (with more than 15 returns times
	// defers it records them at run time, a third of a small batch's cost
	// in Go's Wasm code).
	if s.filterFn != nil {
		return s.filter(batch, count)
	}
	if s.mapFn != nil {
		return s.mapEach(batch, count)
	}
	return s.each(batch, count)
}

// each is process for a FlatMap handler.
func (s *stage) each(batch []byte, count uint32) ([]byte, error) {
	off := 4
	for i := uint32(0); i < count; i++ {
		if len(batch)-off < 4 {
			return nil, fmt.Errorf("read batch: event %d of %d: truncated length", i, count)
		}
		n := int(binary.LittleEndian.Uint32(batch[off:]))
		off += 4
		if n > len(batch)-off {
			return nil, fmt.Errorf("read batch: event %d of %d: length %d past the end", i, count, n)
		}
		s.ev.reset(batch[off:off+n:off+n], i, true, s.gen)
		off += n
		s.eventFn(&s.ev, &s.out)
	}
	return s.out.finish(), nil
}

// filter is process for a Filter handler: the same loop with the handler
// called directly and KEEP entries written in place, since a filter's cost
// per event is mostly this loop's overhead in Go's Wasm code.
func (s *stage) filter(batch []byte, count uint32) ([]byte, error) {
	fn, ev, out := s.filterFn, &s.ev, &s.out
	out.buf = slices.Grow(out.buf, 5*int(count))
	off := 4
	for i := uint32(0); i < count; i++ {
		if len(batch)-off < 4 {
			return nil, fmt.Errorf("read batch: event %d of %d: truncated length", i, count)
		}
		n := int(binary.LittleEndian.Uint32(batch[off:]))
		off += 4
		if n > len(batch)-off {
			return nil, fmt.Errorf("read batch: event %d of %d: length %d past the end", i, count, n)
		}
		ev.reset(batch[off:off+n:off+n], i, true, s.gen)
		off += n
		if !fn(ev) {
			continue
		}
		if len(ev.edits) == 0 {
			ev.kept = true
			out.buf = append(out.buf, opKeep, byte(i), byte(i>>8), byte(i>>16), byte(i>>24))
			out.n++
		} else {
			out.Emit(ev)
		}
	}
	return out.finish(), nil
}

// mapEach is process for a Map handler, called directly as filter calls
// a Filter's: an event left unchanged is KEPT in place, a changed one
// emitted (a SET when only fields were set).
func (s *stage) mapEach(batch []byte, count uint32) ([]byte, error) {
	fn, ev, out := s.mapFn, &s.ev, &s.out
	out.buf = slices.Grow(out.buf, 5*int(count))
	off := 4
	for i := uint32(0); i < count; i++ {
		if len(batch)-off < 4 {
			return nil, fmt.Errorf("read batch: event %d of %d: truncated length", i, count)
		}
		n := int(binary.LittleEndian.Uint32(batch[off:]))
		off += 4
		if n > len(batch)-off {
			return nil, fmt.Errorf("read batch: event %d of %d: length %d past the end", i, count, n)
		}
		ev.reset(batch[off:off+n:off+n], i, true, s.gen)
		off += n
		fn(ev)
		if len(ev.edits) == 0 {
			ev.kept = true
			out.buf = append(out.buf, opKeep, byte(i), byte(i>>8), byte(i>>16), byte(i>>24))
			out.n++
		} else {
			out.Emit(ev)
		}
	}
	return out.finish(), nil
}

// tick runs the tick handler; without one the result is empty.
func (s *stage) tick(nowNs int64) (result []byte, err error) {
	defer s.recoverInto(&err)
	defer s.flushCounters()
	s.begin()
	if s.tickFn != nil && s.inited {
		s.tickFn(time.Unix(0, nowNs), &s.out)
	}
	return s.out.finish(), nil
}

func (s *stage) close() {
	defer func() {
		if r := recover(); r != nil {
			hostLog(LevelError, fmt.Sprintf("close handler panicked: %v", r))
		}
	}()
	defer s.flushCounters()
	if s.closeFn != nil {
		s.closeFn()
	}
}

// recoverInto turns a panic in a handler into the call's error, with the
// stack, so a bug in a stage fails one batch (the host applies on_error)
// instead of taking the instance down without a word.
func (s *stage) recoverInto(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
	}
}
