package wasmstages

import (
	"encoding/binary"
	"unsafe"
)

// keyWalk lets find_key answer an event without walking it when the
// event before it had the same layout up to the key: the events of a
// batch mostly come from one source, whose decoder writes the same keys
// in the same order with values of the same encoded sizes. Stepping over
// a field is a chain of dependent loads (its key's header says where its
// value's is, whose header says where the next key's is), about 4.5 ns a
// field; checking that what an earlier walk's steps depended on is still
// there is a few independent 8-byte loads per event.
//
// The walk (walkKey) decides each step from a few bits of an event, read
// in rising order: the map's header, each key's header, the bytes of each
// key as long as the one sought (the comparison), the header of each
// value before the key's (of a fixint only the bits that say it is one:
// its value does not change its size). The value found is not part of
// it: replay finds its end as the walk does. When all of those bits of the next event are equal, at the
// same offsets, and the event is as long as the walk needed, a walk of it
// would take the same steps and give the same answer. replay checks that
// with the bits packed into 8-byte windows (masked loads XORed against
// what they held); only a walk whose every step was decided by such bits
// alone is kept (no nested maps or arrays, no values the size table
// cannot step over but str8 and str16). So a replayed answer is the
// walk's answer, not a guess: an event that differs anywhere the walk
// looked is walked.
type keyWalk struct {
	// The windows: an event's 8 bytes at pos[k], loaded as a uint64 in
	// the CPU's byte order and masked by mask[k], must be want[k].
	pos        [maxWalkUnits]uint32
	mask, want [maxWalkUnits]uint64
	n          int    // windows in use; 0: nothing to replay
	need       int    // the length an event must have: the end of what the walk read
	start, end uint32 // the walk's answer

	// What the walk being recorded read: offsets (rising) and bytes.
	at        [maxWalkBytes]uint32
	val, bits [maxWalkBytes]byte // the bits of the byte the walk's step depended on
	nb        int
	over      bool // more bytes than at holds, or a step replay cannot repeat
}

const (
	maxWalkUnits = 32
	maxWalkBytes = 128
)

// replay returns the answer of the recorded walk for b, or ok false when
// b differs from the recorded event where the walk looked.
//
// Not inlined: in find_key's loop its registers would be spilled.
//
//go:noinline
func (w *keyWalk) replay(b []byte) (start, end uint32, ok bool) {
	n := w.n
	if n == 0 || len(b) < w.need {
		return 0, 0, false
	}
	// The loads are independent of each other, unlike a walk's. Every
	// window lies below need (finish) and b is at least that long, so
	// they are loaded without a bounds check each: with them, the loads
	// cost a third more (16 against 12 ns per synthetic record).
	var d uint64
	base := unsafe.Pointer(unsafe.SliceData(b))
	for k := range n {
		d |= *(*uint64)(unsafe.Add(base, w.pos[k]))&w.mask[k] ^ w.want[k]
	}
	if d != 0 {
		return 0, 0, false
	}
	if w.start == findKeyMissing {
		return w.start, w.end, true
	}
	// Found: the value's end is the value's own, as the walk found it;
	// a fixstr's (a comm's) without a call.
	if c := b[w.start]; c&0xe0 == 0xa0 {
		if e := w.start + 1 + uint32(c&0x1f); int(e) <= len(b) {
			return w.start, e, true
		}
		return 0, 0, false
	}
	e, _ := valueEnd(b, int(w.start))
	if e < 0 || e > len(b) {
		return 0, 0, false // malformed: the walk says how
	}
	return w.start, uint32(e), true
}

// note records that the walk branched on b[i].
func (w *keyWalk) note(b []byte, i int) {
	w.noteBits(b, i, 0xff)
}

// noteBits records that the walk branched on the bits of b[i] in mask.
func (w *keyWalk) noteBits(b []byte, i int, mask byte) {
	if w.nb == maxWalkBytes {
		w.over = true
		return
	}
	w.at[w.nb], w.val[w.nb], w.bits[w.nb] = uint32(i), b[i]&mask, mask
	w.nb++
}

// noteHeader records that the walk stepped over the value whose header
// is b[i:i+h]: of a fixint only what says it is one, not its value.
func (w *keyWalk) noteHeader(b []byte, i, h int) {
	switch c := b[i]; {
	case c <= 0x7f:
		w.noteBits(b, i, 0x80)
	case c >= 0xe0:
		w.noteBits(b, i, 0xe0)
	default:
		w.noteRange(b, i, i+h)
	}
}

// noteRange records that the walk branched on b[i:j].
func (w *keyWalk) noteRange(b []byte, i, j int) {
	for ; i < j; i++ {
		w.note(b, i)
	}
}

// begin starts recording a walk.
func (w *keyWalk) begin() {
	w.n, w.nb, w.over = 0, 0, false
}

// finish keeps the recorded walk, which answered (start, end) and needed
// need bytes of its event, for replay when it can be replayed.
func (w *keyWalk) finish(need int, start, end uint32) {
	w.n = 0
	if w.over || need < 8 || w.nb == 0 {
		return
	}
	n := 0
	for k := 0; k < w.nb; {
		if n == maxWalkUnits {
			return
		}
		// A window from the next byte, moved back to end within the
		// event; the bytes recorded lie below need, so they still fit.
		p := min(int(w.at[k]), need-8) // replay relies on p+8 <= need
		var mask, want [8]byte         // as the window's bytes lie in memory
		for ; k < w.nb && int(w.at[k]) < p+8; k++ {
			mask[int(w.at[k])-p], want[int(w.at[k])-p] = w.bits[k], w.val[k]
		}
		w.pos[n] = uint32(p)
		w.mask[n], w.want[n] = binary.NativeEndian.Uint64(mask[:]), binary.NativeEndian.Uint64(want[:])
		n++
	}
	w.n, w.need, w.start, w.end = n, need, start, end
}

// valueEnd returns the offset past the value at b[i] (i < len(b)), or a
// negative one when it is malformed, and h, the size of the header that
// decided it, or 0 when it took more than a header (a container). Most
// values' sizes are in their first byte: stepped over here, without a
// call; so are str8 and str16 (timestamps are str8).
func valueEnd(b []byte, i int) (e, h int) {
	v := b[i]
	if sz := int(fixedSize[v]); sz != 0 {
		return i + sz, 1
	}
	switch {
	case v == 0xd9 && i+2 <= len(b):
		return i + 2 + int(b[i+1]), 2
	case v == 0xda && i+3 <= len(b):
		return i + 3 + int(binary.BigEndian.Uint16(b[i+1:])), 3
	}
	return wellFormedAt(b, i, 1), 0
}

// walkKey is findKeyIn, recording in w (when not nil) the bytes it branched
// on, and keeping the walk for replay when it can be replayed.
func walkKey(b, key []byte, w *keyWalk) (start, end uint32) {
	if w != nil {
		w.begin()
	}
	var n, i int
	switch {
	case len(b) == 0:
		return findKeyMissing, findKeyMissing
	case b[0]&0xf0 == 0x80:
		n, i = int(b[0]&0x0f), 1
	case b[0] == 0xde && len(b) >= 3:
		n, i = int(binary.BigEndian.Uint16(b[1:])), 3
	case b[0] == 0xdf && len(b) >= 5:
		n, i = int(binary.BigEndian.Uint32(b[1:])), 5
	default:
		return findKeyMissing, findKeyMissing
	}
	if w != nil {
		w.noteRange(b, 0, i)
	}
	for ; n > 0; n-- {
		if i >= len(b) {
			return findKeyMissing, findKeyMissing
		}
		ks, ke := -1, 0
		if c := b[i]; c&0xe0 == 0xa0 {
			ks, ke = i+1, i+1+int(c&0x1f)
			if w != nil {
				w.note(b, i)
			}
		} else if c == 0xd9 || c == 0xda || c == 0xdb || c == 0xc4 || c == 0xc5 || c == 0xc6 {
			l, h := strHeader(b, i)
			if h < 0 {
				return findKeyMissing, findKeyMissing
			}
			ks, ke = i+h, i+h+l
			if w != nil {
				w.noteRange(b, i, i+h)
			}
		} else if ke = skipChecked(b, i); ke < 0 {
			return findKeyMissing, findKeyMissing
		} else if w != nil {
			if fixedSize[c] == 0 {
				w.over = true // a container as a key
			}
			w.noteHeader(b, i, 1)
		}
		if ke >= len(b) { // a value takes at least one byte
			return findKeyMissing, findKeyMissing
		}
		e, h := valueEnd(b, ke)
		if e < 0 || e > len(b) {
			return findKeyMissing, findKeyMissing
		}
		if ks >= 0 && ke-ks == len(key) {
			if w != nil {
				w.noteRange(b, ks, ke)
			}
			if string(b[ks:ke]) == string(key) {
				if w != nil {
					// The value is not noted: replay finds its end as
					// this walk did, so comms of any length replay.
					w.finish(ke+1, uint32(ke), 0)
				}
				return uint32(ke), uint32(e)
			}
		}
		if w != nil {
			if h == 0 {
				w.over = true
			}
			w.noteHeader(b, ke, h)
		}
		i = e
	}
	if i > len(b) {
		return findKeyMissing, findKeyMissing
	}
	if w != nil {
		w.finish(i, findKeyMissing, uint32(i))
	}
	return findKeyMissing, uint32(i)
}
