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
package main

import (
	"encoding/binary"
	"strconv"

	"github.com/sluice-dev/sluice/wasmstages/testdata/igapi"
)

func main() {}

var (
	calls, summary               uint32
	whoF, whoHexF, callsF, seenF uint32
	countsMap                    uint32
	dropWho                      uint64
	seen                         uint64
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
	igapi.Log(igapi.LevelInfo, "ig_wasm_go: init done")
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

//go:wasmexport dataSourceCallback
func dataSourceCallback(cb uint64, ds, data uint32) {
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
}
