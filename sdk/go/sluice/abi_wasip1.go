//go:build wasip1

package sluice

import (
	"errors"
	"fmt"
	"unsafe"
)

// The exports and imports of docs/stage-abi.md. Everything else in the
// package is plain Go, tested natively.

//go:wasmimport sluice log
func importLog(level int32, ptr unsafe.Pointer, n uint32)

//go:wasmimport sluice set_error
func importSetError(ptr unsafe.Pointer, n uint32)

//go:wasmimport sluice counter_add
func importCounterAdd(ptr unsafe.Pointer, n uint32, delta int64)

//go:wasmimport sluice now
func importNow() int64

//go:wasmimport sluice find_key
func importFindKey(batch unsafe.Pointer, batchLen uint32, key unsafe.Pointer, keyLen uint32, out unsafe.Pointer) int32

// hostFindKey has the host find key in every event of batch, writing
// value bounds per event to out (two per event); it returns the count of
// events, -1 when the host found the batch broken.
func hostFindKey(batch []byte, key string, out []uint32) int {
	return int(importFindKey(unsafe.Pointer(unsafe.SliceData(batch)), uint32(len(batch)),
		unsafe.Pointer(unsafe.StringData(key)), uint32(len(key)), unsafe.Pointer(unsafe.SliceData(out))))
}

func hostLog(level Level, msg string) {
	importLog(int32(level), unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
}

func hostSetError(msg string) {
	importSetError(unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
}

func hostCounterAdd(name string, delta int64) {
	importCounterAdd(unsafe.Pointer(unsafe.StringData(name)), uint32(len(name)), delta)
}

func hostNow() int64 { return importNow() }

//go:wasmexport sluice_abi_version
func exportABIVersion() int32 { return ABIVersion }

// hostBuf is the buffer sluice_alloc hands out. The host owns it until the
// next sluice_alloc; keeping it here keeps it alive (Go's heap does not
// move).
var hostBuf []byte

//go:wasmexport sluice_alloc
func exportAlloc(size int32) uint32 {
	if size < 0 {
		return 0
	}
	n := max(int(size), 1)
	if cap(hostBuf) < n {
		hostBuf = make([]byte, n)
	}
	hostBuf = hostBuf[:n]
	return uint32(uintptr(unsafe.Pointer(&hostBuf[0])))
}

// guestBytes returns the n bytes at ptr, which the ABI says the host wrote
// through the buffer sluice_alloc returned; anything else is refused rather
// than read from wherever ptr points.
func guestBytes(ptr, n uint32) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	if len(hostBuf) == 0 {
		return nil, errors.New("read input: sluice_alloc was never called")
	}
	base := uint32(uintptr(unsafe.Pointer(&hostBuf[0])))
	if ptr < base || uint64(ptr-base)+uint64(n) > uint64(len(hostBuf)) {
		return nil, fmt.Errorf("read input: %d bytes at %#x lie outside the %d-byte buffer sluice_alloc returned at %#x", n, ptr, len(hostBuf), base)
	}
	off := ptr - base
	return hostBuf[off : off+n : off+n], nil
}

//go:wasmexport sluice_init
func exportInit(ptr, n uint32) int32 {
	params, err := guestBytes(ptr, n)
	if err == nil {
		err = current.init(params)
	}
	if err != nil {
		hostSetError(err.Error())
		return 1
	}
	return 0
}

//go:wasmexport sluice_process
func exportProcess(ptr, n uint32) int64 {
	batch, err := guestBytes(ptr, n)
	if err != nil {
		return result(nil, err)
	}
	res, err := current.process(batch)
	return result(res, err)
}

//go:wasmexport sluice_tick
func exportTick(nowNs int64) int64 {
	res, err := current.tick(nowNs)
	return result(res, err)
}

//go:wasmexport sluice_close
func exportClose() { current.close() }

func result(res []byte, err error) int64 {
	if err != nil {
		hostSetError(err.Error())
		return -1
	}
	return int64(uintptr(unsafe.Pointer(&res[0])))<<32 | int64(len(res))
}
