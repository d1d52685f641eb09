package sluice

import (
	"encoding/binary"
	"unsafe"
)

// The scanner works on byte offsets into one encoded event and never
// allocates. Every function returns -1 for malformed or truncated input
// instead of panicking, so a hostile or broken event cannot crash a stage.

// sizeTab holds the whole encoded size of every value whose first byte
// fixes it (ints, nil, bools, floats, fixstr, fixext, empty fixmap and
// fixarray), and 0 for those that need decoding (str 8/16/32, bin, arrays,
// maps, ext, and 0xc1, which is never valid). One table lookup replaces a
// chain of branches on the hot path, which matters most in Go's Wasm code.
var sizeTab = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c <= 0x7f || c >= 0xe0:
			t[c] = 1
		case c == 0x80 || c == 0x90:
			t[c] = 1
		case c >= 0xa0 && c <= 0xbf:
			t[c] = uint8(1 + c&0x1f)
		}
	}
	for c, n := range map[byte]uint8{
		0xc0: 1, 0xc2: 1, 0xc3: 1, 0xca: 5, 0xcb: 9,
		0xcc: 2, 0xcd: 3, 0xce: 5, 0xcf: 9, 0xd0: 2, 0xd1: 3, 0xd2: 5, 0xd3: 9,
		0xd4: 3, 0xd5: 4, 0xd6: 6, 0xd7: 10, 0xd8: 18,
	} {
		t[c] = n
	}
	return t
}()

// skip returns the offset just past the msgpack value that starts at b[i],
// or -1. It is iterative: nested arrays and maps add to the number of values
// still to skip, so no input can exhaust the stack.
func skip(b []byte, i int) int {
	for pending := 1; pending > 0; pending-- {
		if i < 0 || i >= len(b) {
			return -1
		}
		c := b[i]
		if sz := sizeTab[c]; sz != 0 {
			i += int(sz)
			continue
		}
		switch {
		case c <= 0x8f: // fixmap
			pending += 2 * int(c&0x0f)
			i++
		case c <= 0x9f: // fixarray
			pending += int(c & 0x0f)
			i++
		default:
			n, h := sizedLen(b, i)
			switch {
			case h < 0:
				return -1
			case c == 0xdc || c == 0xdd: // array 16/32
				pending += n
				n = 0
			case c == 0xde || c == 0xdf: // map 16/32
				pending += 2 * n
				n = 0
			}
			i += h + n
		}
		// Each value still to skip takes at least one byte: a count beyond
		// what is left is malformed, and bounding it keeps pending small.
		if pending-1 > len(b)-i {
			return -1
		}
	}
	if i > len(b) {
		return -1
	}
	return i
}

// sizedLen decodes the header of the non-fix value at b[i]: h is the header
// size in bytes and n the payload size (for str, bin and ext) or the element
// count (for array 16/32 and map 16/32). h is -1 when the header is
// truncated or the byte starts no msgpack value (0xc1).
func sizedLen(b []byte, i int) (n, h int) {
	c := b[i]
	switch c {
	case 0xc0, 0xc2, 0xc3: // nil, false, true
		return 0, 1
	case 0xcc, 0xd0:
		return 1, 1
	case 0xcd, 0xd1:
		return 2, 1
	case 0xce, 0xd2, 0xca:
		return 4, 1
	case 0xcf, 0xd3, 0xcb:
		return 8, 1
	case 0xd4: // fixext 1, 2, 4, 8, 16: type byte plus data
		return 2, 1
	case 0xd5:
		return 3, 1
	case 0xd6:
		return 5, 1
	case 0xd7:
		return 9, 1
	case 0xd8:
		return 17, 1
	case 0xc4, 0xd9: // bin 8, str 8
		if i+2 > len(b) {
			return 0, -1
		}
		return int(b[i+1]), 2
	case 0xc5, 0xda, 0xdc, 0xde: // bin 16, str 16, array 16, map 16
		if i+3 > len(b) {
			return 0, -1
		}
		return int(binary.BigEndian.Uint16(b[i+1:])), 3
	case 0xc6, 0xdb, 0xdd, 0xdf: // bin 32, str 32, array 32, map 32
		if i+5 > len(b) {
			return 0, -1
		}
		return int(binary.BigEndian.Uint32(b[i+1:])), 5
	case 0xc7: // ext 8
		if i+2 > len(b) {
			return 0, -1
		}
		return int(b[i+1]) + 1, 2
	case 0xc8: // ext 16
		if i+3 > len(b) {
			return 0, -1
		}
		return int(binary.BigEndian.Uint16(b[i+1:])) + 1, 3
	case 0xc9: // ext 32
		if i+5 > len(b) {
			return 0, -1
		}
		return int(binary.BigEndian.Uint32(b[i+1:])) + 1, 5
	}
	return 0, -1 // 0xc1 is never used
}

// mapHeader reads the map header at b[i]: the number of entries and the
// offset of the first key, or (0, -1).
func mapHeader(b []byte, i int) (n, next int) {
	if i < 0 || i >= len(b) {
		return 0, -1
	}
	c := b[i]
	if c&0xf0 == 0x80 {
		return int(c & 0x0f), i + 1
	}
	if c != 0xde && c != 0xdf {
		return 0, -1
	}
	n, h := sizedLen(b, i)
	if h < 0 || n > (len(b)-i-h)/2 {
		return 0, -1
	}
	return n, i + h
}

// arrayHeader reads the array header at b[i] like mapHeader.
func arrayHeader(b []byte, i int) (n, next int) {
	if i < 0 || i >= len(b) {
		return 0, -1
	}
	c := b[i]
	if c&0xf0 == 0x90 {
		return int(c & 0x0f), i + 1
	}
	if c != 0xdc && c != 0xdd {
		return 0, -1
	}
	n, h := sizedLen(b, i)
	if h < 0 || n > len(b)-i-h {
		return 0, -1
	}
	return n, i + h
}

// strBounds returns the payload bounds of the str or bin value at b[i], or
// (-1, -1) when it is another type or truncated.
func strBounds(b []byte, i int) (start, end int) {
	if i < 0 || i >= len(b) {
		return -1, -1
	}
	c := b[i]
	if c&0xe0 == 0xa0 {
		start, end = i+1, i+1+int(c&0x1f)
	} else {
		switch c {
		case 0xd9, 0xda, 0xdb, 0xc4, 0xc5, 0xc6:
		default:
			return -1, -1
		}
		n, h := sizedLen(b, i)
		if h < 0 {
			return -1, -1
		}
		start, end = i+h, i+h+n
	}
	if end > len(b) {
		return -1, -1
	}
	return start, end
}

// findKey scans the map at the start of b for a str key equal to key and
// returns the bounds of its value. When the key is missing, start is -1 and
// end is the offset where the map ended (so end == len(b) also says the
// whole map is well-formed); when the map is malformed before the key, both
// are -1. It compares lengths and first bytes
// before whole keys, and steps over fixed-size values with one table
// lookup: this loop is most of what a filter stage costs.
func findKey(b []byte, key string) (start, end int) {
	var n, i int
	if len(b) > 0 && b[0]&0xf0 == 0x80 { // fixmap, inline
		n, i = int(b[0]&0x0f), 1
	} else if n, i = mapHeader(b, 0); i < 0 {
		return -1, -1
	}
	kl := len(key)
	if kl == 0 || kl > 31 {
		return findKeyFrom(b, key, i, n)
	}
	hdr, k0 := 0xa0|byte(kl), key[0]
	// Unchecked reads: i and ke are compared with len(b) before each read,
	// and Go's Wasm code pays for every bounds check it can skip.
	p := unsafe.Pointer(unsafe.SliceData(b))
	lb := len(b)
	for {
		// The inner loop makes no call, so that Go keeps its variables
		// in Wasm locals instead of storing them to its stack at every
		// entry: it steps over fixstr keys with fixed-size values and
		// stops at anything else (a candidate key, a value to skip).
		for ; n > 0; n-- {
			if i >= lb {
				return -1, -1
			}
			c := *(*byte)(unsafe.Add(p, i))
			ke := i + 1 + int(c&0x1f)
			if c&0xe0 != 0xa0 || ke >= lb || c == hdr {
				break
			}
			sz := int(sizeTab[*(*byte)(unsafe.Add(p, ke))])
			if sz == 0 {
				break
			}
			i = ke + sz
		}
		if n == 0 {
			if i > lb { // the last value runs past the end
				return -1, -1
			}
			return -1, i
		}
		// One entry the inner loop left.
		c := b[i]
		if c&0xe0 != 0xa0 { // not a fixstr key: rare, take the general path
			return findKeyFrom(b, key, i, n)
		}
		ke := i + 1 + int(c&0x1f)
		if ke >= lb { // a value takes at least one byte
			return -1, -1
		}
		sz := int(sizeTab[b[ke]])
		if sz != 0 {
			end = ke + sz
		} else {
			end = skip(b, ke)
		}
		if end < 0 || end > lb {
			return -1, -1
		}
		if c == hdr && b[i+1] == k0 && string(b[i+1:ke]) == key {
			return ke, end
		}
		i = end
		n--
	}
}

// findKeyFrom is findKey for any key, from the entry at b[i] with n entries
// left.
func findKeyFrom(b []byte, key string, i, n int) (start, end int) {
	for ; n > 0; n-- {
		ks, ke := strBounds(b, i)
		str := ks >= 0
		if !str {
			// A key of another type can never equal key; skip it.
			if ke = skip(b, i); ke < 0 {
				return -1, -1
			}
		}
		end = skip(b, ke)
		if end < 0 {
			return -1, -1
		}
		if str && ke-ks == len(key) && string(b[ks:ke]) == key {
			return ke, end
		}
		i = end
	}
	return -1, i
}
