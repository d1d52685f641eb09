package wasmstages

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// ABIVersion is the newest version of the stage ABI (docs/stage-abi.md)
// this host implements; a module's sluice_abi_version may return it or
// MinABIVersion. Version 2 adds the result entry SET to version 1, and a
// module that declares 1 keeps version 1's rules.
const ABIVersion = 2

// MinABIVersion is the oldest version of the stage ABI this host runs.
const MinABIVersion = 1

// Result entry ops and the input index of events derived from no input.
const (
	opKeep  = 1
	opEmit  = 2
	opSet   = 3 // ABI version 2
	noInput = 0xFFFFFFFF
)

// errMalformed marks a result that breaks the ABI.
var errMalformed = errors.New("malformed result")

// batchSize returns the size of in encoded as a batch.
func batchSize(in []pipeline.Event) int {
	n := 4
	for i := range in {
		n += 4 + len(in[i].Data)
	}
	return n
}

// encodeBatch writes in as a batch (u32 count, then u32 length and bytes per
// event) into dst, which is batchSize(in) long.
func encodeBatch(dst []byte, in []pipeline.Event) {
	binary.LittleEndian.PutUint32(dst, uint32(len(in)))
	off := 4
	for i := range in {
		d := in[i].Data
		binary.LittleEndian.PutUint32(dst[off:], uint32(len(d)))
		off += 4 + copy(dst[off+4:], d)
	}
}

// resultRules says what a result may hold and what building it may cost.
type resultRules struct {
	tick   bool   // a tick's result: no inputs, so EMIT from no input only
	set    bool   // the module speaks ABI version 2, which adds SET
	source string // the Source of events derived from no input
	// setBudget bounds the bytes the events SET entries make may take:
	// each is a copy of an input, which a result of a few bytes per entry
	// could otherwise multiply past the memory limit.
	setBudget uint64
	// returnInput lets a result that keeps every input, in order and
	// unchanged, return in itself instead of a copy in out: the common
	// case of a filter that drops nothing. Only for a caller that gave an
	// empty out and holds no other view of in's array.
	returnInput bool
}

// resultScratch is the memory parseResult reuses from call to call; the
// zero value is ready. It belongs to one instance.
type resultScratch struct {
	pending []pendingOut // the EMIT and SET entries, built after the parse
	plan    setPlan      // a SET's plan, reused
	from    []uint32     // per entry: the input it derives from, or noInput
	uses    []uint32     // per input: the events derived from it
	gid     []uint32     // per input: its source event's group
	groups  []group      // by gid
	last    []sourceEvent
	byKey   map[sourceEvent]uint32 // gid by source event, when inputs are out of order
	// arena is where the events a result emits or sets are copied: the
	// rest of the last one taken (see parseResult).
	arena []byte
	// unsequencedCopies: the calls' outputs may not reach the pipeline's
	// stages in one batch (a gadget's module, in front of its source), so
	// copies are never numbered 1, 2, 3... (see numberDerived).
	unsequencedCopies bool
}

// shrink lets go of scratch slices grown past max entries (an unusual
// batch), so that an instance does not keep them.
func (sc *resultScratch) shrink(max int) {
	if cap(sc.pending) > max || cap(sc.plan.keys) > max || cap(sc.plan.repl) > max ||
		cap(sc.from) > max || cap(sc.uses) > max || cap(sc.gid) > max || cap(sc.groups) > max {
		*sc = resultScratch{unsequencedCopies: sc.unsequencedCopies, arena: sc.arena}
	}
}

// sourceEvent names the source event events were derived from.
type sourceEvent struct {
	source string
	seq    uint64
}

// group is the numbering of one source event's events in one result.
type group struct {
	multiplied bool   // an input of it yields several events
	counters   bool   // copies get unsequenced Parts instead of numbers
	next       uint32 // the last number given
}

// pendingOut is an output event whose bytes parseResult has yet to copy
// out of guest memory (an EMIT) or to build (a SET).
type pendingOut struct {
	at      int    // its index in out
	payload []byte // in guest memory: the EMIT's event or the SET's fields
	set     bool
}

// errOutputTooLarge marks a result whose SET entries would take the host
// past its budget: the stage's memory limit, not a malformed result.
var errOutputTooLarge = errors.New("output too large")

// parseResult appends the events the result res describes to out and
// returns it. in are the inputs of the call; a tick's result may only hold
// EMIT entries derived from no input. An event derived from input i
// inherits its Source, Seq, Part and Schema (as a rendering hint: its keys
// may differ); one derived from no input has Source rules.source, Seq 0 and
// a Part of its own (pipeline.UnsequencedPart). When an input yields
// several events (a flat-map, a repeated KEEP), the events of its source
// event are numbered apart (numberDerived), so that sinks which deduplicate
// by identity keep them all.
//
// res is guest memory, valid only until the next call into the guest, so
// the EMIT payloads are copied out, and the SET events built, into one new
// buffer for the batch; KEEP entries reuse the inputs' bytes, as does a SET
// that changes nothing. sc is scratch space (nil: none kept). On error out
// is returned as it was given.
func parseResult(res []byte, in, out []pipeline.Event, rules resultRules, sc *resultScratch) ([]pipeline.Event, error) {
	if sc == nil {
		sc = new(resultScratch)
	}
	start := len(out)
	sc.pending, sc.from = sc.pending[:0], sc.from[:0]
	fail := func(format string, args ...any) ([]pipeline.Event, error) {
		clear(out[start:])
		return out[:start], fmt.Errorf("%w: %s", errMalformed, fmt.Sprintf(format, args...))
	}
	if len(res) < 4 {
		return fail("%d bytes hold no entry count", len(res))
	}
	count := binary.LittleEndian.Uint32(res)
	off := 4
	setBytes := uint64(0)
	// Inputs referenced in rising order are each referenced once: the
	// common case costs one comparison per entry. Anything else is
	// numbered after the parse (numberDerived).
	last, shared := -1, false
	for i := uint32(0); i < count; i++ {
		if len(res)-off < 5 {
			return fail("entry %d of %d is cut short at byte %d of %d", i, count, off, len(res))
		}
		op, idx := res[off], binary.LittleEndian.Uint32(res[off+1:])
		off += 5
		switch op {
		case opKeep:
			if rules.tick {
				return fail("entry %d: a tick has no inputs to KEEP", i)
			}
			if uint64(idx) >= uint64(len(in)) {
				return fail("entry %d: KEEP of input %d, but the batch has %d events", i, idx, len(in))
			}
			if int(idx) <= last {
				shared = true
			}
			// A filter keeps runs of consecutive inputs: one append per
			// run instead of one per event.
			end := int(idx) + 1
			for i+1 < count && len(res)-off >= 5 && res[off] == opKeep && end < len(in) &&
				binary.LittleEndian.Uint32(res[off+1:]) == uint32(end) {
				off += 5
				i++
				end++
			}
			last = end - 1
			if rules.returnInput && len(out) == 0 && idx == 0 && end == len(in) && i+1 == count && off == len(res) {
				return in, nil // every input kept as it was: no copy
			}
			out = append(out, in[idx:end]...)
			for k := idx; k < uint32(end); k++ {
				sc.from = append(sc.from, k)
			}
			continue
		case opEmit, opSet:
			name := "EMIT"
			if op == opSet {
				name = "SET"
				if !rules.set {
					return fail("entry %d: op 3 (SET) needs ABI version 2; the module declared version 1", i)
				}
			}
			if len(res)-off < 4 {
				return fail("entry %d of %d: %s length cut short at byte %d of %d", i, count, name, off, len(res))
			}
			n := int(binary.LittleEndian.Uint32(res[off:]))
			off += 4
			if n > len(res)-off {
				return fail("entry %d: %s of %d bytes at byte %d runs past the end of the %d-byte result", i, name, n, off, len(res))
			}
			payload := res[off : off+n : off+n]
			off += n
			var ev pipeline.Event
			switch {
			case op == opSet && rules.tick:
				return fail("entry %d: a tick has no inputs to SET fields of", i)
			case op == opSet && uint64(idx) >= uint64(len(in)):
				return fail("entry %d: SET of input %d, but the batch has %d events", i, idx, len(in))
			case op == opSet:
				var err error
				if sc.plan.keys, err = checkSetFields(payload, sc.plan.keys); err != nil {
					return fail("entry %d: SET fields: %v", i, err)
				}
				ev = in[idx]
				if setBytes += uint64(len(ev.Data)) + uint64(n) + maxMapHeaderGrowth; setBytes > rules.setBudget {
					clear(out[start:])
					return out[:start], fmt.Errorf("%w: SET entries up to entry %d would make events of %d bytes", errOutputTooLarge, i, setBytes)
				}
				if int(idx) <= last {
					shared = true
				}
				last = int(idx)
			case idx == noInput:
				ev = pipeline.Event{Source: rules.source, Part: pipeline.UnsequencedPart()}
			case rules.tick:
				return fail("entry %d: a tick's EMIT derives from input %d; ticks have no inputs (use %#x)", i, idx, uint32(noInput))
			case uint64(idx) >= uint64(len(in)):
				return fail("entry %d: EMIT derived from input %d, but the batch has %d events", i, idx, len(in))
			default:
				ev = in[idx]
				if int(idx) <= last {
					shared = true
				}
				last = int(idx)
			}
			if op == opEmit {
				if !rules.tick && uint64(idx) < uint64(len(in)) && extendsInput(payload, in[idx].Data) {
					// An enrichment: checked without walking what it copied.
				} else if err := checkEvent(payload); err != nil {
					return fail("entry %d: EMIT payload: %v", i, err)
				}
				ev.Data = payload
			}
			sc.pending = append(sc.pending, pendingOut{at: len(out), payload: payload, set: op == opSet})
			out = append(out, ev)
		default:
			if rules.set {
				return fail("entry %d: op %d is not KEEP (1), EMIT (2) or SET (3)", i, op)
			}
			return fail("entry %d: op %d is neither KEEP (1) nor EMIT (2)", i, op)
		}
		sc.from = append(sc.from, idx)
	}
	if off != len(res) {
		return fail("%d bytes follow the last of %d entries", len(res)-off, count)
	}
	if len(sc.pending) > 0 {
		// The events are copied into pooled arenas (pipeline.NewArena),
		// as a source's reader decodes into them: a buffer made per batch
		// cost more than the copy, in zeroing, the GC and returning memory
		// (ocsf 1410 against 1176 ns per event at batch 256, a SET 330
		// against 264; BenchmarkExampleStages, medians of five runs in
		// turn). An event too large for an arena's quarter gets a buffer
		// of its own. A batch of SETs that change nothing copies nothing.
		plan := &sc.plan
		for _, p := range sc.pending {
			input := out[p.at].Data
			if p.set && planSet(plan, input, p.payload) {
				continue // the input as it was
			}
			need := len(p.payload)
			if p.set {
				need += len(input) + maxMapHeaderGrowth
			}
			own := need*4 > pipeline.ArenaSize
			var buf []byte
			if own {
				buf = make([]byte, 0, need) // the arena keeps its room for the rest
			} else {
				if cap(sc.arena)-len(sc.arena) < need {
					sc.arena = pipeline.NewArena()
				}
				buf = sc.arena
			}
			s := len(buf)
			if p.set {
				buf = appendSet(buf, plan, input, p.payload)
			} else {
				buf = append(buf, p.payload...)
			}
			out[p.at].Data = buf[s:len(buf):len(buf)]
			if !own {
				sc.arena = buf
			}
		}
	}
	if shared {
		sc.numberDerived(in, out[start:])
	}
	return out, nil
}

// numberDerived gives the events of out distinct identities where a
// result made several from one input: out holds the events of the entries
// sc.from describes, from inputs in. The events of a source event (Source,
// Seq) with an input that yielded several are numbered 1, 2, 3... in output
// order: exact, and the same every time the same result is given for the
// same inputs. That is sound because such a call sees every event of that
// source event: a pipeline's stages get a source event's events in one
// batch, and a stage's workers do not split them (groupCut). Where that
// may not hold, copies get unsequenced Parts (from [2^31, 2^32), apart from
// the numbers), the first of an input's copies keeping the input's Part:
// events from no input (Seq 0), source events with a copy that already has
// such a Part, and the outputs of a gadget's module, which reach the
// pipeline's stages in batches of their own.
func (sc *resultScratch) numberDerived(in, out []pipeline.Event) {
	sc.uses = slices.Grow(sc.uses[:0], len(in))[:len(in)]
	clear(sc.uses)
	for _, i := range sc.from {
		if i != noInput {
			sc.uses[i]++
		}
	}
	sc.groupInputs(in)
	for i := range in {
		g := &sc.groups[sc.gid[i]]
		g.multiplied = g.multiplied || sc.uses[i] > 1
		g.counters = g.counters || sc.unsequencedCopies || in[i].Seq == 0 || in[i].Part >= 1<<31
	}
	const copying = ^uint32(0) // sc.uses[i]: the first copy of input i is out
	for k, i := range sc.from {
		if i == noInput {
			continue
		}
		g := &sc.groups[sc.gid[i]]
		switch {
		case !g.multiplied:
		case !g.counters:
			g.next++
			out[k].Part = g.next
		case sc.uses[i] == copying:
			out[k].Part = pipeline.UnsequencedPart()
		case sc.uses[i] > 1:
			sc.uses[i] = copying // the first copy keeps the input's Part
		}
	}
}

// groupInputs gives each input the group of its source event (sc.gid,
// sc.groups). A source event's events are next to each other, and source
// events come in rising seq per source, unless a stage reordered them: then
// a map sorts them out.
func (sc *resultScratch) groupInputs(in []pipeline.Event) {
	sc.gid = slices.Grow(sc.gid[:0], len(in))[:len(in)]
	sc.groups, sc.last = sc.groups[:0], sc.last[:0]
	inOrder := true
	for i := range in {
		if i > 0 && in[i].Seq == in[i-1].Seq && in[i].Source == in[i-1].Source {
			sc.gid[i] = sc.gid[i-1]
			continue
		}
		sc.gid[i] = uint32(len(sc.groups))
		sc.groups = append(sc.groups, group{})
		// A new source event: its seq must be past its source's last.
		j := slices.IndexFunc(sc.last, func(l sourceEvent) bool { return l.source == in[i].Source })
		switch {
		case j < 0:
			sc.last = append(sc.last, sourceEvent{in[i].Source, in[i].Seq})
		case in[i].Seq > sc.last[j].seq:
			sc.last[j].seq = in[i].Seq
		default:
			inOrder = false
		}
	}
	if inOrder {
		return
	}
	if sc.byKey == nil {
		sc.byKey = map[sourceEvent]uint32{}
	}
	clear(sc.byKey)
	sc.groups = sc.groups[:0]
	for i := range in {
		key := sourceEvent{in[i].Source, in[i].Seq}
		g, ok := sc.byKey[key]
		if !ok {
			g = uint32(len(sc.groups))
			sc.groups = append(sc.groups, group{})
			sc.byKey[key] = g
		}
		sc.gid[i] = g
	}
}

// checkEvent reports whether b is exactly one well-formed msgpack map.
func checkEvent(b []byte) error {
	if wellFormedMap(b) {
		return nil
	}
	// Say what is wrong.
	if len(b) == 0 {
		return errors.New("empty")
	}
	if c := b[0]; c&0xf0 != 0x80 && c != 0xde && c != 0xdf {
		return fmt.Errorf("starts with %#02x, not a msgpack map", c)
	}
	n, err := codec.Skip(b)
	if err != nil {
		return err
	}
	if n != len(b) {
		return fmt.Errorf("%d bytes follow the map", len(b)-n)
	}
	return nil
}

// appendParams encodes params as a msgpack map with sorted keys, so that
// the same params always make the same bytes.
func appendParams(dst []byte, params map[string]any) ([]byte, error) {
	return appendValue(dst, params, 0)
}
