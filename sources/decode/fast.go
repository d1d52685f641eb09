package decode

import (
	"encoding/binary"
	"math/bits"
	"slices"
)

// The fast path of Append: a record at least as long as its struct,
// decoded by steps planned once at Compile. Each step writes its key (a
// constant, copied with one fixed-size store: no memmove call per key)
// and its value, straight into the room reserved for the whole event (no
// capacity check per byte written). The kinds every gadget has (integers,
// char arrays, the envelope's timestamp) are steps of their own; every
// other kind is a step that calls the op's general encoder. The bytes are
// those of the general path (appendOps), which a differential test holds
// it to; short records (a variable-length tail, fields past the end) and
// plans with tagged unions or snapshot keys take the general path.

type stepKind uint8

const (
	stepUint stepKind = iota
	stepInt
	stepBool
	stepComm    // char[16]: the NUL is found in two words, the bytes copied in one store
	stepChars   // char[N], N != 16
	stepTime    // the top-level gadget_timestamp the envelope's time came from
	stepGeneric // any other op: its own encoder
)

// stepKeyMax is the longest key a step copies with one store; longer keys
// are copied by copy().
const stepKeyMax = 32

type step struct {
	kind stepKind
	size uint8 // bytes of an integer (1, 2, 4, 8)
	klen uint8 // key bytes; 0 with a long key (see long)
	off  int
	n    int // stepChars: the array's size
	key  [stepKeyMax]byte
	long []byte // a key longer than stepKeyMax
	op   *op    // stepGeneric, stepTime (when the timestamp is zero)
	// after is the room the steps after this one need, which a generic
	// step makes once its encoder has appended what it wrote.
	after int
}

// compileSteps plans the fast path, or leaves p.steps nil when the plan
// has none (tagged unions, snapshot keys).
func (p *Plan) compileSteps() {
	if p.unions || p.snapshot {
		return
	}
	// room: the most bytes the steps write, with the slack of the
	// fixed-size stores; a generic step makes room for itself.
	room := len(p.envHead) + 32 + len(p.envTail) + len(p.seqKey) + 9 + stepKeyMax
	steps := make([]step, 0, len(p.ops))
	for i := range p.ops {
		o := &p.ops[i]
		s := step{kind: stepGeneric, off: o.off, op: o}
		if len(o.key) <= stepKeyMax {
			s.klen = uint8(copy(s.key[:], o.key))
		} else {
			s.long = o.key
		}
		room += len(o.key) + stepKeyMax
		fits := o.off >= 0 && o.off+o.size <= p.size
		switch {
		case !fits:
		case i == p.tsOp && !o.ig && o.size == 8:
			s.kind = stepTime
		case (o.kind == opUint || o.kind == opInt || o.kind == opBool) && isWordSize(o.size):
			s.kind, s.size = stepUint, uint8(o.size)
			if o.kind == opInt {
				s.kind = stepInt
			} else if o.kind == opBool {
				s.kind = stepBool
			}
		case o.kind == opChars && o.size == 16:
			s.kind = stepComm
		case o.kind == opChars && o.size > 0:
			s.kind, s.n = stepChars, o.size
		}
		switch s.kind {
		case stepTime:
			room += 32 + len(o.key2) + 9
		case stepUint, stepInt, stepBool:
			room += 9
		case stepComm:
			room += 1 + 16
		case stepChars:
			room += 5 + s.n
		}
		s.after = room // for now: the room up to and including s
		steps = append(steps, s)
	}
	for k := range steps {
		// What the later steps add, with the slack of a fixed-size store.
		steps[k].after = room - steps[k].after + stepKeyMax + 32
	}
	p.steps, p.room = steps, room
}

func isWordSize(n int) bool { return n == 1 || n == 2 || n == 4 || n == 8 }

// Room is how many bytes of spare capacity dst needs for Append not to
// reallocate it, for the fields of fixed size; a field of variable length
// (string lists, names) may take more. A reader that appends into an
// arena starts a new one when less is left.
func (p *Plan) Room() int { return p.room }

// appendFast is appendEvent's fast path; the record holds the whole struct.
func (p *Plan) appendFast(dst, record []byte, seq uint64, unixNano int64) []byte {
	if cap(dst)-len(dst) < p.room {
		dst = slices.Grow(dst, p.room)
	}
	i := len(dst)
	buf := dst[:cap(dst)]
	i += copy(buf[i:], p.envHead)
	envTime := i
	i = len(appendTimestamp(buf[:i], unixNano))
	envTimeEnd := i
	i += copy(buf[i:], p.envTail)
	i += copy(buf[i:], p.seqKey)
	i = putUint(buf, i, seq)
	for k := range p.steps {
		s := &p.steps[k]
		if s.kind == stepGeneric || s.kind == stepTime && binary.NativeEndian.Uint64(record[s.off:]) == 0 {
			// The op's own encoder, key included (a zero timestamp
			// renders as "", not as the envelope's time).
			dst = s.op.append(buf[:i], record, p)
			dst, buf, i = regrow(dst, s.after)
			continue
		}
		if s.klen > 0 {
			*(*[stepKeyMax]byte)(buf[i:]) = s.key
			i += int(s.klen)
		} else {
			i += copy(buf[i:], s.long)
		}
		switch s.kind {
		case stepUint:
			i = putUint(buf, i, readWord(record, s.off, s.size))
		case stepInt:
			i = putInt(buf, i, readSignedWord(record, s.off, s.size))
		case stepBool:
			b := byte(0xc2)
			if readWord(record, s.off, s.size) != 0 {
				b = 0xc3
			}
			buf[i] = b
			i++
		case stepComm:
			w0 := binary.LittleEndian.Uint64(record[s.off:])
			w1 := binary.LittleEndian.Uint64(record[s.off+8:])
			n := 16
			if z := zeroBytes(w0); z != 0 {
				n = bits.TrailingZeros64(z) / 8
			} else if z := zeroBytes(w1); z != 0 {
				n = 8 + bits.TrailingZeros64(z)/8
			}
			buf[i] = 0xa0 | byte(n)
			*(*[16]byte)(buf[i+1:]) = *(*[16]byte)(record[s.off:])
			i += 1 + n
		case stepChars:
			b := cstring(record[s.off : s.off+s.n])
			i = putStringHeader(buf, i, len(b))
			i += copy(buf[i:], b)
		case stepTime:
			// The envelope's time is this timestamp's rendering (a
			// str8 of at most 30 bytes).
			*(*[32]byte)(buf[i:]) = *(*[32]byte)(buf[envTime:])
			i += envTimeEnd - envTime
			i += copy(buf[i:], s.op.key2)
			i = putUint(buf, i, binary.NativeEndian.Uint64(record[s.off:]))
		}
	}
	return buf[:i]
}

// regrow makes room (need bytes) for the steps after a generic one,
// which appended what it wrote. Only what those steps need: an arena
// holds room for one event's fixed fields (Room), less what the event
// used so far, and growing it would copy the whole arena into a new
// array of the heap for every event that ends near its end.
func regrow(dst []byte, need int) ([]byte, []byte, int) {
	if cap(dst)-len(dst) < need {
		dst = slices.Grow(dst, need)
	}
	return dst, dst[:cap(dst)], len(dst)
}

// zeroBytes has the high bit set in each byte of w that is zero, and at
// least in the lowest one (the bits above the lowest zero byte may be
// wrong, which finding the first does not mind).
func zeroBytes(w uint64) uint64 {
	return (w - 0x0101010101010101) &^ w & 0x8080808080808080
}

// readWord reads an integer of 1, 2, 4 or 8 bytes from a record known to
// hold it.
func readWord(rec []byte, off int, size uint8) uint64 {
	switch size {
	case 1:
		return uint64(rec[off])
	case 2:
		return uint64(binary.NativeEndian.Uint16(rec[off:]))
	case 4:
		return uint64(binary.NativeEndian.Uint32(rec[off:]))
	}
	return binary.NativeEndian.Uint64(rec[off:])
}

func readSignedWord(rec []byte, off int, size uint8) int64 {
	switch size {
	case 1:
		return int64(int8(rec[off]))
	case 2:
		return int64(int16(binary.NativeEndian.Uint16(rec[off:])))
	case 4:
		return int64(int32(binary.NativeEndian.Uint32(rec[off:])))
	}
	return int64(binary.NativeEndian.Uint64(rec[off:]))
}

// putUint writes v at b[i:] as codec.AppendUint encodes it and returns
// the index past it; b has 9 bytes of room. Past a fixint it stores the
// marker and then all eight bytes of v shifted to the front, big-endian,
// and keeps the ones the encoding has: no branch per size, and small
// enough to be inlined.
func putUint(b []byte, i int, v uint64) int {
	if v <= 0x7f {
		b[i] = byte(v)
		return i + 1
	}
	c := uintSizes[bits.Len64(v)]
	b[i] = c.marker
	binary.BigEndian.PutUint64(b[i+1:], v<<(64-8*uint(c.n)))
	return i + 1 + int(c.n)
}

// uintSizes maps the bit length of an integer above 0x7f to its msgpack
// marker and the number of bytes after it.
var uintSizes = func() (t [65]struct{ marker, n uint8 }) {
	for l := range t {
		switch {
		case l <= 8:
			t[l].marker, t[l].n = 0xcc, 1
		case l <= 16:
			t[l].marker, t[l].n = 0xcd, 2
		case l <= 32:
			t[l].marker, t[l].n = 0xce, 4
		default:
			t[l].marker, t[l].n = 0xcf, 8
		}
	}
	return t
}()

// putInt writes v at b[i:] as codec.AppendInt encodes it.
func putInt(b []byte, i int, v int64) int {
	switch {
	case v >= 0:
		return putUint(b, i, uint64(v))
	case v >= -32:
		b[i] = byte(v)
		return i + 1
	case v >= -1<<7:
		b[i], b[i+1] = 0xd0, byte(v)
		return i + 2
	case v >= -1<<15:
		b[i] = 0xd1
		binary.BigEndian.PutUint16(b[i+1:], uint16(v))
		return i + 3
	case v >= -1<<31:
		b[i] = 0xd2
		binary.BigEndian.PutUint32(b[i+1:], uint32(v))
		return i + 5
	}
	b[i] = 0xd3
	binary.BigEndian.PutUint64(b[i+1:], uint64(v))
	return i + 9
}

// putStringHeader writes a msgpack str header for n bytes, as
// codec.AppendStringHeader does.
func putStringHeader(b []byte, i, n int) int {
	switch {
	case n <= 31:
		b[i] = 0xa0 | byte(n)
		return i + 1
	case n <= 0xff:
		b[i], b[i+1] = 0xd9, byte(n)
		return i + 2
	case n <= 0xffff:
		b[i] = 0xda
		binary.BigEndian.PutUint16(b[i+1:], uint16(n))
		return i + 3
	}
	b[i] = 0xdb
	binary.BigEndian.PutUint32(b[i+1:], uint32(n))
	return i + 5
}
