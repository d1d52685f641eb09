// Package igapi binds Inspektor Gadget's wasm API (import module "ig") for
// the test guests of package wasmstages, written in Go with the standard
// toolchain (GOOS=wasip1). It is sluice's own binding, written from IG's
// documentation of the API, and deliberately thin: every function is one
// host call, so the guests exercise the host, not a wrapper.
package igapi

import (
	"runtime"
	"unsafe"
)

//go:wasmimport ig gadgetLog
func gadgetLog(level uint32, msg uint64)

//go:wasmimport ig newDataSource
func newDataSource(name uint64, typ uint32) uint32

//go:wasmimport ig getDataSource
func getDataSource(name uint64) uint32

//go:wasmimport ig dataSourceSubscribe
func dataSourceSubscribe(ds, typ, prio uint32, cb uint64) uint32

//go:wasmimport ig dataSourceGetField
func dataSourceGetField(ds uint32, name uint64) uint32

//go:wasmimport ig dataSourceAddField
func dataSourceAddField(ds uint32, name uint64, kind uint32) uint32

//go:wasmimport ig dataSourceNewPacketSingle
func dataSourceNewPacketSingle(ds uint32) uint32

//go:wasmimport ig dataSourceNewPacketArray
func dataSourceNewPacketArray(ds uint32) uint32

//go:wasmimport ig dataSourceEmitAndRelease
func dataSourceEmitAndRelease(ds, packet uint32) uint32

//go:wasmimport ig dataSourceRelease
func dataSourceRelease(ds, packet uint32) uint32

//go:wasmimport ig dataSourceUnreference
func dataSourceUnreference(ds uint32) uint32

//go:wasmimport ig dataSourceIsReferenced
func dataSourceIsReferenced(ds uint32) uint32

//go:wasmimport ig dataArrayNew
func dataArrayNew(arr uint32) uint32

//go:wasmimport ig dataArrayAppend
func dataArrayAppend(arr, data uint32) uint32

//go:wasmimport ig dataArrayRelease
func dataArrayRelease(arr, data uint32) uint32

//go:wasmimport ig dataArrayLen
func dataArrayLen(arr uint32) uint32

//go:wasmimport ig dataArrayGet
func dataArrayGet(arr, index uint32) uint32

//go:wasmimport ig fieldGetScalar
func fieldGetScalar(field, data, kind, errPtr uint32) uint64

//go:wasmimport ig fieldGetBuffer
func fieldGetBuffer(field, data, kind uint32, dst uint64) int32

//go:wasmimport ig fieldSet
func fieldSet(field, data, kind uint32, value uint64) uint32

//go:wasmimport ig fieldAddTag
func fieldAddTag(field uint32, tag uint64) uint32

//go:wasmimport ig fieldGetStruct
func fieldGetStruct(field, data uint32, dst uint64) int32

//go:wasmimport ig fieldPutStruct
func fieldPutStruct(field, data uint32, src uint64) uint32

//go:wasmimport ig fieldGetStructArray
func fieldGetStructArray(field, data uint32, dst uint64) int32

//go:wasmimport ig fieldPutStructArray
func fieldPutStructArray(field, data uint32, src uint64) uint32

//go:wasmimport ig getParamValue
func getParamValue(key, dst uint64) uint32

//go:wasmimport ig setConfig
func setConfig(key, value uint64, kind uint32) uint32

//go:wasmimport ig newMap
func newMap(name uint64, typ, keySize, valueSize, maxEntries uint32) uint32

//go:wasmimport ig getMap
func getMap(name uint64) uint32

//go:wasmimport ig mapLookup
func mapLookup(m uint32, key, value uint64) uint32

//go:wasmimport ig mapUpdate
func mapUpdate(m uint32, key, value, flags uint64) uint32

//go:wasmimport ig mapDelete
func mapDelete(m uint32, key uint64) uint32

//go:wasmimport ig mapRelease
func mapRelease(m uint32) uint32

//go:wasmimport ig releaseHandle
func releaseHandle(h uint32) uint32

//go:wasmimport ig getSyscallName
func getSyscallName(id uint32, dst uint64) uint32

//go:wasmimport ig getSyscallID
func getSyscallID(name uint64) int32

//go:wasmimport ig getSyscallDeclaration
func getSyscallDeclaration(name, dst uint64) uint32

//go:wasmimport ig newPerfReader
func newPerfReader(m, size, overwritable uint32) uint32

//go:wasmimport ig perfReaderPause
func perfReaderPause(r uint32) uint32

//go:wasmimport ig perfReaderResume
func perfReaderResume(r uint32) uint32

//go:wasmimport ig perfReaderRead
func perfReaderRead(r uint32, dst uint64) uint32

//go:wasmimport ig perfReaderClose
func perfReaderClose(r uint32) uint32

//go:wasmimport ig kallsymsSymbolExists
func kallsymsSymbolExists(name uint64) uint32

//go:wasmimport ig shouldDiscardMntnsID
func shouldDiscardMntnsID(id uint64) uint32

// Field kinds, subscription and data source types of the API.
const (
	KindBool    = 1
	KindInt8    = 2
	KindInt16   = 3
	KindInt32   = 4
	KindInt64   = 5
	KindUint8   = 6
	KindUint16  = 7
	KindUint32  = 8
	KindUint64  = 9
	KindFloat32 = 10
	KindFloat64 = 11
	KindString  = 12
	KindCString = 13
	KindBytes   = 14

	SubData   = 1
	SubArray  = 2
	SubPacket = 3

	DSSingle = 1
	DSArray  = 2

	LevelError = 0
	LevelWarn  = 1
	LevelInfo  = 2
	LevelDebug = 3
	LevelTrace = 4
)

// buf returns the bufPtr of b: length in the high 32 bits, address in the
// low 32. The callers keep b alive across the host call.
func buf(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	return uint64(len(b))<<32 | uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

// str copies s into a heap buffer (a string's bytes may sit on a stack
// the runtime moves) and returns it with its bufPtr.
func str(s string) ([]byte, uint64) {
	b := []byte(s)
	return b, buf(b)
}

func Log(level uint32, msg string) {
	b, p := str(msg)
	gadgetLog(level, p)
	runtime.KeepAlive(b)
}

func NewDataSource(name string, typ uint32) uint32 {
	b, p := str(name)
	defer runtime.KeepAlive(b)
	return newDataSource(p, typ)
}

func GetDataSource(name string) uint32 {
	b, p := str(name)
	defer runtime.KeepAlive(b)
	return getDataSource(p)
}

func Subscribe(ds, typ, prio uint32, cb uint64) uint32 { return dataSourceSubscribe(ds, typ, prio, cb) }

func GetField(ds uint32, name string) uint32 {
	b, p := str(name)
	defer runtime.KeepAlive(b)
	return dataSourceGetField(ds, p)
}

func AddField(ds uint32, name string, kind uint32) uint32 {
	b, p := str(name)
	defer runtime.KeepAlive(b)
	return dataSourceAddField(ds, p, kind)
}

func NewPacketSingle(ds uint32) uint32        { return dataSourceNewPacketSingle(ds) }
func NewPacketArray(ds uint32) uint32         { return dataSourceNewPacketArray(ds) }
func EmitAndRelease(ds, packet uint32) uint32 { return dataSourceEmitAndRelease(ds, packet) }
func Release(ds, packet uint32) uint32        { return dataSourceRelease(ds, packet) }
func Unreference(ds uint32) uint32            { return dataSourceUnreference(ds) }
func IsReferenced(ds uint32) uint32           { return dataSourceIsReferenced(ds) }
func ArrayNew(arr uint32) uint32              { return dataArrayNew(arr) }
func ArrayAppend(arr, data uint32) uint32     { return dataArrayAppend(arr, data) }
func ArrayRelease(arr, data uint32) uint32    { return dataArrayRelease(arr, data) }
func ArrayLen(arr uint32) uint32              { return dataArrayLen(arr) }
func ArrayGet(arr, i uint32) uint32           { return dataArrayGet(arr, i) }

// Scalar reads a scalar field; ok is false when the host set the error.
func Scalar(field, data, kind uint32) (v uint64, ok bool) {
	e := new(uint32)
	v = fieldGetScalar(field, data, kind, uint32(uintptr(unsafe.Pointer(e))))
	return v, *e == 0
}

// ScalarNoErr reads a scalar field without an error pointer.
func ScalarNoErr(field, data, kind uint32) uint64 { return fieldGetScalar(field, data, kind, 0) }

// Buffer reads a string or bytes field into a buffer of size bytes; n is
// -1 on failure.
func Buffer(field, data, kind uint32, size int) (string, int32) {
	b := make([]byte, size)
	n := fieldGetBuffer(field, data, kind, buf(b))
	runtime.KeepAlive(b)
	if n < 0 {
		return "", n
	}
	return string(b[:n]), n
}

func SetScalar(field, data, kind uint32, v uint64) uint32 { return fieldSet(field, data, kind, v) }

func SetString(field, data uint32, s string) uint32 {
	b, p := str(s)
	defer runtime.KeepAlive(b)
	return fieldSet(field, data, KindString, p)
}

func SetBytes(field, data uint32, v []byte) uint32 {
	defer runtime.KeepAlive(v)
	return fieldSet(field, data, KindBytes, buf(v))
}

// Struct reads a struct field as JSON into a buffer of size bytes; n is
// -1 on failure.
func Struct(field, data uint32, size int) (string, int32) {
	b := make([]byte, size)
	n := fieldGetStruct(field, data, buf(b))
	runtime.KeepAlive(b)
	if n < 0 {
		return "", n
	}
	return string(b[:n]), n
}

// StructArray reads an array of structs as JSON, like Struct.
func StructArray(field, data uint32, size int) (string, int32) {
	b := make([]byte, size)
	n := fieldGetStructArray(field, data, buf(b))
	runtime.KeepAlive(b)
	if n < 0 {
		return "", n
	}
	return string(b[:n]), n
}

func PutStruct(field, data uint32, json string) uint32 {
	b, p := str(json)
	defer runtime.KeepAlive(b)
	return fieldPutStruct(field, data, p)
}

func PutStructArray(field, data uint32, json string) uint32 {
	b, p := str(json)
	defer runtime.KeepAlive(b)
	return fieldPutStructArray(field, data, p)
}

func AddTag(field uint32, tag string) uint32 {
	b, p := str(tag)
	defer runtime.KeepAlive(b)
	return fieldAddTag(field, p)
}

// Param returns a parameter's value; ok is false when the host failed.
func Param(key string, size int) (string, bool) {
	k, kp := str(key)
	dst := make([]byte, size)
	rc := getParamValue(kp, buf(dst))
	runtime.KeepAlive(k)
	runtime.KeepAlive(dst)
	if rc != 0 {
		return "", false
	}
	return cString(dst), true
}

func SetConfig(key, value string) uint32 {
	k, kp := str(key)
	v, vp := str(value)
	defer runtime.KeepAlive(k)
	defer runtime.KeepAlive(v)
	return setConfig(kp, vp, KindString)
}

// SetConfigKind calls setConfig with a value of another kind (which the
// host refuses).
func SetConfigKind(key string, value uint64, kind uint32) uint32 {
	k, kp := str(key)
	defer runtime.KeepAlive(k)
	return setConfig(kp, value, kind)
}

func NewMap(name string, typ, keySize, valueSize, maxEntries uint32) uint32 {
	b, p := str(name)
	defer runtime.KeepAlive(b)
	return newMap(p, typ, keySize, valueSize, maxEntries)
}

func GetMap(name string) uint32 {
	b, p := str(name)
	defer runtime.KeepAlive(b)
	return getMap(p)
}

func MapLookup(m uint32, key, value []byte) uint32 {
	defer runtime.KeepAlive(key)
	defer runtime.KeepAlive(value)
	return mapLookup(m, buf(key), buf(value))
}

func MapUpdate(m uint32, key, value []byte, flags uint64) uint32 {
	defer runtime.KeepAlive(key)
	defer runtime.KeepAlive(value)
	return mapUpdate(m, buf(key), buf(value), flags)
}

func MapDelete(m uint32, key []byte) uint32 {
	defer runtime.KeepAlive(key)
	return mapDelete(m, buf(key))
}

func MapRelease(m uint32) uint32    { return mapRelease(m) }
func ReleaseHandle(h uint32) uint32 { return releaseHandle(h) }

func SyscallName(id uint32) (string, bool) {
	dst := make([]byte, 64)
	rc := getSyscallName(id, buf(dst))
	runtime.KeepAlive(dst)
	return cString(dst), rc == 0
}

func SyscallID(name string) int32 {
	b, p := str(name)
	defer runtime.KeepAlive(b)
	return getSyscallID(p)
}

// SyscallParam is a parameter of a syscall declaration.
type SyscallParam struct {
	Name      string
	IsPointer bool
}

// SyscallDeclaration decodes IG's struct syscallDeclaration (252 bytes).
func SyscallDeclaration(name string) (string, []SyscallParam, bool) {
	b, p := str(name)
	dst := make([]byte, 252)
	rc := getSyscallDeclaration(p, buf(dst))
	runtime.KeepAlive(b)
	runtime.KeepAlive(dst)
	if rc != 0 {
		return "", nil, false
	}
	var params []SyscallParam
	for i := 0; i < int(dst[32]) && i < 6; i++ {
		at := 36 + i*36
		flags := uint32(dst[at+32]) | uint32(dst[at+33])<<8 | uint32(dst[at+34])<<16 | uint32(dst[at+35])<<24
		params = append(params, SyscallParam{Name: cString(dst[at : at+32]), IsPointer: flags&1 != 0})
	}
	return cString(dst[:32]), params, true
}

func NewPerfReader(m, size uint32, overwritable bool) uint32 {
	var o uint32
	if overwritable {
		o = 1
	}
	return newPerfReader(m, size, o)
}

func PerfPause(r uint32) uint32  { return perfReaderPause(r) }
func PerfResume(r uint32) uint32 { return perfReaderResume(r) }
func PerfClose(r uint32) uint32  { return perfReaderClose(r) }

// PerfRead reads a record into dst: 0, 1 on failure, 2 when none is ready.
func PerfRead(r uint32, dst []byte) uint32 {
	defer runtime.KeepAlive(dst)
	return perfReaderRead(r, buf(dst))
}

func KallsymsSymbolExists(name string) bool {
	b, p := str(name)
	defer runtime.KeepAlive(b)
	return kallsymsSymbolExists(p) == 1
}

func ShouldDiscardMntnsID(id uint64) bool { return shouldDiscardMntnsID(id) == 1 }

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// RawGetDataSource passes a bufPtr as it is, for the tests of the host's
// checks (a pointer outside memory must fail, not trap).
func RawGetDataSource(p uint64) uint32 { return getDataSource(p) }

// RawGetScalar passes an error pointer as it is.
func RawGetScalar(field, data, kind, errPtr uint32) uint64 {
	return fieldGetScalar(field, data, kind, errPtr)
}
