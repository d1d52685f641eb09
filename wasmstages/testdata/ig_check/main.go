// Command ig_check exercises every function of Inspektor Gadget's wasm API
// (import module "ig") against the gadget the tests of package wasmstages
// give it (TestIGModuleAPI): data sources "events" (single) and "snap"
// (array), params drop_comm, decl and ksym, maps counts (u32 -> u64, 1: 41
// and 2: 7) and perf (one record, "hello"), and a container filter that
// discards mount namespace 555. Each hook returns 1 and logs "check
// failed: ..." at the first check that fails; the tests read the events
// and the log. Built with the standard Go toolchain:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o ig_check.wasm .
package main

import (
	"encoding/binary"
	"math"
	"strconv"

	"github.com/sluice-dev/sluice/wasmstages/testdata/igapi"
)

func main() {}

var (
	events, snap, summary, hidden                    uint32
	commF, pidF, noteF, orderF, pid2F, ratioF, evenF uint32
	rawF, smallF, snapPidF, rankF, countF            uint32
	dropComm                                         string
	seen                                             uint64
	failed                                           string
)

// check records the first failed check.
func check(ok bool, what string) {
	if !ok && failed == "" {
		failed = what
	}
}

// result logs and returns the hook's result.
func result(hook string) int32 {
	if failed != "" {
		igapi.Log(igapi.LevelError, "check failed: "+hook+": "+failed)
		return 1
	}
	igapi.Log(igapi.LevelInfo, hook+" checks passed")
	return 0
}

//go:wasmexport gadgetAPIVersion
func gadgetAPIVersion() uint64 { return 1 }

//go:wasmexport gadgetInit
func gadgetInit() int32 {
	for l := uint32(igapi.LevelError); l <= igapi.LevelTrace; l++ {
		igapi.Log(l, "level "+strconv.Itoa(int(l)))
	}
	events = igapi.GetDataSource("events")
	snap = igapi.GetDataSource("snap")
	check(events != 0 && snap != 0, "getDataSource events, snap")
	check(igapi.GetDataSource("nope") == 0, "getDataSource of a missing data source")
	check(igapi.RawGetDataSource(0xffff_0000_7fff_0000) == 0, "a name outside memory fails")

	commF = igapi.GetField(events, "comm")
	pidF = igapi.GetField(events, "pid")
	check(commF != 0 && pidF != 0, "getField comm, pid")
	check(igapi.GetField(events, "nope") == 0, "getField of a missing field")
	noteF = igapi.AddField(events, "note", igapi.KindString)
	check(noteF != 0, "addField note")
	check(igapi.AddField(events, "note", igapi.KindUint32) == 0, "addField of an added name, another kind")
	check(igapi.AddField(events, "comm", igapi.KindString) == 0, "addField of a gadget field")
	check(igapi.AddField(events, "bad", 99) == 0, "addField of kind 99")
	check(igapi.AddTag(noteF, "wasm") == 0, "fieldAddTag")
	orderF = igapi.AddField(events, "order", igapi.KindString)
	pid2F = igapi.AddField(events, "pid2", igapi.KindUint64)
	ratioF = igapi.AddField(events, "ratio", igapi.KindFloat64)
	evenF = igapi.AddField(events, "even", igapi.KindBool)
	rawF = igapi.AddField(events, "raw", igapi.KindBytes)
	smallF = igapi.AddField(events, "small", igapi.KindInt8)
	check(orderF != 0 && pid2F != 0 && ratioF != 0 && evenF != 0 && rawF != 0 && smallF != 0, "addField of each kind")

	summary = igapi.NewDataSource("summary", igapi.DSSingle)
	check(summary != 0, "newDataSource summary")
	countF = igapi.AddField(summary, "count", igapi.KindUint32)
	check(countF != 0, "addField count to summary")
	check(igapi.NewDataSource("events", igapi.DSSingle) == 0, "newDataSource of the gadget's name")
	hidden = igapi.NewDataSource("hidden", igapi.DSSingle)
	check(igapi.Unreference(hidden) == 0 && igapi.IsReferenced(hidden) == 0, "unreference")
	check(igapi.IsReferenced(events) == 1, "isReferenced of the gadget's")

	snapPidF = igapi.GetField(snap, "pid")
	rankF = igapi.AddField(snap, "rank", igapi.KindUint32)
	check(snapPidF != 0 && rankF != 0, "fields of snap")

	check(igapi.Subscribe(events, igapi.SubArray, 0, 9) != 0, "an array subscription to single events fails")
	check(igapi.Subscribe(events, 42, 0, 9) != 0, "subscription type 42 fails")
	check(igapi.Subscribe(events, igapi.SubData, 10, 1) == 0, "subscribe data")
	check(igapi.Subscribe(events, igapi.SubPacket, 5, 2) == 0, "subscribe packet")
	check(igapi.Subscribe(snap, igapi.SubArray, 0, 3) == 0, "subscribe array")

	var ok bool
	dropComm, ok = igapi.Param("drop_comm", 32)
	check(ok && dropComm != "", "getParamValue drop_comm")
	_, ok = igapi.Param("missing", 32)
	check(!ok, "getParamValue of a missing param")
	_, ok = igapi.Param("drop_comm", 2)
	check(!ok, "getParamValue into a buffer too small")

	check(igapi.SetConfig("datasources.events.fields.note.annotations.description", "the module's note") == 0, "setConfig")
	check(igapi.SetConfigKind("x", 42, igapi.KindUint32) != 0, "setConfig of a number fails")
	return result("gadgetInit")
}

//go:wasmexport gadgetPreStart
func gadgetPreStart() int32 {
	check(igapi.GetMap("counts") == 0, "getMap before the gadget loads fails")
	return result("gadgetPreStart")
}

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

//go:wasmexport gadgetStart
func gadgetStart() int32 {
	counts := igapi.GetMap("counts")
	check(counts != 0, "getMap counts")
	val := make([]byte, 8)
	check(igapi.MapLookup(counts, le32(1), val) == 0 && binary.LittleEndian.Uint64(val) == 41, "mapLookup 1 = 41")
	check(igapi.MapUpdate(counts, le32(1), le64(42), 0) == 0, "mapUpdate 1 = 42")
	check(igapi.MapUpdate(counts, le32(3), le64(3), 1) == 0, "mapUpdate of a new key, no exist")
	check(igapi.MapUpdate(counts, le32(3), le64(4), 1) != 0, "mapUpdate of a key that exists, no exist")
	check(igapi.MapUpdate(counts, le32(4), le64(4), 2) != 0, "mapUpdate of a missing key, exist")
	check(igapi.MapUpdate(counts, le32(4), le64(4), 3) != 0, "mapUpdate with flags 3")
	check(igapi.MapDelete(counts, le32(2)) == 0, "mapDelete 2")
	check(igapi.MapDelete(counts, le32(2)) != 0, "mapDelete of a missing key")
	check(igapi.MapLookup(counts, le64(1), val) != 0, "mapLookup with a key of the wrong size")
	check(igapi.MapLookup(counts, le32(1), make([]byte, 4)) != 0, "mapLookup into a value buffer too small")
	check(igapi.MapRelease(counts) != 0, "mapRelease of the gadget's map fails")
	check(igapi.GetMap("missing") == 0, "getMap of a missing map")

	scratch := igapi.NewMap("scratch", 1, 4, 4, 1)
	check(scratch != 0, "newMap")
	v4 := make([]byte, 4)
	check(igapi.MapUpdate(scratch, le32(7), le32(8), 0) == 0 && igapi.MapLookup(scratch, le32(7), v4) == 0 && binary.LittleEndian.Uint32(v4) == 8, "newMap's map works")
	check(igapi.MapUpdate(scratch, le32(9), le32(9), 0) != 0, "newMap's map holds max_entries")
	check(igapi.MapRelease(scratch) == 0, "mapRelease")
	check(igapi.MapRelease(scratch) != 0, "mapRelease twice fails")
	check(igapi.ReleaseHandle(counts) == 0, "releaseHandle")
	check(igapi.ReleaseHandle(counts) != 0, "releaseHandle twice fails")

	id := igapi.SyscallID("openat")
	check(id > 0, "getSyscallID openat")
	name, ok := igapi.SyscallName(uint32(id))
	check(ok && name == "openat", "getSyscallName of openat's number: "+name)
	check(igapi.SyscallID("no_such_syscall") == -1, "getSyscallID of a name that is not a syscall")
	name, ok = igapi.SyscallName(0xffff)
	check(ok && name == "syscall_ffff", "getSyscallName of an unknown number: "+name)
	if v, _ := igapi.Param("decl", 8); v == "1" {
		dname, params, ok := igapi.SyscallDeclaration("openat")
		check(ok && dname == "openat" && len(params) == 4 && params[1].Name == "filename" && params[1].IsPointer && !params[2].IsPointer,
			"getSyscallDeclaration openat")
	}
	_, _, ok = igapi.SyscallDeclaration("no_such_syscall")
	check(!ok, "getSyscallDeclaration of a name that is not a syscall")

	check(!igapi.KallsymsSymbolExists("sluice_no_such_symbol"), "kallsymsSymbolExists of a missing symbol")
	if v, _ := igapi.Param("ksym", 8); v == "1" {
		check(igapi.KallsymsSymbolExists("schedule"), "kallsymsSymbolExists schedule")
	}
	check(igapi.ShouldDiscardMntnsID(555) && !igapi.ShouldDiscardMntnsID(777), "shouldDiscardMntnsID")

	pm := igapi.GetMap("perf")
	r := igapi.NewPerfReader(pm, 4096, false)
	check(r != 0, "newPerfReader")
	rec := make([]byte, 16)
	check(igapi.PerfRead(r, rec) == 0 && string(rec[:5]) == "hello", "perfReaderRead")
	check(igapi.PerfRead(r, rec) == 2, "perfReaderRead with nothing ready")
	check(igapi.PerfPause(r) == 0 && igapi.PerfResume(r) == 0, "perfReaderPause, perfReaderResume")
	check(igapi.PerfClose(r) == 0, "perfReaderClose")
	check(igapi.PerfClose(r) != 0, "perfReaderClose twice fails")
	check(igapi.NewPerfReader(igapi.GetMap("counts"), 4096, false) == 0, "newPerfReader of a hash map fails")

	p := igapi.NewPacketSingle(summary)
	check(p != 0 && igapi.SetScalar(countF, p, igapi.KindUint32, 7) == 0 && igapi.EmitAndRelease(summary, p) == 0, "emit from gadgetStart")
	check(igapi.NewPacketArray(summary) == 0, "newPacketArray of a single data source fails")
	return result("gadgetStart")
}

//go:wasmexport gadgetStop
func gadgetStop() int32 {
	p := igapi.NewPacketSingle(summary)
	check(p != 0 && igapi.SetScalar(countF, p, igapi.KindUint32, 1000+seen) == 0 && igapi.EmitAndRelease(summary, p) == 0, "emit from gadgetStop")
	// A packet released without sending is not emitted.
	q := igapi.NewPacketSingle(summary)
	check(q != 0 && igapi.SetScalar(countF, q, igapi.KindUint32, 666) == 0 && igapi.Release(summary, q) == 0, "release a packet")
	return result("gadgetStop")
}

//go:wasmexport gadgetPostStop
func gadgetPostStop() int32 { return result("gadgetPostStop") }

//go:wasmexport dataSourceCallback
func dataSourceCallback(cb uint64, ds, data uint32) {
	switch cb {
	case 2: // packet subscription, priority 5: runs first
		igapi.SetString(orderF, data, "A")
	case 1:
		onEvent(ds, data)
	case 3:
		onSnapshot(data)
	}
}

func onEvent(ds, data uint32) {
	seen++
	comm, n := igapi.Buffer(commF, data, igapi.KindString, 64)
	pid, ok := igapi.Scalar(pidF, data, igapi.KindUint32)
	if n < 0 || !ok {
		igapi.Log(igapi.LevelError, "check failed: callback: read comm and pid")
		return
	}
	order, _ := igapi.Buffer(orderF, data, igapi.KindString, 8)
	igapi.SetString(orderF, data, order+"B")
	if comm == dropComm {
		igapi.Release(ds, data)
		return
	}
	if pid != 4242 {
		// The packet the module emits into events comes back to its own
		// subscriptions: its fields are zero but for comm.
		igapi.SetString(noteF, data, "pid="+strconv.FormatUint(pid, 10)+" comm="+comm)
		return
	}
	if _, ok := igapi.Scalar(commF, data, igapi.KindUint32); ok {
		igapi.Log(igapi.LevelError, "check failed: callback: a string read as a number")
	}
	if _, ok := igapi.Scalar(pidF, data, igapi.KindUint8); ok {
		igapi.Log(igapi.LevelError, "check failed: callback: 4242 read as a uint8")
	}
	if _, n := igapi.Buffer(commF, data, igapi.KindString, 1); n != -1 {
		igapi.Log(igapi.LevelError, "check failed: callback: a string into a buffer too small")
	}
	if igapi.SetString(pidF, data, "x") == 0 {
		igapi.Log(igapi.LevelError, "check failed: callback: a string set into a number field")
	}
	igapi.SetString(noteF, data, "pid="+strconv.FormatUint(pid, 10)+" comm="+comm)
	igapi.SetScalar(pid2F, data, igapi.KindUint64, pid*2)
	igapi.SetScalar(ratioF, data, igapi.KindFloat64, math.Float64bits(0.5))
	igapi.SetScalar(evenF, data, igapi.KindBool, 1-pid%2)
	igapi.SetBytes(rawF, data, []byte{1, 2, 3})
	igapi.SetScalar(smallF, data, igapi.KindInt8, uint64(0xfb)) // -5
	switch comm {
	case "mod":
		igapi.SetString(commF, data, "modified")
	case "emit":
		p := igapi.NewPacketSingle(summary)
		igapi.SetScalar(countF, p, igapi.KindUint32, seen)
		igapi.EmitAndRelease(summary, p)
		e := igapi.NewPacketSingle(events)
		igapi.SetString(commF, e, "extra")
		igapi.EmitAndRelease(events, e)
		h := igapi.NewPacketSingle(hidden)
		igapi.EmitAndRelease(hidden, h)
	}
}

func onSnapshot(arr uint32) {
	n := igapi.ArrayLen(arr)
	for i := uint32(0); i < n; i++ {
		d := igapi.ArrayGet(arr, i)
		pid, _ := igapi.Scalar(snapPidF, d, igapi.KindUint32)
		igapi.SetScalar(rankF, d, igapi.KindUint32, uint64(i))
		if pid == 0 {
			igapi.ArrayRelease(arr, d)
		}
	}
	if igapi.ArrayGet(arr, n+5) != 0 {
		igapi.Log(igapi.LevelError, "check failed: snapshot: an element past the end")
	}
	nd := igapi.ArrayNew(arr)
	igapi.SetScalar(snapPidF, nd, igapi.KindUint32, 99999)
	if igapi.ArrayAppend(arr, nd) != 0 || igapi.ArrayLen(arr) != n+1 {
		igapi.Log(igapi.LevelError, "check failed: snapshot: dataArrayAppend")
	}
}
