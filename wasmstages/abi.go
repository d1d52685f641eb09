package wasmstages

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// ABIVersion is the version of the stage ABI (docs/stage-abi.md) this host
// implements; a module's sluice_abi_version must return it.
const ABIVersion = 1

// Result entry ops and the input index of events derived from no input.
const (
	opKeep  = 1
	opEmit  = 2
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

// resultScratch is the memory parseResult reuses from call to call; the
// zero value is ready. It belongs to one instance.
type resultScratch struct {
	emits  []int    // positions in out of the EMIT entries
	from   []uint32 // per entry: the input it derives from, or noInput
	uses   []uint32 // per input: the events derived from it
	gid    []uint32 // per input: its source event's group
	groups []group  // by gid
	last   []sourceEvent
	byKey  map[sourceEvent]uint32 // gid by source event, when inputs are out of order
	// unsequencedCopies: the calls' outputs may not reach the pipeline's
	// stages in one batch (a gadget's module, in front of its source), so
	// copies are never numbered 1, 2, 3... (see numberDerived).
	unsequencedCopies bool
}

// shrink lets go of scratch slices grown past max entries (an unusual
// batch), so that an instance does not keep them.
func (sc *resultScratch) shrink(max int) {
	if cap(sc.emits) > max || cap(sc.from) > max || cap(sc.uses) > max || cap(sc.gid) > max || cap(sc.groups) > max {
		*sc = resultScratch{unsequencedCopies: sc.unsequencedCopies}
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

// parseResult appends the events the result res describes to out and
// returns it. in are the inputs of the call; a tick's result (tick set) may
// only hold EMIT entries derived from no input. An event derived from input
// i inherits its Source, Seq, Part and Schema (as a rendering hint: its keys
// may differ); one derived from no input has Source source, Seq 0 and a
// Part of its own (pipeline.UnsequencedPart). When an input yields several
// events (a flat-map, a repeated KEEP), the events of its source event are
// numbered apart (numberDerived), so that sinks which deduplicate by
// identity keep them all.
//
// res is guest memory, valid only until the next call into the guest, so
// the EMIT payloads are copied out into one new buffer for the batch; KEEP
// entries reuse the inputs' bytes. sc is scratch space (nil: none kept).
// On error out is returned as it was given.
func parseResult(res []byte, in, out []pipeline.Event, tick bool, source string, sc *resultScratch) ([]pipeline.Event, error) {
	if sc == nil {
		sc = new(resultScratch)
	}
	start := len(out)
	sc.emits, sc.from = sc.emits[:0], sc.from[:0]
	fail := func(format string, args ...any) ([]pipeline.Event, error) {
		clear(out[start:])
		return out[:start], fmt.Errorf("%w: %s", errMalformed, fmt.Sprintf(format, args...))
	}
	if len(res) < 4 {
		return fail("%d bytes hold no entry count", len(res))
	}
	count := binary.LittleEndian.Uint32(res)
	off := 4
	emitBytes := 0
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
			if tick {
				return fail("entry %d: a tick has no inputs to KEEP", i)
			}
			if uint64(idx) >= uint64(len(in)) {
				return fail("entry %d: KEEP of input %d, but the batch has %d events", i, idx, len(in))
			}
			if int(idx) <= last {
				shared = true
			}
			last = int(idx)
			out = append(out, in[idx])
		case opEmit:
			if len(res)-off < 4 {
				return fail("entry %d of %d: EMIT length cut short at byte %d of %d", i, count, off, len(res))
			}
			n := int(binary.LittleEndian.Uint32(res[off:]))
			off += 4
			if n > len(res)-off {
				return fail("entry %d: EMIT of %d bytes at byte %d runs past the end of the %d-byte result", i, n, off, len(res))
			}
			payload := res[off : off+n : off+n]
			off += n
			if !tick && uint64(idx) < uint64(len(in)) && extendsInput(payload, in[idx].Data) {
				// An enrichment: checked without walking what it copied.
			} else if err := checkEvent(payload); err != nil {
				return fail("entry %d: EMIT payload: %v", i, err)
			}
			var ev pipeline.Event
			switch {
			case idx == noInput:
				ev = pipeline.Event{Source: source, Part: pipeline.UnsequencedPart()}
			case tick:
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
			ev.Data = payload
			sc.emits = append(sc.emits, len(out))
			out = append(out, ev)
			emitBytes += n
		default:
			return fail("entry %d: op %d is neither KEEP (1) nor EMIT (2)", i, op)
		}
		sc.from = append(sc.from, idx)
	}
	if off != len(res) {
		return fail("%d bytes follow the last of %d entries", len(res)-off, count)
	}
	if len(sc.emits) > 0 {
		buf := make([]byte, 0, emitBytes)
		for _, at := range sc.emits {
			s := len(buf)
			buf = append(buf, out[at].Data...)
			out[at].Data = buf[s:len(buf):len(buf)]
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
