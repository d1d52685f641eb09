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

// parseResult appends the events the result res describes to out and
// returns it. in are the inputs of the call; a tick's result (tick set) may
// only hold EMIT entries derived from no input. An event derived from input
// i inherits its Source, Seq, Part and Schema (as a rendering hint: its keys
// may differ); one derived from no input has Source source, Seq 0 and a
// Part of its own (pipeline.UnsequencedPart). When several events derive
// from one input (a flat-map, a repeated KEEP), each gets its own Part
// (pipeline.DerivedPart), so that sinks which deduplicate by identity keep
// them all.
//
// res is guest memory, valid only until the next call into the guest, so
// the EMIT payloads are copied out into one new buffer for the batch; KEEP
// entries reuse the inputs' bytes. emits is scratch space, returned for
// reuse. On error out is returned as it was given.
func parseResult(res []byte, in, out []pipeline.Event, tick bool, source string, emits []int) ([]pipeline.Event, []int, error) {
	start := len(out)
	emits = emits[:0]
	fail := func(format string, args ...any) ([]pipeline.Event, []int, error) {
		clear(out[start:])
		return out[:start], emits, fmt.Errorf("%w: %s", errMalformed, fmt.Sprintf(format, args...))
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
			if err := checkEvent(payload); err != nil {
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
			emits = append(emits, len(out))
			out = append(out, ev)
			emitBytes += n
		default:
			return fail("entry %d: op %d is neither KEEP (1) nor EMIT (2)", i, op)
		}
	}
	if off != len(res) {
		return fail("%d bytes follow the last of %d entries", len(res)-off, count)
	}
	if len(emits) > 0 {
		buf := make([]byte, 0, emitBytes)
		for _, at := range emits {
			s := len(buf)
			buf = append(buf, out[at].Data...)
			out[at].Data = buf[s:len(buf):len(buf)]
		}
	}
	if shared {
		emits = numberDerived(res, in, out[start:], emits)
	}
	return out, emits, nil
}

// numberDerived gives each event of out that shares its input with others
// its own Part. res is a result parseResult accepted, and out holds its
// events, one per entry in entry order. scratch is reused and returned.
func numberDerived(res []byte, in, out []pipeline.Event, scratch []int) []int {
	// total[i]: events derived from input i; seen[i]: those numbered so far.
	scratch = slices.Grow(scratch[:0], 2*len(in))[:2*len(in)]
	clear(scratch)
	total, seen := scratch[:len(in)], scratch[len(in):]
	eachEntryInput(res, func(_ int, idx uint32) {
		if idx != noInput {
			total[idx]++
		}
	})
	eachEntryInput(res, func(k int, idx uint32) {
		if idx == noInput || total[idx] < 2 {
			return
		}
		out[k].Part = pipeline.DerivedPart(in[idx].Part, seen[idx])
		seen[idx]++
	})
	return scratch
}

// eachEntryInput calls fn with the position and input index of every entry
// of a well-formed result.
func eachEntryInput(res []byte, fn func(k int, idx uint32)) {
	count := int(binary.LittleEndian.Uint32(res))
	off := 4
	for k := range count {
		op, idx := res[off], binary.LittleEndian.Uint32(res[off+1:])
		off += 5
		if op == opEmit {
			off += 4 + int(binary.LittleEndian.Uint32(res[off:]))
		}
		fn(k, idx)
	}
}

// checkEvent reports whether b is exactly one well-formed msgpack map.
func checkEvent(b []byte) error {
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
