package wasmstages

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/sluice-dev/sluice/internal/kallsyms"
	"github.com/sluice-dev/sluice/internal/syscalls"
	"github.com/sluice-dev/sluice/pipeline/codec"
)

// The functions of import module "ig", Inspektor Gadget's wasm API (its
// docs' "Wasm API" page). Strings and buffers are "bufPtrs": a u64 whose
// high 32 bits are the length and low 32 bits the address (0 is the empty
// string). As in IG, a function that fails returns its error value (0 for
// a handle, 1 for a status, -1 for a length) and the host logs why; a
// pointer outside the guest's memory is such a failure too, not a trap.

// igSig is a host function's signature, by the letters of its types.
func igSig(params, results string) funcType {
	conv := func(s string) []api.ValueType {
		var t []api.ValueType
		for _, c := range s {
			if c == 'I' {
				t = append(t, i64)
			} else {
				t = append(t, i32)
			}
		}
		return t
	}
	return funcType{conv(params), conv(results)}
}

// igImports are the functions of import module "ig", with their
// signatures (i: i32, I: i64).
var igImports = map[string]funcType{
	"gadgetLog": igSig("iI", ""),

	"newDataSource":             igSig("Ii", "i"),
	"getDataSource":             igSig("I", "i"),
	"dataSourceSubscribe":       igSig("iiiI", "i"),
	"dataSourceGetField":        igSig("iI", "i"),
	"dataSourceAddField":        igSig("iIi", "i"),
	"dataSourceNewPacketSingle": igSig("i", "i"),
	"dataSourceNewPacketArray":  igSig("i", "i"),
	"dataSourceEmitAndRelease":  igSig("ii", "i"),
	"dataSourceRelease":         igSig("ii", "i"),
	"dataSourceUnreference":     igSig("i", "i"),
	"dataSourceIsReferenced":    igSig("i", "i"),
	"dataArrayNew":              igSig("i", "i"),
	"dataArrayAppend":           igSig("ii", "i"),
	"dataArrayRelease":          igSig("ii", "i"),
	"dataArrayLen":              igSig("i", "i"),
	"dataArrayGet":              igSig("ii", "i"),

	"fieldGetScalar": igSig("iiii", "I"),
	"fieldGetBuffer": igSig("iiiI", "i"),
	"fieldSet":       igSig("iiiI", "i"),
	"fieldAddTag":    igSig("iI", "i"),

	"fieldGetStruct":      igSig("iiI", "i"),
	"fieldPutStruct":      igSig("iiI", "i"),
	"fieldGetStructArray": igSig("iiI", "i"),
	"fieldPutStructArray": igSig("iiI", "i"),

	"getParamValue": igSig("II", "i"),
	"setConfig":     igSig("IIi", "i"),

	"newMap":     igSig("Iiiii", "i"),
	"getMap":     igSig("I", "i"),
	"mapLookup":  igSig("iII", "i"),
	"mapUpdate":  igSig("iIII", "i"),
	"mapDelete":  igSig("iI", "i"),
	"mapRelease": igSig("i", "i"),

	"releaseHandle": igSig("i", "i"),

	"getSyscallName":        igSig("iI", "i"),
	"getSyscallID":          igSig("I", "i"),
	"getSyscallDeclaration": igSig("II", "i"),

	"newPerfReader":    igSig("iii", "i"),
	"perfReaderPause":  igSig("i", "i"),
	"perfReaderResume": igSig("i", "i"),
	"perfReaderRead":   igSig("iI", "i"),
	"perfReaderClose":  igSig("i", "i"),

	"kallsymsSymbolExists": igSig("I", "i"),
	"shouldDiscardMntnsID": igSig("I", "i"),
}

// igFunc is a host function: it returns its result, or an error, which is
// logged and turned into the function's error value.
type igFunc func(ctx context.Context, mod api.Module, stack []uint64) (uint64, error)

// instantiateHost adds the "ig" module to r.
func (m *IGModule) instantiateHost(ctx context.Context, r wazero.Runtime) error {
	b := r.NewHostModuleBuilder(igImportModule)
	fns := map[string]igFunc{
		"newDataSource": m.newDataSource, "getDataSource": m.getDataSource,
		"dataSourceSubscribe": m.dataSourceSubscribe, "dataSourceGetField": m.dataSourceGetField,
		"dataSourceAddField": m.dataSourceAddField, "dataSourceNewPacketSingle": m.newPacketSingle,
		"dataSourceNewPacketArray": m.newPacketArray, "dataSourceEmitAndRelease": m.emitAndRelease,
		"dataSourceRelease": m.releasePacket, "dataSourceUnreference": m.unreference,
		"dataSourceIsReferenced": m.isReferenced, "dataArrayNew": m.dataArrayNew,
		"dataArrayAppend": m.dataArrayAppend, "dataArrayRelease": m.dataArrayRelease,
		"dataArrayLen": m.dataArrayLen, "dataArrayGet": m.dataArrayGet,
		"fieldGetScalar": m.fieldGetScalar, "fieldGetBuffer": m.fieldGetBuffer,
		"fieldSet": m.fieldSet, "fieldAddTag": m.fieldAddTag,
		"fieldGetStruct": m.fieldGetStruct, "fieldPutStruct": m.fieldPutStruct,
		"fieldGetStructArray": m.fieldGetStructArray, "fieldPutStructArray": m.fieldPutStructArray,
		"getParamValue": m.getParamValue, "setConfig": m.setConfig,
		"newMap": m.newMap, "getMap": m.getMap, "mapLookup": m.mapLookup, "mapUpdate": m.mapUpdate,
		"mapDelete": m.mapDelete, "mapRelease": m.mapRelease, "releaseHandle": m.releaseHandle,
		"getSyscallName": m.getSyscallName, "getSyscallID": m.getSyscallID,
		"getSyscallDeclaration": m.getSyscallDeclaration,
		"newPerfReader":         m.newPerfReader, "perfReaderPause": m.perfReaderPause,
		"perfReaderResume": m.perfReaderResume, "perfReaderRead": m.perfReaderRead,
		"perfReaderClose":      m.perfReaderClose,
		"kallsymsSymbolExists": m.kallsymsSymbolExists, "shouldDiscardMntnsID": m.shouldDiscardMntnsID,
	}
	for name, sig := range igImports {
		if name == "gadgetLog" {
			b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(m.gadgetLog), sig.params, sig.results).Export(name)
			continue
		}
		f := fns[name]
		fail := igErrorValue(name)
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
			v, err := f(ctx, mod, stack)
			if err != nil {
				m.warn(ctx, name, err)
				v = fail
			}
			stack[0] = v
		}), sig.params, sig.results).Export(name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("instantiate host module %s: %w", igImportModule, err)
	}
	return nil
}

// igErrorValue is what a function returns when it fails: 0 for a handle
// (or a length, or a scalar), -1 for a byte count or an id, 1 for a
// status.
func igErrorValue(name string) uint64 {
	switch name {
	case "fieldGetBuffer", "getSyscallID", "fieldGetStruct", "fieldGetStructArray":
		return uint64(uint32(0xffffffff))
	case "dataSourceIsReferenced":
		return 2
	case "newDataSource", "getDataSource", "dataSourceGetField", "dataSourceAddField",
		"dataSourceNewPacketSingle", "dataSourceNewPacketArray", "dataArrayNew", "dataArrayLen",
		"dataArrayGet", "fieldGetScalar", "newMap", "getMap", "newPerfReader",
		"kallsymsSymbolExists", "shouldDiscardMntnsID":
		return 0
	}
	return 1
}

// warn logs a failed host call, as IG does, rate-limited like the guest's
// own lines.
func (m *IGModule) warn(ctx context.Context, fn string, err error) {
	m.logs.emitLog(ctx, slog.LevelWarn, fn+": "+err.Error(), "source", "host")
}

// gadgetLog(level u32, msg bufPtr): 0 error, 1 warn, 2 info, 3 debug, 4
// trace (logged as debug).
func (m *IGModule) gadgetLog(ctx context.Context, mod api.Module, stack []uint64) {
	level := slog.LevelDebug
	switch uint32(stack[0]) {
	case 0:
		level = slog.LevelError
	case 1:
		level = slog.LevelWarn
	case 2:
		level = slog.LevelInfo
	}
	msg, err := igBytes(mod, stack[1])
	if err != nil {
		m.warn(ctx, "gadgetLog", err)
		return
	}
	m.logs.emitLog(ctx, level, string(clip(msg, maxLogLine)), "source", "guest")
}

// igBytes returns the guest memory a bufPtr names (nil for 0).
func igBytes(mod api.Module, p uint64) ([]byte, error) {
	if p == 0 {
		return nil, nil
	}
	n, addr := uint32(p>>32), uint32(p)
	b, ok := mod.Memory().Read(addr, n)
	if !ok {
		return nil, fmt.Errorf("%d bytes at %#x lie outside the guest's %d-byte memory", n, addr, mod.Memory().Size())
	}
	return b, nil
}

func igString(mod api.Module, p uint64) (string, error) {
	b, err := igBytes(mod, p)
	return string(b), err
}

// igWrite copies src into the guest buffer dst (a bufPtr), which must be
// large enough.
func igWrite(mod api.Module, dst uint64, src []byte) error {
	buf, err := igBytes(mod, dst)
	if err != nil {
		return err
	}
	if len(buf) < len(src) {
		return fmt.Errorf("the value is %d bytes; the buffer holds %d", len(src), len(buf))
	}
	copy(buf, src)
	return nil
}

func (m *IGModule) handleOf(o any) (uint64, error) {
	h := m.sess.add(o)
	if h == 0 {
		return 0, fmt.Errorf("the module holds %d handles, the most it may; release the ones it no longer needs", igMaxHandles)
	}
	return uint64(h), nil
}

func (m *IGModule) dsByName(name string) *igDataSource {
	for _, ds := range m.dss {
		if ds.name == name {
			return ds
		}
	}
	return nil
}

func (m *IGModule) newDataSource(_ context.Context, mod api.Module, stack []uint64) (uint64, error) {
	name, err := igString(mod, stack[0])
	if err != nil {
		return 0, err
	}
	typ := uint32(stack[1])
	if name == "" || typ > igDSArray {
		return 0, fmt.Errorf("new data source %q of type %d: want a name and type 1 (single) or 2 (array)", name, typ)
	}
	ds := m.dsByName(name)
	switch {
	case ds != nil && ds.output == igHostOutput:
		return 0, fmt.Errorf("new data source %q: the host provides a data source of that name", name)
	case ds != nil && ds.output >= 0:
		return 0, fmt.Errorf("new data source %q: the gadget has a data source of that name", name)
	case ds != nil && ds.array != (typ == igDSArray):
		return 0, fmt.Errorf("new data source %q: the module made it already, of the other type", name)
	case ds == nil:
		// A replacement instance making its data sources again gets the
		// same ones (their added fields included).
		ds = &igDataSource{name: name, array: typ == igDSArray, output: -1, fields: map[string]*igField{}}
		m.dss = append(m.dss, ds)
	}
	return m.handleOf(ds)
}

func (m *IGModule) getDataSource(_ context.Context, mod api.Module, stack []uint64) (uint64, error) {
	name, err := igString(mod, stack[0])
	if err != nil {
		return 0, err
	}
	ds := m.dsByName(name)
	if ds == nil {
		var names []string
		for _, d := range m.dss {
			names = append(names, d.name)
		}
		return 0, fmt.Errorf("no data source %q (the gadget's and the module's are: %s)", name, strings.Join(names, ", "))
	}
	return m.handleOf(ds)
}

func (m *IGModule) dataSourceSubscribe(_ context.Context, mod api.Module, stack []uint64) (uint64, error) {
	h := uint32(stack[0])
	ds, err := igGet[*igDataSource](m.sess, h)
	if err != nil {
		return 1, err
	}
	if mod.ExportedFunction("dataSourceCallback") == nil {
		return 1, errors.New("the module does not export dataSourceCallback, through which the host delivers subscriptions")
	}
	typ := uint32(stack[1])
	switch {
	case typ < igSubData || typ > igSubPacket:
		return 1, fmt.Errorf("subscribe to %s: unknown subscription type %d (1 data, 2 array, 3 packet)", dsName(ds), typ)
	case typ == igSubArray && !ds.array:
		return 1, fmt.Errorf("subscribe to %s: an array subscription to a data source of single events", dsName(ds))
	}
	sub := igSub{typ: typ, ds: h, prio: int32(stack[2]), cb: stack[3]}
	// Lower priorities first; equal ones in the order they subscribed.
	i := len(ds.subs)
	for i > 0 && ds.subs[i-1].prio > sub.prio {
		i--
	}
	ds.subs = slices.Insert(ds.subs, i, sub)
	return 0, nil
}

func (m *IGModule) dataSourceGetField(_ context.Context, mod api.Module, stack []uint64) (uint64, error) {
	ds, err := igGet[*igDataSource](m.sess, uint32(stack[0]))
	if err != nil {
		return 0, err
	}
	name, err := igString(mod, stack[1])
	if err != nil {
		return 0, err
	}
	f, ok := ds.field(name)
	if !ok {
		return 0, fmt.Errorf("%s has no field %q", dsName(ds), name)
	}
	return m.handleOf(f)
}

func (m *IGModule) dataSourceAddField(_ context.Context, mod api.Module, stack []uint64) (uint64, error) {
	ds, err := igGet[*igDataSource](m.sess, uint32(stack[0]))
	if err != nil {
		return 0, err
	}
	name, err := igString(mod, stack[1])
	if err != nil {
		return 0, err
	}
	f, err := ds.addField(name, uint32(stack[2]))
	if err != nil {
		return 0, err
	}
	return m.handleOf(f)
}

func (m *IGModule) newPacketSingle(_ context.Context, _ api.Module, stack []uint64) (uint64, error) {
	ds, err := igGet[*igDataSource](m.sess, uint32(stack[0]))
	if err != nil {
		return 0, err
	}
	if ds.array {
		return 0, fmt.Errorf("%s is an array data source: its packets are arrays (dataSourceNewPacketArray)", dsName(ds))
	}
	return m.handleOf(m.newData(ds))
}

func (m *IGModule) newPacketArray(_ context.Context, _ api.Module, stack []uint64) (uint64, error) {
	ds, err := igGet[*igDataSource](m.sess, uint32(stack[0]))
	if err != nil {
		return 0, err
	}
	if !ds.array {
		return 0, fmt.Errorf("%s is a data source of single events (dataSourceNewPacketSingle)", dsName(ds))
	}
	return m.handleOf(&igArray{ds: ds})
}

// packetOf returns the data source and packet (an *igData or *igArray) of
// a dataSourceEmitAndRelease or dataSourceRelease call.
func (m *IGModule) packetOf(stack []uint64) (*igDataSource, any, error) {
	ds, err := igGet[*igDataSource](m.sess, uint32(stack[0]))
	if err != nil {
		return nil, nil, err
	}
	ph := uint32(stack[1])
	o, ok := m.sess.objs[ph]
	if !ok {
		return nil, nil, fmt.Errorf("packet handle %d is not open", ph)
	}
	var pds *igDataSource
	switch p := o.(type) {
	case *igData:
		pds = p.ds
	case *igArray:
		pds = p.ds
	default:
		return nil, nil, fmt.Errorf("handle %d is a %s, not a packet", ph, igTypeName(o))
	}
	if pds != ds {
		return nil, nil, fmt.Errorf("the packet belongs to %s, not to %s", dsName(pds), dsName(ds))
	}
	return ds, o, nil
}

// emitAndRelease emits a packet the module made. A packet the host handed
// to a callback (the event itself) goes on anyway: emitting it changes
// nothing.
func (m *IGModule) emitAndRelease(_ context.Context, _ api.Module, stack []uint64) (uint64, error) {
	_, o, err := m.packetOf(stack)
	if err != nil {
		return 1, err
	}
	m.sess.del(uint32(stack[1]))
	switch p := o.(type) {
	case *igData:
		if p.in >= 0 {
			return 0, nil
		}
		if err := m.emit(p); err != nil {
			return 1, err
		}
	case *igArray:
		if p.input {
			return 0, nil
		}
		for _, d := range p.items {
			if err := m.emit(d); err != nil {
				return 1, err
			}
		}
	}
	return 0, nil
}

// releasePacket releases a packet without sending it. For a packet the
// host handed to a callback, that drops the event (or the whole snapshot):
// sluice's way for a module to filter, which IG's API leaves open.
func (m *IGModule) releasePacket(_ context.Context, _ api.Module, stack []uint64) (uint64, error) {
	_, o, err := m.packetOf(stack)
	if err != nil {
		return 1, err
	}
	switch p := o.(type) {
	case *igData:
		p.dropped = true
	case *igArray:
		for _, d := range p.items {
			d.dropped = true
		}
	}
	m.sess.del(uint32(stack[1]))
	return 0, nil
}

func (m *IGModule) unreference(_ context.Context, _ api.Module, stack []uint64) (uint64, error) {
	ds, err := igGet[*igDataSource](m.sess, uint32(stack[0]))
	if err != nil {
		return 1, err
	}
	ds.unreferenced = true
	return 0, nil
}

func (m *IGModule) isReferenced(_ context.Context, _ api.Module, stack []uint64) (uint64, error) {
	ds, err := igGet[*igDataSource](m.sess, uint32(stack[0]))
	if err != nil {
		return 2, err
	}
	if ds.unreferenced {
		return 0, nil
	}
	return 1, nil
}

func (m *IGModule) dataArrayNew(_ context.Context, _ api.Module, stack []uint64) (uint64, error) {
	arr, err := igGet[*igArray](m.sess, uint32(stack[0]))
	if err != nil {
		return 0, err
	}
	return m.handleOf(m.newData(arr.ds))
}

// dataArrayAppend appends a datum dataArrayNew made; its handle is
// released.
func (m *IGModule) dataArrayAppend(_ context.Context, _ api.Module, stack []uint64) (uint64, error) {
	arr, err := igGet[*igArray](m.sess, uint32(stack[0]))
	if err != nil {
		return 1, err
	}
	dh := uint32(stack[1])
	d, err := igGet[*igData](m.sess, dh)
	if err != nil {
		return 1, err
	}
	if d.in >= 0 || d.ds != arr.ds || slices.Contains(arr.items, d) {
		return 1, fmt.Errorf("data %d was not made by dataArrayNew of this array", dh)
	}
	if len(arr.items) > igMaxArrayIndex {
		return 1, fmt.Errorf("the array has %d elements, the most it may", len(arr.items))
	}
	arr.items = append(arr.items, d)
	m.sess.del(dh)
	return 0, nil
}

// dataArrayRelease frees a datum dataArrayNew made, or drops an element of
// the array (for a snapshot the host handed to a callback: the row does
// not go on).
func (m *IGModule) dataArrayRelease(_ context.Context, _ api.Module, stack []uint64) (uint64, error) {
	arr, err := igGet[*igArray](m.sess, uint32(stack[0]))
	if err != nil {
		return 1, err
	}
	dh := uint32(stack[1])
	d, err := m.dataOf(dh)
	if err != nil {
		return 1, err
	}
	if d.ds != arr.ds {
		return 1, fmt.Errorf("data %d belongs to %s, not to the array's", dh, dsName(d.ds))
	}
	d.dropped = true
	if dh&igArrayElemFlag == 0 {
		m.sess.del(dh)
	}
	return 0, nil
}

func (m *IGModule) dataArrayLen(_ context.Context, _ api.Module, stack []uint64) (uint64, error) {
	arr, err := igGet[*igArray](m.sess, uint32(stack[0]))
	if err != nil {
		return 0, err
	}
	return uint64(len(arr.items)), nil
}

func (m *IGModule) dataArrayGet(_ context.Context, _ api.Module, stack []uint64) (uint64, error) {
	ah := uint32(stack[0])
	arr, err := igGet[*igArray](m.sess, ah)
	if err != nil {
		return 0, err
	}
	i := int32(stack[1])
	switch {
	case i < 0 || int(i) >= len(arr.items):
		return 0, fmt.Errorf("data array %d has %d elements; no element %d", ah, len(arr.items), i)
	case i > igMaxArrayIndex || ah > 0xffff:
		return 0, fmt.Errorf("element %d of array %d cannot be addressed (index above %d)", i, ah, igMaxArrayIndex)
	}
	return uint64(igArrayElemFlag | uint32(i)<<16 | ah), nil
}

// fieldArgs returns the field and datum of a field function.
func (m *IGModule) fieldArgs(stack []uint64) (*igField, *igData, error) {
	f, err := igGet[*igField](m.sess, uint32(stack[0]))
	if err != nil {
		return nil, nil, err
	}
	d, err := m.dataOf(uint32(stack[1]))
	if err != nil {
		return nil, nil, err
	}
	if d.ds != f.ds {
		return nil, nil, fmt.Errorf("field %q is a field of %s; the data belongs to %s", f.name, dsName(f.ds), dsName(d.ds))
	}
	return f, d, nil
}

// valueArgs is fieldArgs for the accessors of one value: a struct is
// read and written whole, with fieldGetStruct and fieldPutStruct.
func (m *IGModule) valueArgs(stack []uint64) (*igField, *igData, error) {
	f, d, err := m.fieldArgs(stack)
	if err == nil && f.isStruct {
		err = fmt.Errorf("field %q is a struct: read and write it with fieldGetStruct and fieldPutStruct, or its members (%q, ...) one by one", f.name, f.structMembers()[0].Name)
	}
	return f, d, err
}

// fieldGetScalar(field, data, kind, errPtr) -> value: on failure the u32
// at errPtr (unless 0) is set to 1.
func (m *IGModule) fieldGetScalar(ctx context.Context, mod api.Module, stack []uint64) (uint64, error) {
	v, err := m.getScalar(stack)
	if err != nil {
		if p := uint32(stack[3]); p != 0 && !mod.Memory().WriteUint32Le(p, 1) {
			// IG ends a module that gives a bad error pointer.
			panic(fmt.Errorf("fieldGetScalar: the error pointer %#x lies outside the guest's memory", p))
		}
	}
	return v, err
}

func (m *IGModule) getScalar(stack []uint64) (uint64, error) {
	f, d, err := m.valueArgs(stack)
	if err != nil {
		return 0, err
	}
	raw, err := d.value(f)
	if err != nil {
		return 0, err
	}
	v, err := igScalar(raw, uint32(stack[2]))
	if err != nil {
		return 0, fmt.Errorf("field %q: %w", f.name, err)
	}
	return v, nil
}

func (m *IGModule) fieldGetBuffer(_ context.Context, mod api.Module, stack []uint64) (uint64, error) {
	f, d, err := m.valueArgs(stack)
	if err != nil {
		return 0, err
	}
	if k := uint32(stack[2]); k != igKindString && k != igKindCString && k != igKindBytes {
		return 0, fmt.Errorf("field %q: fieldGetBuffer reads strings and bytes, not kind %d", f.name, k)
	}
	raw, err := d.value(f)
	if err != nil {
		return 0, err
	}
	var b []byte
	if s, _, serr := codec.ReadString(raw); serr == nil {
		b = s
	} else if len(raw) > 0 && (raw[0] == 0xc4 || raw[0] == 0xc5 || raw[0] == 0xc6) {
		n, hdr := 0, 0
		switch raw[0] {
		case 0xc4:
			n, hdr = int(raw[1]), 2
		case 0xc5:
			n, hdr = int(binary.BigEndian.Uint16(raw[1:])), 3
		case 0xc6:
			n, hdr = int(binary.BigEndian.Uint32(raw[1:])), 5
		}
		b = raw[hdr : hdr+n]
	} else {
		return 0, fmt.Errorf("field %q holds no string or bytes", f.name)
	}
	if err := igWrite(mod, stack[3], b); err != nil {
		return 0, fmt.Errorf("field %q: %w", f.name, err)
	}
	return uint64(len(b)), nil
}

func (m *IGModule) fieldSet(_ context.Context, mod api.Module, stack []uint64) (uint64, error) {
	f, d, err := m.valueArgs(stack)
	if err != nil {
		return 1, err
	}
	kind := uint32(stack[2])
	if err := checkSetKind(f, kind); err != nil {
		return 1, err
	}
	var val []byte
	switch kind {
	case igKindString, igKindCString:
		s, err := igBytes(mod, stack[3])
		if err != nil {
			return 1, err
		}
		if kind == igKindCString {
			if i := slices.Index(s, 0); i >= 0 {
				s = s[:i]
			}
		}
		val = codec.AppendStringBytes(nil, s)
	case igKindBytes:
		s, err := igBytes(mod, stack[3])
		if err != nil {
			return 1, err
		}
		val = codec.AppendBytes(nil, s)
	default:
		if val, err = igEncodeScalar(kind, stack[3]); err != nil {
			return 1, err
		}
	}
	if err := d.set(f.name, val); err != nil {
		return 1, err
	}
	return 0, nil
}

func (m *IGModule) fieldAddTag(_ context.Context, mod api.Module, stack []uint64) (uint64, error) {
	f, err := igGet[*igField](m.sess, uint32(stack[0]))
	if err != nil {
		return 1, err
	}
	tag, err := igString(mod, stack[1])
	if err != nil {
		return 1, err
	}
	f.tags = append(f.tags, tag)
	return 0, nil
}

func (m *IGModule) getParamValue(_ context.Context, mod api.Module, stack []uint64) (uint64, error) {
	key, err := igString(mod, stack[0])
	if err != nil {
		return 1, err
	}
	v, err := m.cfg.Handle.Param(key)
	if err != nil {
		return 1, err
	}
	if err := igWrite(mod, stack[1], []byte(v)); err != nil {
		return 1, fmt.Errorf("param %q: %w", key, err)
	}
	return 0, nil
}

// setConfig sets a key of the gadget's configuration (text values only,
// as in IG). Field annotations (datasources.<ds>.fields.<field>.annotations.
// description, columns.hidden, columns.width) change how the fields are
// shown; other keys are kept and change nothing in sluice.
func (m *IGModule) setConfig(_ context.Context, mod api.Module, stack []uint64) (uint64, error) {
	key, err := igString(mod, stack[0])
	if err != nil {
		return 1, err
	}
	if kind := uint32(stack[2]); kind != igKindString {
		return 1, fmt.Errorf("config %q: values are strings (kind %d), not kind %d", key, igKindString, kind)
	}
	val, err := igString(mod, stack[1])
	if err != nil {
		return 1, err
	}
	m.config[key] = val
	for _, ds := range m.dss {
		ds.out = nil
	}
	return 0, nil
}

func (m *IGModule) newMap(_ context.Context, mod api.Module, stack []uint64) (uint64, error) {
	name, err := igString(mod, stack[0])
	if err != nil {
		return 0, err
	}
	om, err := m.cfg.Handle.NewMap(IGMapSpec{Name: name, Type: uint32(stack[1]), KeySize: uint32(stack[2]), ValueSize: uint32(stack[3]), MaxEntries: uint32(stack[4])})
	if err != nil {
		return 0, fmt.Errorf("new map %q: %w", name, err)
	}
	h, err := m.handleOf(&igMap{MapHandle: om, owned: om})
	if err != nil {
		_ = om.Close()
		return 0, err
	}
	m.owned = append(m.owned, om)
	return h, nil
}

func (m *IGModule) getMap(_ context.Context, mod api.Module, stack []uint64) (uint64, error) {
	name, err := igString(mod, stack[0])
	if err != nil {
		return 0, err
	}
	mh, err := m.cfg.Handle.Map(name)
	if err != nil {
		return 0, err
	}
	return m.handleOf(&igMap{MapHandle: mh})
}

// mapKV returns a map and the key (and value) buffers of a map call. The
// key must be the map's key size; a value buffer for a lookup at least
// the value size, for an update exactly.
func (m *IGModule) mapKV(mod api.Module, stack []uint64, value int, exact bool) (*igMap, []byte, []byte, error) {
	mp, err := igGet[*igMap](m.sess, uint32(stack[0]))
	if err != nil {
		return nil, nil, nil, err
	}
	info := mp.Info()
	key, err := igBytes(mod, stack[1])
	if err != nil {
		return nil, nil, nil, err
	}
	if uint32(len(key)) != info.KeySize {
		return nil, nil, nil, fmt.Errorf("the key is %d bytes; the map's keys are %d", len(key), info.KeySize)
	}
	if value == 0 {
		return mp, key, nil, nil
	}
	val, err := igBytes(mod, stack[value])
	if err != nil {
		return nil, nil, nil, err
	}
	if n := uint32(len(val)); n < info.ValueSize || exact && n != info.ValueSize {
		return nil, nil, nil, fmt.Errorf("the value is %d bytes; the map's values are %d", len(val), info.ValueSize)
	}
	return mp, key, val[:info.ValueSize], nil
}

func (m *IGModule) mapLookup(_ context.Context, mod api.Module, stack []uint64) (uint64, error) {
	mp, key, val, err := m.mapKV(mod, stack, 2, false)
	if err != nil {
		return 1, err
	}
	return 0, mp.Lookup(key, val)
}

func (m *IGModule) mapUpdate(_ context.Context, mod api.Module, stack []uint64) (uint64, error) {
	if flags := stack[3]; flags > 4 || flags == 3 {
		return 1, fmt.Errorf("flags %d: want 0 (any), 1 (no exist), 2 (exist) or 4 (lock)", flags)
	}
	mp, key, val, err := m.mapKV(mod, stack, 2, true)
	if err != nil {
		return 1, err
	}
	return 0, mp.Update(key, val, stack[3])
}

func (m *IGModule) mapDelete(_ context.Context, mod api.Module, stack []uint64) (uint64, error) {
	mp, key, _, err := m.mapKV(mod, stack, 0, false)
	if err != nil {
		return 1, err
	}
	return 0, mp.Delete(key)
}

// mapRelease closes a map newMap created and releases its handle.
func (m *IGModule) mapRelease(_ context.Context, _ api.Module, stack []uint64) (uint64, error) {
	h := uint32(stack[0])
	mp, err := igGet[*igMap](m.sess, h)
	if err != nil {
		return 1, err
	}
	if mp.owned == nil {
		return 1, fmt.Errorf("map %d is the gadget's, not one newMap created: release its handle with releaseHandle", h)
	}
	m.sess.del(h)
	m.owned = slices.DeleteFunc(m.owned, func(o OwnedMap) bool { return o == mp.owned })
	return 0, mp.owned.Close()
}

func (m *IGModule) releaseHandle(_ context.Context, _ api.Module, stack []uint64) (uint64, error) {
	h := uint32(stack[0])
	if _, ok := m.sess.objs[h]; !ok {
		return 1, fmt.Errorf("handle %d is not open", h)
	}
	m.sess.del(h)
	return 0, nil
}

// getSyscallName writes the name of a syscall, "syscall_<hex>" for an
// unknown number (as strace and IG do).
func (m *IGModule) getSyscallName(_ context.Context, mod api.Module, stack []uint64) (uint64, error) {
	nr := uint16(stack[0])
	name, ok := syscalls.Host().Name(int(nr))
	if !ok {
		name = fmt.Sprintf("syscall_%x", nr)
	}
	return 0, igWrite(mod, stack[1], []byte(name))
}

func (m *IGModule) getSyscallID(_ context.Context, mod api.Module, stack []uint64) (uint64, error) {
	name, err := igString(mod, stack[0])
	if err != nil {
		return 0, err
	}
	nr, ok := syscalls.Host().Number(name)
	if !ok {
		return 0, fmt.Errorf("%q is not a syscall of %s", name, archName(syscalls.Host()))
	}
	return uint64(nr), nil
}

func (m *IGModule) getSyscallDeclaration(_ context.Context, mod api.Module, stack []uint64) (uint64, error) {
	name, err := igString(mod, stack[0])
	if err != nil {
		return 1, err
	}
	decl, err := syscallDeclaration(name)
	if err != nil {
		return 1, err
	}
	return 0, igWrite(mod, stack[1], decl)
}

func (m *IGModule) newPerfReader(_ context.Context, _ api.Module, stack []uint64) (uint64, error) {
	mp, err := igGet[*igMap](m.sess, uint32(stack[0]))
	if err != nil {
		return 0, err
	}
	opener, ok := mp.MapHandle.(PerfReaderMap)
	if !ok {
		return 0, fmt.Errorf("map %d is not a perf event array", stack[0])
	}
	r, err := opener.OpenPerfReader(int(uint32(stack[1])), uint32(stack[2]) != 0)
	if err != nil {
		return 0, err
	}
	h, err := m.handleOf(&igPerf{r})
	if err != nil {
		_ = r.Close()
	}
	return h, err
}

func (m *IGModule) perfReaderPause(_ context.Context, _ api.Module, stack []uint64) (uint64, error) {
	p, err := igGet[*igPerf](m.sess, uint32(stack[0]))
	if err != nil {
		return 1, err
	}
	return 0, p.r.Pause()
}

func (m *IGModule) perfReaderResume(_ context.Context, _ api.Module, stack []uint64) (uint64, error) {
	p, err := igGet[*igPerf](m.sess, uint32(stack[0]))
	if err != nil {
		return 1, err
	}
	return 0, p.r.Resume()
}

// perfReaderRead copies the next record into dst: 0, 1 on failure, 2 when
// no record is ready (IG's "deadline exceeded": a read never waits here,
// since the guest's call runs under a deadline).
func (m *IGModule) perfReaderRead(_ context.Context, mod api.Module, stack []uint64) (uint64, error) {
	p, err := igGet[*igPerf](m.sess, uint32(stack[0]))
	if err != nil {
		return 1, err
	}
	dst, err := igBytes(mod, stack[1])
	if err != nil {
		return 1, err
	}
	if _, err := p.r.Read(dst); err != nil {
		if errors.Is(err, ErrNotFound) {
			return 2, nil
		}
		return 1, err
	}
	return 0, nil
}

func (m *IGModule) perfReaderClose(_ context.Context, _ api.Module, stack []uint64) (uint64, error) {
	h := uint32(stack[0])
	p, err := igGet[*igPerf](m.sess, h)
	if err != nil {
		return 1, err
	}
	m.sess.del(h)
	return 0, p.r.Close()
}

func (m *IGModule) kallsymsSymbolExists(_ context.Context, mod api.Module, stack []uint64) (uint64, error) {
	name, err := igString(mod, stack[0])
	if err != nil {
		return 0, err
	}
	tab, err := kallsyms.Load()
	if err != nil {
		return 0, err
	}
	if _, ok := tab.Address(name); ok {
		return 1, nil
	}
	return 0, nil
}

func (m *IGModule) shouldDiscardMntnsID(_ context.Context, _ api.Module, stack []uint64) (uint64, error) {
	if m.cfg.Handle.DiscardMountNS(stack[0]) {
		return 1, nil
	}
	return 0, nil
}
