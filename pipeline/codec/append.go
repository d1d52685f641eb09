// Package codec holds the allocation-free msgpack appenders the hot path
// encodes events with, a reader that walks encoded events without decoding
// them into maps, and a msgpack-to-JSON transcoder for text sinks.
//
// Appenders follow the strconv.Append* convention: they append to dst and
// return the extended slice. All functions are safe for concurrent use.
package codec

import (
	"encoding/binary"
	"math"
)

// AppendNil appends a msgpack nil.
func AppendNil(dst []byte) []byte { return append(dst, 0xc0) }

// AppendBool appends a msgpack boolean.
func AppendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, 0xc3)
	}
	return append(dst, 0xc2)
}

// AppendInt appends v in the smallest msgpack integer encoding.
func AppendInt(dst []byte, v int64) []byte {
	switch {
	case v >= 0:
		return AppendUint(dst, uint64(v))
	case v >= -32:
		return append(dst, byte(v))
	case v >= math.MinInt8:
		return append(dst, 0xd0, byte(v))
	case v >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(dst, 0xd1), uint16(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(dst, 0xd2), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xd3), uint64(v))
}

// AppendUint appends v in the smallest msgpack integer encoding.
func AppendUint(dst []byte, v uint64) []byte {
	switch {
	case v <= 0x7f:
		return append(dst, byte(v))
	case v <= math.MaxUint8:
		return append(dst, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, 0xcd), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, 0xce), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xcf), v)
}

// AppendFloat64 appends a msgpack float64.
func AppendFloat64(dst []byte, v float64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, 0xcb), math.Float64bits(v))
}

// AppendStringHeader appends the header of a msgpack str of n bytes.
func AppendStringHeader(dst []byte, n int) []byte {
	switch {
	case n <= 31:
		return append(dst, 0xa0|byte(n))
	case n <= math.MaxUint8:
		return append(dst, 0xd9, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, 0xda), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(dst, 0xdb), uint32(n))
}

// AppendString appends s as a msgpack str.
func AppendString(dst []byte, s string) []byte {
	return append(AppendStringHeader(dst, len(s)), s...)
}

// AppendStringBytes appends b as a msgpack str without converting it to a
// string first.
func AppendStringBytes(dst []byte, b []byte) []byte {
	return append(AppendStringHeader(dst, len(b)), b...)
}

// AppendBytes appends b as a msgpack bin.
func AppendBytes(dst []byte, b []byte) []byte {
	n := len(b)
	switch {
	case n <= math.MaxUint8:
		dst = append(dst, 0xc4, byte(n))
	case n <= math.MaxUint16:
		dst = binary.BigEndian.AppendUint16(append(dst, 0xc5), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint32(append(dst, 0xc6), uint32(n))
	}
	return append(dst, b...)
}

// AppendArrayHeader appends the header of a msgpack array of n elements.
func AppendArrayHeader(dst []byte, n int) []byte {
	switch {
	case n <= 15:
		return append(dst, 0x90|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, 0xdc), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(dst, 0xdd), uint32(n))
}

// AppendMapHeader appends the header of a msgpack map of n key/value pairs.
func AppendMapHeader(dst []byte, n int) []byte {
	switch {
	case n <= 15:
		return append(dst, 0x80|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, 0xde), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(dst, 0xdf), uint32(n))
}

// AppendArrayHeader32 appends an array header with a fixed 5-byte encoding,
// for callers that learn the element count only after writing the elements.
// Patch the count with PatchHeader32.
func AppendArrayHeader32(dst []byte) []byte { return append(dst, 0xdd, 0, 0, 0, 0) }

// AppendMapHeader32 is AppendArrayHeader32 for maps.
func AppendMapHeader32(dst []byte) []byte { return append(dst, 0xdf, 0, 0, 0, 0) }

// PatchHeader32 stores n into the 5-byte header written at buf[at:].
func PatchHeader32(buf []byte, at int, n int) {
	binary.BigEndian.PutUint32(buf[at+1:at+5], uint32(n))
}
