// Command ig_wasm_go is the Inspektor Gadget module of the IG-style test
// gadget gadgets/testdata/ig_wasm.bpf.c, written in Go against IG's wasm
// API (package igapi), built with the standard toolchain:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o ig_wasm_go.wasm .
//
// It does what the end-to-end tests look for (its C twin ig_wasm_c.c does
// the same): at gadgetStart it writes the wasm param "tag" into the
// gadget's map tags (the program copies it into every event); for every
// event of data source "calls" it drops the ones whose who is the param
// "drop_who", and adds who_hex (who in hex) and calls (who's count in the
// gadget's map counts). At gadgetStop it emits one event of its own data
// source "summary" with the number of events it saw.
//
// Where the gadget's events have them (the kernel tests' do), it also adds
// proc_json (the struct proc, read with fieldGetStruct), discard (what
// shouldDiscardMntnsID says of the event's proc.mntns_id) and, when the
// param "probe" lists mount namespace ids, probe_discard (its answer for
// each, "1,0,..."). It logs which of the gadget's maps gadgetPreStart can
// open (none: the gadget is not loaded yet), and for each event of the
// containers data source it emits an event of its own data source
// "containers_seen": container_event, container_name, container_mntns and
// container_discard.
package main

import (
	"encoding/binary"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice/wasmstages/testdata/igapi"
)

func main() {}

var (
	calls, summary               uint32
	whoF, whoHexF, callsF, seenF uint32
	countsMap                    uint32
	dropWho                      uint64
	seen                         uint64

	procF, mntnsF, procJSONF, discardF, probeF uint32
	probe                                      []uint64

	containersDS, ctypeF, cnameF, cmntnsF   uint32
	seenContainers, seTypeF, seNameF, seNSF uint32
	seDiscardF                              uint32
)

//go:wasmexport gadgetAPIVersion
func gadgetAPIVersion() uint64 { return 1 }

//go:wasmexport gadgetInit
func gadgetInit() int32 {
	if calls = igapi.GetDataSource("calls"); calls == 0 {
		igapi.Log(igapi.LevelError, "no data source calls")
		return 1
	}
	whoF = igapi.GetField(calls, "who")
	whoHexF = igapi.AddField(calls, "who_hex", igapi.KindString)
	callsF = igapi.AddField(calls, "calls", igapi.KindUint64)
	if summary = igapi.NewDataSource("summary", igapi.DSSingle); summary == 0 {
		igapi.Log(igapi.LevelError, "cannot make data source summary")
		return 1
	}
	seenF = igapi.AddField(summary, "events", igapi.KindUint64)
	if whoF == 0 || whoHexF == 0 || callsF == 0 || seenF == 0 {
		igapi.Log(igapi.LevelError, "cannot get or add the fields")
		return 1
	}
	if v, ok := igapi.Param("drop_who", 32); ok && v != "" {
		n, err := strconv.ParseUint(v, 0, 64)
		if err != nil {
			igapi.Log(igapi.LevelError, "drop_who: "+err.Error())
			return 1
		}
		dropWho = n
	}
	if igapi.Subscribe(calls, igapi.SubData, 0, 1) != 0 {
		igapi.Log(igapi.LevelError, "cannot subscribe to calls")
		return 1
	}
	if procF = igapi.GetField(calls, "proc"); procF != 0 {
		procJSONF = igapi.AddField(calls, "proc_json", igapi.KindString)
	}
	if mntnsF = igapi.GetField(calls, "proc.mntns_id"); mntnsF != 0 {
		discardF = igapi.AddField(calls, "discard", igapi.KindBool)
	}
	if v, ok := igapi.Param("probe", 256); ok && v != "" {
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				igapi.Log(igapi.LevelError, "probe: "+err.Error())
				return 1
			}
			probe = append(probe, n)
		}
		probeF = igapi.AddField(calls, "probe_discard", igapi.KindString)
	}
	containersDS = igapi.GetDataSource("containers")
	seenContainers = igapi.NewDataSource("containers_seen", igapi.DSSingle)
	ctypeF = igapi.GetField(containersDS, "event_type")
	cnameF = igapi.GetField(containersDS, "name")
	cmntnsF = igapi.GetField(containersDS, "mntns_id")
	seTypeF = igapi.AddField(seenContainers, "container_event", igapi.KindString)
	seNameF = igapi.AddField(seenContainers, "container_name", igapi.KindString)
	seNSF = igapi.AddField(seenContainers, "container_mntns", igapi.KindUint64)
	seDiscardF = igapi.AddField(seenContainers, "container_discard", igapi.KindBool)
	if ctypeF == 0 || cnameF == 0 || cmntnsF == 0 || seTypeF == 0 || seNameF == 0 || seNSF == 0 || seDiscardF == 0 ||
		igapi.Subscribe(containersDS, igapi.SubData, 0, 2) != 0 {
		igapi.Log(igapi.LevelError, "cannot subscribe to containers")
		return 1
	}
	igapi.Log(igapi.LevelInfo, "ig_wasm_go: init done")
	return 0
}

//go:wasmexport gadgetPreStart
func gadgetPreStart() int32 {
	// IG runs gadgetPreStart before the eBPF collection loads.
	opened := "none"
	if m := igapi.GetMap("counts"); m != 0 {
		opened = "counts"
		igapi.ReleaseHandle(m)
	}
	igapi.Log(igapi.LevelInfo, "ig_wasm_go: maps before the gadget loads: "+opened)
	return 0
}

//go:wasmexport gadgetStart
func gadgetStart() int32 {
	tag := uint64(0)
	if v, ok := igapi.Param("tag", 32); ok && v != "" {
		n, err := strconv.ParseUint(v, 0, 64)
		if err != nil {
			igapi.Log(igapi.LevelError, "tag: "+err.Error())
			return 1
		}
		tag = n
	}
	tags := igapi.GetMap("tags")
	if countsMap = igapi.GetMap("counts"); tags == 0 || countsMap == 0 {
		igapi.Log(igapi.LevelError, "the gadget's maps tags and counts are missing")
		return 1
	}
	key := make([]byte, 4)
	val := binary.LittleEndian.AppendUint64(nil, tag)
	if igapi.MapUpdate(tags, key, val, 0) != 0 {
		igapi.Log(igapi.LevelError, "cannot write the tag")
		return 1
	}
	back := make([]byte, 8)
	if igapi.MapLookup(tags, key, back) != 0 || binary.LittleEndian.Uint64(back) != tag {
		igapi.Log(igapi.LevelError, "the tag does not read back")
		return 1
	}
	igapi.ReleaseHandle(tags)
	igapi.Log(igapi.LevelInfo, "ig_wasm_go: tag "+strconv.FormatUint(tag, 10)+" written")
	return 0
}

//go:wasmexport gadgetStop
func gadgetStop() int32 {
	p := igapi.NewPacketSingle(summary)
	if p == 0 || igapi.SetScalar(seenF, p, igapi.KindUint64, seen) != 0 || igapi.EmitAndRelease(summary, p) != 0 {
		igapi.Log(igapi.LevelError, "cannot emit the summary")
		return 1
	}
	return 0
}

func bit(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

//go:wasmexport dataSourceCallback
func dataSourceCallback(cb uint64, ds, data uint32) {
	if cb == 2 {
		onContainer(data)
		return
	}
	who, ok := igapi.Scalar(whoF, data, igapi.KindUint64)
	if !ok {
		igapi.Log(igapi.LevelError, "cannot read who")
		return
	}
	seen++
	if dropWho != 0 && who == dropWho {
		igapi.Release(ds, data)
		return
	}
	igapi.SetString(whoHexF, data, "0x"+strconv.FormatUint(who, 16))
	val := make([]byte, 8)
	if igapi.MapLookup(countsMap, binary.LittleEndian.AppendUint64(nil, who), val) == 0 {
		igapi.SetScalar(callsF, data, igapi.KindUint64, binary.LittleEndian.Uint64(val))
	}
	if procJSONF != 0 {
		if js, n := igapi.Struct(procF, data, 1024); n >= 0 {
			igapi.SetString(procJSONF, data, js)
		}
	}
	if discardF != 0 {
		if ns, ok := igapi.Scalar(mntnsF, data, igapi.KindUint64); ok {
			igapi.SetScalar(discardF, data, igapi.KindBool, bit(igapi.ShouldDiscardMntnsID(ns)))
		}
	}
	if probeF != 0 {
		answers := make([]string, len(probe))
		for i, ns := range probe {
			answers[i] = strconv.FormatUint(bit(igapi.ShouldDiscardMntnsID(ns)), 10)
		}
		igapi.SetString(probeF, data, strings.Join(answers, ","))
	}
}

func onContainer(data uint32) {
	typ, _ := igapi.Buffer(ctypeF, data, igapi.KindString, 16)
	name, _ := igapi.Buffer(cnameF, data, igapi.KindString, 256)
	ns, _ := igapi.Scalar(cmntnsF, data, igapi.KindUint64)
	p := igapi.NewPacketSingle(seenContainers)
	igapi.SetString(seTypeF, p, typ)
	igapi.SetString(seNameF, p, name)
	igapi.SetScalar(seNSF, p, igapi.KindUint64, ns)
	igapi.SetScalar(seDiscardF, p, igapi.KindBool, bit(igapi.ShouldDiscardMntnsID(ns)))
	igapi.EmitAndRelease(seenContainers, p)
}
