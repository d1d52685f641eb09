package codec

import (
	"encoding/binary"
	"errors"
	"math"
)

// Errors returned by the readers. They are values: no input makes a reader
// panic.
var (
	// ErrShort reports input that ends inside a value.
	ErrShort = errors.New("msgpack: truncated value")
	// ErrType reports a value of another type than the reader expects, or a
	// byte that starts no msgpack value.
	ErrType = errors.New("msgpack: unexpected type")
	// ErrDepth reports nesting deeper than MaxDepth.
	ErrDepth = errors.New("msgpack: nesting too deep")
)

// MaxDepth bounds nesting, so hostile input cannot exhaust the stack.
const MaxDepth = 64

// Skip returns the length in bytes of the first complete value in b.
func Skip(b []byte) (int, error) { return skip(b, 0) }

func skip(b []byte, depth int) (int, error) {
	if depth > MaxDepth {
		return 0, ErrDepth
	}
	if len(b) == 0 {
		return 0, ErrShort
	}
	c := b[0]
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		return 1, nil
	case c&0xe0 == 0xa0: // fixstr
		return need(b, 1+int(c&0x1f))
	case c&0xf0 == 0x90: // fixarray
		return skipN(b, 1, int(c&0x0f), depth)
	case c&0xf0 == 0x80: // fixmap
		return skipN(b, 1, 2*int(c&0x0f), depth)
	}
	switch c {
	case 0xcc, 0xd0:
		return need(b, 2)
	case 0xcd, 0xd1:
		return need(b, 3)
	case 0xce, 0xd2, 0xca:
		return need(b, 5)
	case 0xcf, 0xd3, 0xcb:
		return need(b, 9)
	case 0xd4:
		return need(b, 3)
	case 0xd5:
		return need(b, 4)
	case 0xd6:
		return need(b, 6)
	case 0xd7:
		return need(b, 10)
	case 0xd8:
		return need(b, 18)
	case 0xc4, 0xd9: // bin8, str8
		n, h, err := length(b, 1)
		if err != nil {
			return 0, err
		}
		return need(b, h+n)
	case 0xc5, 0xda:
		n, h, err := length(b, 2)
		if err != nil {
			return 0, err
		}
		return need(b, h+n)
	case 0xc6, 0xdb:
		n, h, err := length(b, 4)
		if err != nil {
			return 0, err
		}
		return need(b, h+n)
	case 0xc7, 0xc8, 0xc9: // ext8/16/32: length, type byte, data
		w := 1 << (c - 0xc7) // 1, 2, 4
		n, h, err := length(b, w)
		if err != nil {
			return 0, err
		}
		return need(b, h+1+n)
	case 0xdc, 0xdd:
		w := 2
		if c == 0xdd {
			w = 4
		}
		n, h, err := length(b, w)
		if err != nil {
			return 0, err
		}
		return skipN(b, h, n, depth)
	case 0xde, 0xdf:
		w := 2
		if c == 0xdf {
			w = 4
		}
		n, h, err := length(b, w)
		if err != nil {
			return 0, err
		}
		if n > len(b) {
			return 0, ErrShort
		}
		return skipN(b, h, 2*n, depth)
	}
	return 0, ErrType // 0xc1 is never used
}

func need(b []byte, n int) (int, error) {
	if n < 0 || n > len(b) {
		return 0, ErrShort
	}
	return n, nil
}

// length reads a w-byte big-endian length after the type byte, returning
// it and the header size.
func length(b []byte, w int) (int, int, error) {
	if len(b) < 1+w {
		return 0, 0, ErrShort
	}
	var n uint64
	switch w {
	case 1:
		n = uint64(b[1])
	case 2:
		n = uint64(binary.BigEndian.Uint16(b[1:]))
	case 4:
		n = uint64(binary.BigEndian.Uint32(b[1:]))
	}
	if n > uint64(len(b)) {
		return 0, 0, ErrShort
	}
	return int(n), 1 + w, nil
}

func skipN(b []byte, off, n, depth int) (int, error) {
	if n > len(b) { // every element takes at least one byte
		return 0, ErrShort
	}
	for i := 0; i < n; i++ {
		m, err := skip(b[off:], depth+1)
		if err != nil {
			return 0, err
		}
		off += m
	}
	return off, nil
}

// ReadMapHeader reads a map header: the number of key/value pairs.
func ReadMapHeader(b []byte) (int, []byte, error) {
	if len(b) == 0 {
		return 0, b, ErrShort
	}
	c := b[0]
	if c&0xf0 == 0x80 {
		return int(c & 0x0f), b[1:], nil
	}
	w := 0
	switch c {
	case 0xde:
		w = 2
	case 0xdf:
		w = 4
	default:
		return 0, b, ErrType
	}
	if len(b) < 1+w {
		return 0, b, ErrShort
	}
	n := lengthValue(b, w)
	return n, b[1+w:], nil
}

// ReadArrayHeader reads an array header: the number of elements.
func ReadArrayHeader(b []byte) (int, []byte, error) {
	if len(b) == 0 {
		return 0, b, ErrShort
	}
	c := b[0]
	if c&0xf0 == 0x90 {
		return int(c & 0x0f), b[1:], nil
	}
	w := 0
	switch c {
	case 0xdc:
		w = 2
	case 0xdd:
		w = 4
	default:
		return 0, b, ErrType
	}
	if len(b) < 1+w {
		return 0, b, ErrShort
	}
	return lengthValue(b, w), b[1+w:], nil
}

func lengthValue(b []byte, w int) int {
	if w == 2 {
		return int(binary.BigEndian.Uint16(b[1:]))
	}
	return int(binary.BigEndian.Uint32(b[1:]))
}

// ReadString reads a str (or bin) value, returning a subslice of b.
func ReadString(b []byte) ([]byte, []byte, error) {
	if len(b) == 0 {
		return nil, b, ErrShort
	}
	c := b[0]
	var n, h int
	var err error
	switch {
	case c&0xe0 == 0xa0:
		n, h = int(c&0x1f), 1
	case c == 0xd9 || c == 0xc4:
		n, h, err = length(b, 1)
	case c == 0xda || c == 0xc5:
		n, h, err = length(b, 2)
	case c == 0xdb || c == 0xc6:
		n, h, err = length(b, 4)
	default:
		return nil, b, ErrType
	}
	if err != nil {
		return nil, b, err
	}
	if h+n > len(b) {
		return nil, b, ErrShort
	}
	return b[h : h+n], b[h+n:], nil
}

// ReadInt reads any integer encoding whose value fits an int64.
func ReadInt(b []byte) (int64, []byte, error) {
	if len(b) == 0 {
		return 0, b, ErrShort
	}
	c := b[0]
	switch {
	case c <= 0x7f:
		return int64(c), b[1:], nil
	case c >= 0xe0:
		return int64(int8(c)), b[1:], nil
	}
	size := intSize(c)
	if size == 0 {
		return 0, b, ErrType
	}
	if len(b) < 1+size {
		return 0, b, ErrShort
	}
	p := b[1 : 1+size]
	rest := b[1+size:]
	switch c {
	case 0xcc:
		return int64(p[0]), rest, nil
	case 0xcd:
		return int64(binary.BigEndian.Uint16(p)), rest, nil
	case 0xce:
		return int64(binary.BigEndian.Uint32(p)), rest, nil
	case 0xcf:
		u := binary.BigEndian.Uint64(p)
		if u > math.MaxInt64 {
			return 0, b, ErrType
		}
		return int64(u), rest, nil
	case 0xd0:
		return int64(int8(p[0])), rest, nil
	case 0xd1:
		return int64(int16(binary.BigEndian.Uint16(p))), rest, nil
	case 0xd2:
		return int64(int32(binary.BigEndian.Uint32(p))), rest, nil
	}
	return int64(binary.BigEndian.Uint64(p)), rest, nil
}

// ReadUint reads any integer encoding whose value is not negative.
func ReadUint(b []byte) (uint64, []byte, error) {
	if len(b) > 0 && b[0] == 0xcf {
		if len(b) < 9 {
			return 0, b, ErrShort
		}
		return binary.BigEndian.Uint64(b[1:]), b[9:], nil
	}
	v, rest, err := ReadInt(b)
	if err != nil {
		return 0, b, err
	}
	if v < 0 {
		return 0, b, ErrType
	}
	return uint64(v), rest, nil
}

func intSize(c byte) int {
	switch c {
	case 0xcc, 0xd0:
		return 1
	case 0xcd, 0xd1:
		return 2
	case 0xce, 0xd2:
		return 4
	case 0xcf, 0xd3:
		return 8
	}
	return 0
}

// ReadBool reads a boolean.
func ReadBool(b []byte) (bool, []byte, error) {
	if len(b) == 0 {
		return false, b, ErrShort
	}
	switch b[0] {
	case 0xc2:
		return false, b[1:], nil
	case 0xc3:
		return true, b[1:], nil
	}
	return false, b, ErrType
}

// ReadFloat64 reads a float32, float64 or integer as a float64.
func ReadFloat64(b []byte) (float64, []byte, error) {
	if len(b) == 0 {
		return 0, b, ErrShort
	}
	switch b[0] {
	case 0xca:
		if len(b) < 5 {
			return 0, b, ErrShort
		}
		return float64(math.Float32frombits(binary.BigEndian.Uint32(b[1:]))), b[5:], nil
	case 0xcb:
		if len(b) < 9 {
			return 0, b, ErrShort
		}
		return math.Float64frombits(binary.BigEndian.Uint64(b[1:])), b[9:], nil
	case 0xcf:
		u, rest, err := ReadUint(b)
		return float64(u), rest, err
	}
	v, rest, err := ReadInt(b)
	return float64(v), rest, err
}

// IsNil reports whether b starts with a nil.
func IsNil(b []byte) bool { return len(b) > 0 && b[0] == 0xc0 }

// Each calls fn for every entry of the map m, with the key's bytes (str or
// bin keys; other keys are passed as their raw encoding) and the value's raw
// encoding, until fn returns false.
func Each(m []byte, fn func(key, value []byte) bool) error {
	n, b, err := ReadMapHeader(m)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		klen, err := Skip(b)
		if err != nil {
			return err
		}
		key := b[:klen]
		if s, _, err := ReadString(key); err == nil {
			key = s
		}
		b = b[klen:]
		vlen, err := Skip(b)
		if err != nil {
			return err
		}
		if !fn(key, b[:vlen]) {
			return nil
		}
		b = b[vlen:]
	}
	return nil
}

// Lookup returns the raw encoding of the value under a top-level string key
// of the map event, without decoding the other entries. ok is false when
// the key is missing or the input is malformed.
func Lookup(event []byte, key string) (raw []byte, ok bool) {
	n, b, err := ReadMapHeader(event)
	if err != nil {
		return nil, false
	}
	for i := 0; i < n; i++ {
		k, rest, err := ReadString(b)
		if err != nil {
			klen, err := Skip(b)
			if err != nil {
				return nil, false
			}
			rest = b[klen:]
			k = nil
		}
		vlen, err := Skip(rest)
		if err != nil {
			return nil, false
		}
		if k != nil && string(k) == key {
			return rest[:vlen], true
		}
		b = rest[vlen:]
	}
	return nil, false
}
