package sluice

import (
	"iter"
	"math"

	"github.com/sluice-dev/sluice/pipeline/codec"
)

// Type is the msgpack type of a Value.
type Type uint8

// The types a Value can have. TypeMissing is the type of the zero Value (a key
// that is not there); TypeInvalid is a value that is not well-formed msgpack.
const (
	TypeMissing Type = iota
	TypeNil
	TypeBool
	TypeInt // a signed or unsigned integer
	TypeFloat
	TypeString
	TypeBytes
	TypeArray
	TypeMap
	TypeExt
	TypeInvalid
)

var typeNames = [...]string{"missing", "nil", "bool", "int", "float", "string", "bytes", "array", "map", "ext", "invalid"}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "invalid"
}

// Value is one encoded msgpack value inside an event or the params: a view
// of bytes that are decoded only when asked. The zero Value stands for a
// missing key. A Value aliases the batch the host handed in and is valid
// until the handler that received it returns; String, Strings and the
// decoders copy what they return.
type Value struct {
	raw []byte
}

// RawValue wraps the msgpack encoding of one value, e.g. to pass a value
// built elsewhere to Event.Set.
func RawValue(msgpack []byte) Value { return Value{raw: msgpack} }

// Raw returns the value's msgpack encoding (nil when missing).
func (v Value) Raw() []byte { return v.raw }

// Exists reports whether the value is present (the key was there).
func (v Value) Exists() bool { return len(v.raw) > 0 }

// Type returns the value's msgpack type.
func (v Value) Type() Type {
	if len(v.raw) == 0 {
		return TypeMissing
	}
	c := v.raw[0]
	switch {
	case c <= 0x7f || c >= 0xe0:
		return TypeInt
	case c <= 0x8f:
		return TypeMap
	case c <= 0x9f:
		return TypeArray
	case c <= 0xbf:
		return TypeString
	}
	switch c {
	case 0xc0:
		return TypeNil
	case 0xc2, 0xc3:
		return TypeBool
	case 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3:
		return TypeInt
	case 0xca, 0xcb:
		return TypeFloat
	case 0xd9, 0xda, 0xdb:
		return TypeString
	case 0xc4, 0xc5, 0xc6:
		return TypeBytes
	case 0xdc, 0xdd:
		return TypeArray
	case 0xde, 0xdf:
		return TypeMap
	case 0xc7, 0xc8, 0xc9, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		return TypeExt
	}
	return TypeInvalid
}

// StringBytes returns the payload of a str (or bin) value without copying
// it: the slice aliases the batch and must not be kept past the handler.
// ok is false for other types.
func (v Value) StringBytes() (b []byte, ok bool) {
	s, e := strBounds(v.raw, 0)
	if s < 0 {
		return nil, false
	}
	return v.raw[s:e:e], true
}

// Str returns a str (or bin) value as a string (a copy).
func (v Value) Str() (string, bool) {
	b, ok := v.StringBytes()
	return string(b), ok
}

// Int returns an integer value that fits an int64.
func (v Value) Int() (int64, bool) {
	n, _, err := codec.ReadInt(v.raw)
	return n, err == nil
}

// Uint returns a non-negative integer value.
func (v Value) Uint() (uint64, bool) {
	n, _, err := codec.ReadUint(v.raw)
	return n, err == nil
}

// Float returns a float or integer value as a float64.
func (v Value) Float() (float64, bool) {
	f, _, err := codec.ReadFloat64(v.raw)
	return f, err == nil
}

// Bool returns a boolean value.
func (v Value) Bool() (bool, bool) {
	b, _, err := codec.ReadBool(v.raw)
	return b, err == nil
}

// Len returns the number of elements of an array, or of entries of a map;
// 0 for other types.
func (v Value) Len() int {
	if n, i := arrayHeader(v.raw, 0); i >= 0 {
		return n
	}
	if n, i := mapHeader(v.raw, 0); i >= 0 {
		return n
	}
	return 0
}

// Elems iterates over the elements of an array value. It yields nothing
// for other types and stops early at a malformed element.
func (v Value) Elems() iter.Seq[Value] {
	return func(yield func(Value) bool) {
		n, i := arrayHeader(v.raw, 0)
		if i < 0 {
			return
		}
		for ; n > 0; n-- {
			end := skip(v.raw, i)
			if end < 0 || !yield(Value{raw: v.raw[i:end:end]}) {
				return
			}
			i = end
		}
	}
}

// ElemIter steps through the elements of an array value without the
// closure calls of Elems, which cost about a hundred nanoseconds per
// element in Go's Wasm code:
//
//	for it := v.Iter(); ; {
//		el, ok := it.Next()
//		if !ok {
//			break
//		}
//		...
//	}
type ElemIter struct {
	raw     []byte
	i, left int
}

// Iter returns an iterator over the elements of an array value; it yields
// nothing for other types and stops early at a malformed element.
func (v Value) Iter() ElemIter {
	n, i := arrayHeader(v.raw, 0)
	if i < 0 {
		return ElemIter{}
	}
	return ElemIter{raw: v.raw, i: i, left: n}
}

// Next returns the next element, or false at the end.
func (it *ElemIter) Next() (Value, bool) {
	if it.left <= 0 {
		return Value{}, false
	}
	end := skip(it.raw, it.i)
	if end < 0 {
		it.left = 0
		return Value{}, false
	}
	el := Value{raw: it.raw[it.i:end:end]}
	it.i, it.left = end, it.left-1
	return el, true
}

// Index returns element i of an array value (a missing Value when out of
// range). It scans from the start: iterate with Elems for all elements.
func (v Value) Index(i int) Value {
	for e := range v.Elems() {
		if i == 0 {
			return e
		}
		i--
	}
	return Value{}
}

// Entries iterates over the entries of a map value: keys as their str
// payload (aliasing the batch), values as Values.
func (v Value) Entries() iter.Seq2[[]byte, Value] {
	return func(yield func([]byte, Value) bool) {
		eachEntry(v.raw, func(key []byte, val Value) bool { return yield(key, val) })
	}
}

// Get returns the value under a str key of a map value.
func (v Value) Get(key string) Value {
	s, e := findKey(v.raw, key)
	if s < 0 {
		return Value{}
	}
	return Value{raw: v.raw[s:e:e]}
}

// Strings returns the str elements of an array value as strings (copies);
// elements of other types are left out.
func (v Value) Strings() []string {
	var out []string
	for e := range v.Elems() {
		if b, ok := e.StringBytes(); ok {
			out = append(out, string(b))
		}
	}
	return out
}

// eachEntry calls fn for each entry of the map at the start of b, with the
// key's str payload (non-str keys are passed as their raw encoding). It
// returns false when the map is malformed.
func eachEntry(b []byte, fn func(key []byte, val Value) bool) bool {
	n, i := mapHeader(b, 0)
	if i < 0 {
		return false
	}
	for ; n > 0; n-- {
		ke := skip(b, i)
		if ke < 0 {
			return false
		}
		key := b[i:ke:ke]
		if s, e := strBounds(b, i); s >= 0 {
			key = b[s:e:e]
		}
		ve := skip(b, ke)
		if ve < 0 {
			return false
		}
		if !fn(key, Value{raw: b[ke:ve:ve]}) {
			return true
		}
		i = ve
	}
	return true
}

// floatIsInt reports whether f is an integer that an int64 holds exactly.
func floatIsInt(f float64) bool {
	return f == math.Trunc(f) && f >= math.MinInt64 && f < math.MaxInt64
}
