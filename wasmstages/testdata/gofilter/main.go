// Command gofilter is the drop-comm filter of filter.c written in Go against
// the raw stage ABI (not the Go SDK): it drops events whose "comm" is in the
// param "comms" and keeps the rest. It is the large (Go runtime included)
// module of the compilation-cache test and the Go guest of the benchmarks.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o gofilter.wasm .
package main

import (
	"encoding/binary"
	"unsafe"
)

func main() {}

//go:wasmimport sluice set_error
func setError(ptr, n uint32)

//go:wasmimport sluice counter_add
func counterAdd(ptr, n uint32, delta int64)

var (
	in    []byte
	out   []byte
	comms []string
)

func addr(b []byte) uint32 { return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }

func fail(msg string) {
	b := []byte(msg)
	setError(addr(b), uint32(len(b)))
}

//go:wasmexport sluice_abi_version
func abiVersion() int32 { return 1 }

//go:wasmexport sluice_alloc
func alloc(size int32) uint32 {
	in = make([]byte, size)
	return addr(in)
}

//go:wasmexport sluice_init
func initStage(ptr, n uint32) int32 {
	p := in[:n]
	v, ok := lookup(p, "comms")
	if !ok {
		return 0
	}
	count, off, ok := arrayHeader(v)
	if !ok {
		fail("param comms must be a list of strings")
		return 1
	}
	for range count {
		s, m, ok := str(v[off:])
		if !ok {
			fail("param comms must be a list of strings")
			return 1
		}
		comms = append(comms, string(s))
		off += m
	}
	return 0
}

//go:wasmexport sluice_process
func process(ptr, n uint32) int64 {
	p := in[:n]
	count := binary.LittleEndian.Uint32(p)
	off := uint32(4)
	out = binary.LittleEndian.AppendUint32(out[:0], 0)
	var kept, dropped uint32
	for i := range count {
		l := binary.LittleEndian.Uint32(p[off:])
		off += 4
		if drop(p[off : off+l]) {
			dropped++
		} else {
			out = append(out, 1)
			out = binary.LittleEndian.AppendUint32(out, i)
			kept++
		}
		off += l
	}
	binary.LittleEndian.PutUint32(out, kept)
	if dropped > 0 {
		name := []byte("dropped")
		counterAdd(addr(name), uint32(len(name)), int64(dropped))
	}
	return int64(addr(out))<<32 | int64(len(out))
}

func drop(ev []byte) bool {
	v, ok := lookup(ev, "comm")
	if !ok {
		return false
	}
	c, _, ok := str(v)
	if !ok {
		return false
	}
	for _, name := range comms {
		if string(c) == name {
			return true
		}
	}
	return false
}

// lookup finds a key of the msgpack map m and returns its value.
func lookup(m []byte, key string) ([]byte, bool) {
	count, off, ok := mapHeader(m)
	if !ok {
		return nil, false
	}
	for range count {
		k, kn, ok := str(m[off:])
		if !ok {
			return nil, false
		}
		off += kn
		vn, ok := skip(m[off:], 0)
		if !ok {
			return nil, false
		}
		if string(k) == key {
			return m[off : off+vn], true
		}
		off += vn
	}
	return nil, false
}

func be(b []byte) int {
	n := 0
	for _, c := range b {
		n = n<<8 | int(c)
	}
	return n
}

func mapHeader(b []byte) (count, size int, ok bool) {
	switch {
	case len(b) >= 1 && b[0]&0xf0 == 0x80:
		return int(b[0] & 0x0f), 1, true
	case len(b) >= 3 && b[0] == 0xde:
		return be(b[1:3]), 3, true
	case len(b) >= 5 && b[0] == 0xdf:
		return be(b[1:5]), 5, true
	}
	return 0, 0, false
}

func arrayHeader(b []byte) (count, size int, ok bool) {
	switch {
	case len(b) >= 1 && b[0]&0xf0 == 0x90:
		return int(b[0] & 0x0f), 1, true
	case len(b) >= 3 && b[0] == 0xdc:
		return be(b[1:3]), 3, true
	case len(b) >= 5 && b[0] == 0xdd:
		return be(b[1:5]), 5, true
	}
	return 0, 0, false
}

func str(b []byte) (s []byte, size int, ok bool) {
	if len(b) == 0 {
		return nil, 0, false
	}
	var n, h int
	switch c := b[0]; {
	case c&0xe0 == 0xa0:
		n, h = int(c&0x1f), 1
	case c == 0xd9 && len(b) >= 2:
		n, h = be(b[1:2]), 2
	case c == 0xda && len(b) >= 3:
		n, h = be(b[1:3]), 3
	case c == 0xdb && len(b) >= 5:
		n, h = be(b[1:5]), 5
	default:
		return nil, 0, false
	}
	if h+n > len(b) {
		return nil, 0, false
	}
	return b[h : h+n], h + n, true
}

func skip(b []byte, depth int) (int, bool) {
	if len(b) == 0 || depth > 64 {
		return 0, false
	}
	c := b[0]
	sized := func(w, extra int) (int, bool) {
		if len(b) < 1+w {
			return 0, false
		}
		n := 1 + w + extra + be(b[1:1+w])
		return n, n <= len(b)
	}
	items := func(n, off int) (int, bool) {
		for range n {
			k, ok := skip(b[off:], depth+1)
			if !ok {
				return 0, false
			}
			off += k
		}
		return off, true
	}
	fixed := func(n int) (int, bool) { return n, n <= len(b) }
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		return 1, true
	case c&0xe0 == 0xa0:
		return fixed(1 + int(c&0x1f))
	case c&0xf0 == 0x90:
		return items(int(c&0x0f), 1)
	case c&0xf0 == 0x80:
		return items(2*int(c&0x0f), 1)
	}
	switch c {
	case 0xcc, 0xd0:
		return fixed(2)
	case 0xcd, 0xd1, 0xd4:
		return fixed(3)
	case 0xd5:
		return fixed(4)
	case 0xca, 0xce, 0xd2:
		return fixed(5)
	case 0xd6:
		return fixed(6)
	case 0xcb, 0xcf, 0xd3:
		return fixed(9)
	case 0xd7:
		return fixed(10)
	case 0xd8:
		return fixed(18)
	case 0xc4, 0xd9:
		return sized(1, 0)
	case 0xc5, 0xda:
		return sized(2, 0)
	case 0xc6, 0xdb:
		return sized(4, 0)
	case 0xc7:
		return sized(1, 1)
	case 0xc8:
		return sized(2, 1)
	case 0xc9:
		return sized(4, 1)
	case 0xdc, 0xdd, 0xde, 0xdf:
		w := 2
		if c == 0xdd || c == 0xdf {
			w = 4
		}
		if len(b) < 1+w {
			return 0, false
		}
		n := be(b[1 : 1+w])
		if c >= 0xde {
			n *= 2
		}
		return items(n, 1+w)
	}
	return 0, false
}
