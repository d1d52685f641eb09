package wasmstages

import (
	"encoding/binary"
	"errors"
	"fmt"

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
}

// resultScratch is parseResult's scratch space, kept by an instance from
// one call to the next.
type resultScratch struct {
	pending []pendingOut
	plan    setPlan
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
// inherits its Source, Seq and Schema (as a rendering hint: its keys may
// differ); one derived from no input has Source rules.source and Seq 0.
//
// res is guest memory, valid only until the next call into the guest, so
// the EMIT payloads are copied out, and the SET events built, into one new
// buffer for the batch; KEEP entries reuse the inputs' bytes, as does a SET
// that changes nothing. On error out is returned as it was given.
func parseResult(res []byte, in, out []pipeline.Event, rules resultRules, scratch *resultScratch) ([]pipeline.Event, error) {
	start := len(out)
	pending := scratch.pending[:0]
	defer func() { scratch.pending = pending }()
	fail := func(format string, args ...any) ([]pipeline.Event, error) {
		clear(out[start:])
		return out[:start], fmt.Errorf("%w: %s", errMalformed, fmt.Sprintf(format, args...))
	}
	if len(res) < 4 {
		return fail("%d bytes hold no entry count", len(res))
	}
	count := binary.LittleEndian.Uint32(res)
	off := 4
	emitBytes, setBytes := 0, uint64(0)
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
			// A filter keeps runs of consecutive inputs: one append per
			// run instead of one per event.
			end := int(idx) + 1
			for i+1 < count && len(res)-off >= 5 && res[off] == opKeep && end < len(in) &&
				binary.LittleEndian.Uint32(res[off+1:]) == uint32(end) {
				off += 5
				i++
				end++
			}
			out = append(out, in[idx:end]...)
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
				if scratch.plan.keys, err = checkSetFields(payload, scratch.plan.keys); err != nil {
					return fail("entry %d: SET fields: %v", i, err)
				}
				ev = in[idx]
				if setBytes += uint64(len(ev.Data)) + uint64(n) + maxMapHeaderGrowth; setBytes > rules.setBudget {
					clear(out[start:])
					return out[:start], fmt.Errorf("%w: SET entries up to entry %d would make events of %d bytes", errOutputTooLarge, i, setBytes)
				}
			case idx == noInput:
				ev = pipeline.Event{Source: rules.source}
			case rules.tick:
				return fail("entry %d: a tick's EMIT derives from input %d; ticks have no inputs (use %#x)", i, idx, uint32(noInput))
			case uint64(idx) >= uint64(len(in)):
				return fail("entry %d: EMIT derived from input %d, but the batch has %d events", i, idx, len(in))
			default:
				ev = in[idx]
			}
			if op == opEmit {
				if !rules.tick && uint64(idx) < uint64(len(in)) && extendsInput(payload, in[idx].Data) {
					// An enrichment: checked without walking what it copied.
				} else if err := checkEvent(payload); err != nil {
					return fail("entry %d: EMIT payload: %v", i, err)
				}
				ev.Data = payload
				emitBytes += n
			}
			pending = append(pending, pendingOut{at: len(out), payload: payload, set: op == opSet})
			out = append(out, ev)
		default:
			if rules.set {
				return fail("entry %d: op %d is not KEEP (1), EMIT (2) or SET (3)", i, op)
			}
			return fail("entry %d: op %d is neither KEEP (1) nor EMIT (2)", i, op)
		}
	}
	if off != len(res) {
		return fail("%d bytes follow the last of %d entries", len(res)-off, count)
	}
	if len(pending) > 0 {
		// One buffer for the batch, made when the first event needs it: a
		// batch of SETs that change nothing needs none.
		var buf []byte
		left := uint64(emitBytes) + setBytes
		plan := &scratch.plan
		for _, p := range pending {
			input := out[p.at].Data
			if p.set && planSet(plan, input, p.payload) {
				left -= uint64(len(input)+len(p.payload)) + maxMapHeaderGrowth
				continue // the input as it was
			}
			if buf == nil {
				buf = make([]byte, 0, left)
			}
			s := len(buf)
			if p.set {
				buf = appendSet(buf, plan, input, p.payload)
				left -= uint64(len(input)+len(p.payload)) + maxMapHeaderGrowth
			} else {
				buf = append(buf, p.payload...)
				left -= uint64(len(p.payload))
			}
			out[p.at].Data = buf[s:len(buf):len(buf)]
		}
	}
	return out, nil
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
