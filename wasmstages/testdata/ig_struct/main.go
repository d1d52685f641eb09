// Command ig_struct exercises the struct accessors of Inspektor Gadget's
// wasm API (fieldGetStruct, fieldPutStruct, fieldGetStructArray,
// fieldPutStructArray) and its containers data source against the gadget
// TestIGModuleStructs gives it: data source "events" whose events have the
// struct proc (proc.comm "sh", proc.pid 42, proc.creds.uid 1000,
// proc.creds.user "alice"), the list of structs mounts ([{src /a, dst /b},
// {src /c, dst /d}]) and ret. Each event is checked and then rewritten
// through the put accessors; each container event becomes an event of the
// module's data source "seen". A failed check logs "check failed: ...".
// Built with the standard Go toolchain:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o ig_struct.wasm .
package main

import (
	"strconv"

	"github.com/sluice-dev/sluice/wasmstages/testdata/igapi"
)

func main() {}

var (
	events, containers, seen      uint32
	procF, credsF, mountsF, commF uint32
	typeF, nameF, idF, mntnsF     uint32
	cgroupF, pidF, configF, lineF uint32
	failed                        string
)

func check(ok bool, what string) {
	if !ok && failed == "" {
		failed = what
	}
}

func report(what string) int32 {
	if failed != "" {
		igapi.Log(igapi.LevelError, "check failed: "+what+": "+failed)
		failed = ""
		return 1
	}
	igapi.Log(igapi.LevelInfo, what+" checks passed")
	return 0
}

//go:wasmexport gadgetAPIVersion
func gadgetAPIVersion() uint64 { return 1 }

//go:wasmexport gadgetInit
func gadgetInit() int32 {
	events = igapi.GetDataSource("events")
	procF = igapi.GetField(events, "proc")
	credsF = igapi.GetField(events, "proc.creds")
	mountsF = igapi.GetField(events, "mounts")
	commF = igapi.GetField(events, "proc.comm")
	check(events != 0 && procF != 0 && credsF != 0 && mountsF != 0 && commF != 0, "get the struct fields proc, proc.creds, mounts")
	check(igapi.GetField(events, "pro") == 0, "a prefix of a name is no struct")
	check(igapi.AddField(events, "proc", igapi.KindString) == 0, "adding a field named as a struct fails")
	check(igapi.Subscribe(events, igapi.SubData, 0, 1) == 0, "subscribe to events")

	containers = igapi.GetDataSource("containers")
	check(containers != 0, "the host's data source containers")
	check(igapi.NewDataSource("containers", igapi.DSSingle) == 0, "newDataSource of the host's name fails")
	check(igapi.Subscribe(containers, igapi.SubArray, 0, 2) != 0, "an array subscription to containers fails")
	check(igapi.Subscribe(containers, igapi.SubData, 0, 2) == 0, "subscribe to containers")
	typeF = igapi.GetField(containers, "event_type")
	nameF = igapi.GetField(containers, "name")
	idF = igapi.GetField(containers, "container_id")
	mntnsF = igapi.GetField(containers, "mntns_id")
	cgroupF = igapi.GetField(containers, "cgroup_id")
	pidF = igapi.GetField(containers, "pid")
	configF = igapi.GetField(containers, "container_config")
	check(typeF != 0 && nameF != 0 && idF != 0 && mntnsF != 0 && cgroupF != 0 && pidF != 0 && configF != 0, "the fields of containers")
	seen = igapi.NewDataSource("seen", igapi.DSSingle)
	lineF = igapi.AddField(seen, "line", igapi.KindString)
	check(seen != 0 && lineF != 0, "the data source seen")
	return report("gadgetInit")
}

//go:wasmexport dataSourceCallback
func dataSourceCallback(cb uint64, ds, data uint32) {
	switch cb {
	case 1:
		onEvent(data)
		report("event")
	case 2:
		onContainer(data)
		report("container")
	}
}

func onEvent(data uint32) {
	js, n := igapi.Struct(procF, data, 256)
	check(js == `{"comm":"sh","pid":42,"creds":{"uid":1000,"user":"alice"}}`, "fieldGetStruct proc: "+js)
	_, n = igapi.Struct(procF, data, int(n)-1)
	check(n == -1, "fieldGetStruct into a buffer too small fails")
	js, _ = igapi.Struct(credsF, data, 256)
	check(js == `{"uid":1000,"user":"alice"}`, "fieldGetStruct proc.creds: "+js)
	_, n = igapi.Struct(commF, data, 256)
	check(n == -1, "fieldGetStruct of a string fails")
	_, n = igapi.StructArray(procF, data, 256)
	check(n == -1, "fieldGetStructArray of a struct fails")
	_, ok := igapi.Scalar(procF, data, igapi.KindUint64)
	check(!ok, "fieldGetScalar of a struct fails")
	js, _ = igapi.StructArray(mountsF, data, 256)
	check(js == `[{"src":"/a","dst":"/b"},{"src":"/c","dst":"/d"}]`, "fieldGetStructArray mounts: "+js)

	// Replacing a struct: the members left out become zero.
	check(igapi.PutStruct(procF, data, `{"comm":"init","pid":1.0,"creds":{"uid":0}}`) == 0, "fieldPutStruct proc")
	js, _ = igapi.Struct(procF, data, 256)
	check(js == `{"comm":"init","pid":1,"creds":{"uid":0,"user":""}}`, "proc after fieldPutStruct: "+js)
	for _, bad := range []string{
		`{"comm":"x","nope":1}`,       // no such member
		`{"creds":{"uid":1,"gid":2}}`, // nor nested
		`{"pid":"x"}`,                 // a string for a number
		`{"pid":-1}`,                  // a negative for an unsigned
		`{"pid":1.5}`,                 // a fraction
		`{"creds":5}`,                 // a number for a struct
		`[{"comm":"x"}]`,              // not an object
		`{"comm":"x"`,                 // not JSON
		`{"comm":"x","comm":"y"}`,     // a key twice
	} {
		check(igapi.PutStruct(procF, data, bad) != 0, "fieldPutStruct of "+bad+" fails")
	}
	js, _ = igapi.Struct(procF, data, 256)
	check(js == `{"comm":"init","pid":1,"creds":{"uid":0,"user":""}}`, "a failed fieldPutStruct changes nothing: "+js)
	check(igapi.PutStruct(credsF, data, `{"user":"root"}`) == 0, "fieldPutStruct proc.creds")

	check(igapi.PutStructArray(mountsF, data, `[{"src":"/x","dst":"/y","ro":true}]`) == 0, "fieldPutStructArray mounts")
	js, _ = igapi.StructArray(mountsF, data, 256)
	check(js == `[{"src":"/x","dst":"/y","ro":true}]`, "mounts after fieldPutStructArray: "+js)
	check(igapi.PutStructArray(mountsF, data, `[1,2]`) != 0, "fieldPutStructArray of numbers fails")
	check(igapi.PutStructArray(mountsF, data, `{"src":"/x"}`) != 0, "fieldPutStructArray of an object fails")
	check(igapi.PutStructArray(procF, data, `[]`) != 0, "fieldPutStructArray of a struct fails")
}

func onContainer(data uint32) {
	typ, _ := igapi.Buffer(typeF, data, igapi.KindString, 16)
	name, _ := igapi.Buffer(nameF, data, igapi.KindString, 64)
	id, _ := igapi.Buffer(idF, data, igapi.KindString, 80)
	cfg, n := igapi.Buffer(configF, data, igapi.KindString, 16)
	mntns, ok1 := igapi.Scalar(mntnsF, data, igapi.KindUint64)
	cgroup, ok2 := igapi.Scalar(cgroupF, data, igapi.KindUint64)
	pid, ok3 := igapi.Scalar(pidF, data, igapi.KindUint32)
	check(n >= 0 && ok1 && ok2 && ok3, "read the fields of a container event")
	p := igapi.NewPacketSingle(seen)
	line := typ + " " + name + " " + id + " " + strconv.FormatUint(mntns, 10) + " " + strconv.FormatUint(cgroup, 10) + " " + strconv.FormatUint(pid, 10) + " config=" + cfg
	check(p != 0 && igapi.SetString(lineF, p, line) == 0 && igapi.EmitAndRelease(seen, p) == 0, "emit into seen")
}
