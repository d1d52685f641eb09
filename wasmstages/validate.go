package wasmstages

import (
	"bytes"
	"encoding/binary"

	"github.com/sluice-dev/sluice/pipeline/codec"
)

// fixedSize holds the encoded size of every msgpack value whose first
// byte fixes it (ints, nil, bools, floats, fixstr, fixext, empty fixmap
// and fixarray), and 0 for the rest.
var fixedSize = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c <= 0x7f || c >= 0xe0, c == 0x80, c == 0x90, c == 0xc0, c == 0xc2, c == 0xc3:
			t[c] = 1
		case c >= 0xa0 && c <= 0xbf:
			t[c] = uint8(1 + c&0x1f)
		}
	}
	for c, n := range map[byte]uint8{
		0xca: 5, 0xcb: 9, 0xcc: 2, 0xcd: 3, 0xce: 5, 0xcf: 9, 0xd0: 2, 0xd1: 3, 0xd2: 5, 0xd3: 9,
		0xd4: 3, 0xd5: 4, 0xd6: 6, 0xd7: 10, 0xd8: 18,
	} {
		t[c] = n
	}
	return t
}()

// wellFormedMap reports whether b is exactly one msgpack map, well-formed
// and nested at most codec.MaxDepth deep: what codec.Skip accepts, checked
// without recursion or errors, since the host checks every event a stage
// emits. Values are stepped over in line: positive fixints and fixstrs
// (most keys and values) by a test of their first byte, without the size
// table, whose load would sit on the chain from one value to the next;
// fixmaps and fixarrays (the nested maps of a mapped event, short lists)
// by counting their values on a small stack. Other containers, and any
// past that stack, go through wellFormedAt, which checks the depth.
func wellFormedMap(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	var n, i int
	switch c := b[0]; {
	case c&0xf0 == 0x80:
		n, i = int(c&0x0f), 1
	case c == 0xde && len(b) >= 3:
		n, i = int(binary.BigEndian.Uint16(b[1:])), 3
	case c == 0xdf && len(b) >= 5:
		n, i = int(binary.BigEndian.Uint32(b[1:])), 5
	default:
		return false
	}
	if n > len(b) {
		return false
	}
	// outer[k] is what is left of the container k+1 levels up once the
	// current one ends; d fixed containers are open, so the value at i
	// sits at depth d+1, far from codec.MaxDepth. An offset past the end
	// stops the next read, or fails the final comparison.
	var outer [7]int
	d := 0
	left := 2 * n // keys and values alike
	for {
		if left == 0 {
			if d == 0 {
				return i == len(b)
			}
			d--
			left = outer[d]
			continue
		}
		left--
		if i >= len(b) {
			return false
		}
		// Tests in this order, each ending the iteration, compile to the
		// fastest code (a switch is a fifth slower).
		c := b[i]
		if c < 0x80 {
			i++
			continue
		}
		if c&0xe0 == 0xa0 {
			i += 1 + int(c&0x1f)
			continue
		}
		if c <= 0x9f && d < len(outer) {
			i++
			k := int(c & 0x0f)
			if c <= 0x8f {
				k *= 2
			}
			if k > 0 {
				outer[d], left = left, k
				d++
			}
			continue
		}
		if sz := int(fixedSize[c]); sz != 0 {
			i += sz
			continue
		}
		if i = wellFormedAt(b, i, d+1); i < 0 {
			return false
		}
	}
}

// wellFormedAt returns the offset just past the well-formed value at b[i],
// which sits at nesting depth depth, or -1.
func wellFormedAt(b []byte, i, depth int) int {
	// left[d] is the number of values still to read d levels below the
	// value at i. Events nest little: a container deeper than len(left)
	// is checked by a call of its own (the recursion is bounded by
	// codec.MaxDepth), so the array to clear per call stays small.
	var left [8]int
	left[0] = 1
	d := 0
	for {
		for left[d] == 0 {
			if d == 0 {
				return i
			}
			d--
		}
		left[d]--
		if i >= len(b) {
			return -1
		}
		c := b[i]
		if sz := int(fixedSize[c]); sz != 0 {
			if i += sz; i > len(b) {
				return -1
			}
			continue
		}
		n, h, elems := 0, 1, 0 // payload bytes, header bytes, values inside
		switch {
		case c <= 0x8f: // fixmap
			elems = 2 * int(c&0x0f)
		case c <= 0x9f: // fixarray
			elems = int(c & 0x0f)
		default:
			var w int
			switch c {
			case 0xc4, 0xd9, 0xc7: // bin8, str8, ext8
				w = 1
			case 0xc5, 0xda, 0xc8, 0xdc, 0xde: // 16-bit lengths and counts
				w = 2
			case 0xc6, 0xdb, 0xc9, 0xdd, 0xdf: // 32-bit
				w = 4
			default: // 0xc1
				return -1
			}
			if len(b)-i < 1+w {
				return -1
			}
			switch w {
			case 1:
				n = int(b[i+1])
			case 2:
				n = int(binary.BigEndian.Uint16(b[i+1:]))
			default:
				n = int(binary.BigEndian.Uint32(b[i+1:]))
			}
			h = 1 + w
			if n > len(b) {
				return -1
			}
			switch c {
			case 0xc7, 0xc8, 0xc9: // ext: a type byte, then the data
				n++
			case 0xdc, 0xdd:
				elems, n = n, 0
			case 0xde, 0xdf:
				elems, n = 2*n, 0
			}
		}
		if i += h + n; i > len(b) {
			return -1
		}
		if elems > 0 {
			if depth+d == codec.MaxDepth || elems > len(b)-i {
				return -1
			}
			if d+1 == len(left) {
				// The container starts at i-h (n is 0 for containers).
				if i = wellFormedAt(b, i-h, depth+d); i < 0 {
					return -1
				}
				continue
			}
			d++
			left[d] = elems
		}
	}
}

// mapHead returns the entry count and header size of the map at the start
// of b, or (0, -1).
func mapHead(b []byte) (n, h int) {
	switch {
	case len(b) == 0:
	case b[0]&0xf0 == 0x80:
		return int(b[0] & 0x0f), 1
	case b[0] == 0xde && len(b) >= 3:
		return int(binary.BigEndian.Uint16(b[1:])), 3
	case b[0] == 0xdf && len(b) >= 5:
		return int(binary.BigEndian.Uint32(b[1:])), 5
	}
	return 0, -1
}

// extendsInput reports whether p is the map input with entries added: its
// header, input's entries byte for byte, then well-formed entries that make
// up the header's count. It is how an enrichment's output (uid-to-user,
// a Go SDK Set of a new key) is checked without walking the copied part:
// input is well-formed, since the pipeline only carries events the decoder
// or a checked stage made. False says nothing: check the whole event then.
func extendsInput(p, input []byte) bool {
	m, ih := mapHead(input)
	n, ph := mapHead(p)
	if ih < 0 || ph < 0 || n < m {
		return false
	}
	body := input[ih:]
	if len(p)-ph < len(body) || !bytes.Equal(p[ph:ph+len(body)], body) {
		return false
	}
	i := ph + len(body)
	for k := 2 * (n - m); k > 0; k-- { // the added keys and values
		if i >= len(p) {
			return false
		}
		if sz := int(fixedSize[p[i]]); sz != 0 {
			i += sz
		} else if i = wellFormedAt(p, i, 1); i < 0 {
			return false
		}
	}
	return i == len(p)
}
