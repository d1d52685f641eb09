// Command gofilter is the drop-comm filter of filter.c written in Go against
// the raw stage ABI (not the Go SDK): it drops events whose "comm" is in the
// param "comms" and keeps the rest, reading events with pipeline/codec as
// the benchmarks' plain-Go filter does. It is the large (Go runtime
// included) module of the compilation-cache test and the Go guest of the
// benchmarks.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o gofilter.wasm .
package main

import (
	"encoding/binary"
	"unsafe"

	"github.com/sluice-dev/sluice/pipeline/codec"
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
	v, ok := codec.Lookup(in[:n], "comms")
	if !ok {
		return 0
	}
	count, rest, err := codec.ReadArrayHeader(v)
	for i := 0; i < count && err == nil; i++ {
		var s []byte
		if s, rest, err = codec.ReadString(rest); err == nil {
			comms = append(comms, string(s))
		}
	}
	if err != nil {
		fail("param comms must be a list of strings")
		return 1
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
	v, ok := codec.Lookup(ev, "comm")
	if !ok {
		return false
	}
	c, _, err := codec.ReadString(v)
	if err != nil {
		return false
	}
	for _, name := range comms {
		if string(c) == name {
			return true
		}
	}
	return false
}
