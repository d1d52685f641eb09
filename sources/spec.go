package sources

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/sluice-dev/sluice/sources/decode"
	"github.com/sluice-dev/sluice/sources/eventtype"
)

// GadgetSpec is a parsed gadget: everything sluice knows about an eBPF ELF
// before loading it. It is a plain value; parsing needs no privileges.
type GadgetSpec struct {
	Name     string
	Programs []ProgramSpec
	Streams  []StreamSpec
	// Snapshots are the gadget's iterators (GADGET_ITER): each run of
	// their programs is one snapshot of elements.
	Snapshots []SnapshotSpec
	// MapIters are the hash maps the gadget asks to drain every interval
	// (GADGET_MAPITER): toppers, histograms, stack-keyed profiles.
	MapIters []MapIterSpec
	Params   []ParamSpec
	// Metadata is the gadget's gadget.yaml, when it came with one.
	Metadata *Metadata
	// fields are the source's rendering hints, applied by NewGadget.
	fields map[string]decode.FieldHint
	// Unread lists ring buffers and perf event arrays no tracer names: a
	// gadget with markers may keep such a buffer for its Wasm module, so
	// they are not an error, but Open warns that their records are not
	// read.
	Unread []string

	collection *ebpf.CollectionSpec
}

// ProgramSpec says how one program of a gadget attaches.
type ProgramSpec struct {
	Name     string // the ELF symbol
	Section  string // the ELF section, which names the attach point
	Attach   AttachKind
	Target   string // tracepoint "group/name", function, "path:symbol", iterator kind, tc direction
	Optional bool   // marked with GADGET_OPTIONAL: attach failures are warnings
	// IterMap is the map an iter/bpf_map_elem program walks
	// (GADGET_ITER_TARGET_MAP).
	IterMap string
}

// StreamSpec is one output of a gadget: a ring buffer or perf event array
// and the BTF struct its records hold.
type StreamSpec struct {
	Name      string // tracer name (the map name when no marker names it)
	Map       string
	MapType   ebpf.MapType
	EventType *btf.Struct
	LostMap   string // the <map>_lost_samples counter map, "" when absent
	// FoundBy says how the event type was chosen: "marker", "hint",
	// "map value" or "record size" (see eventtype.Find).
	FoundBy eventtype.How
	// TypeFrom says where the event type came from: "the object's BTF",
	// "the object's DWARF", or "event_type_file X (BTF|DWARF)".
	TypeFrom string
}

// TypeChoice describes how the stream's event type was chosen, for logs
// and `sluice config validate`.
func (s StreamSpec) TypeChoice() string {
	return fmt.Sprintf("struct %s (%d bytes) by %s, from %s", s.EventType.Name, s.EventType.Size, s.FoundBy, s.TypeFrom)
}

// ParseOptions carries config hints for gadgets that lack markers.
type ParseOptions struct {
	// EventType names the struct the output records hold, looked up in
	// the object's BTF, then its DWARF, then EventTypeFile.
	EventType string
	// EventTypeFile is an ELF object (with BTF or DWARF) or raw BTF that
	// holds the event type when the gadget's object lacks it;
	// EventTypeFileName names it in messages.
	EventTypeFile     []byte
	EventTypeFileName string
	// Map restricts the gadget to one output map.
	Map string
	// Programs, when set, are the only programs loaded and attached;
	// SkipPrograms are left out (libbpf's autoload, off).
	Programs     []string
	SkipPrograms []string
	// Fields are rendering hints for members of the event types (string
	// lists with a count, IP addresses, tagged unions), by member name.
	Fields map[string]decode.FieldHint
	// Metadata is the gadget's gadget.yaml (parameter keys, defaults,
	// descriptions, field annotations); nil when it has none.
	Metadata *Metadata
	// KernelTypes is the running kernel's BTF, whose structs are never
	// guessed as event types; nil reads the host's.
	KernelTypes *btf.Spec
}

// ParseGadget reads an eBPF ELF into a GadgetSpec. name is used in errors
// and as the gadget name of its events.
func ParseGadget(name string, elf []byte, opts ParseOptions) (*GadgetSpec, error) {
	cs, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(elf))
	if err != nil {
		return nil, fmt.Errorf("parse gadget %q: %w", name, err)
	}
	if cs.Types == nil {
		return nil, fmt.Errorf("parse gadget %q: the ELF has no BTF; compile with clang -g", name)
	}
	g := &GadgetSpec{Name: name, collection: cs, Metadata: opts.Metadata, fields: opts.Fields}
	mk, err := readMarkers(cs)
	if err != nil {
		return nil, fmt.Errorf("parse gadget %q: %w", name, err)
	}
	if g.Programs, err = programSpecs(cs, mk); err != nil {
		return nil, fmt.Errorf("parse gadget %q: %w", name, err)
	}
	if g.Programs, err = selectPrograms(cs, g.Programs, opts.Programs, opts.SkipPrograms); err != nil {
		return nil, fmt.Errorf("parse gadget %q: %w", name, err)
	}
	if g.Params, err = paramSpecs(cs, mk); err != nil {
		return nil, fmt.Errorf("parse gadget %q: %w", name, err)
	}
	if err := g.applyMetadata(); err != nil {
		return nil, fmt.Errorf("parse gadget %q: %w", name, err)
	}
	if g.Snapshots, err = snapshotSpecs(cs, mk, g.Programs); err != nil {
		return nil, fmt.Errorf("parse gadget %q: %w", name, err)
	}
	if g.MapIters, err = mapIterSpecs(cs, mk); err != nil {
		return nil, fmt.Errorf("parse gadget %q: %w", name, err)
	}
	if err := checkUnreadableOutputs(cs); err != nil {
		return nil, fmt.Errorf("parse gadget %q: %w", name, err)
	}
	periodic := len(g.Snapshots) > 0 || len(g.MapIters) > 0
	if g.Streams, err = streamSpecs(cs, elf, mk, opts, periodic); err != nil {
		return nil, fmt.Errorf("parse gadget %q: %w", name, err)
	}
	g.Unread = unreadBuffers(cs, g.Streams)
	if err := checkMapSizes(cs, g.Params); err != nil {
		return nil, fmt.Errorf("parse gadget %q: %w", name, err)
	}
	return g, nil
}

// CollectionSpec returns a copy of the gadget's collection spec, for callers
// that load it.
func (g *GadgetSpec) CollectionSpec() *ebpf.CollectionSpec { return g.collection.Copy() }

// Param returns the parameter called name.
func (g *GadgetSpec) Param(name string) (*ParamSpec, bool) {
	for i := range g.Params {
		if g.Params[i].Name == name {
			return &g.Params[i], true
		}
	}
	return nil, false
}

func programSpecs(cs *ebpf.CollectionSpec, mk *markers) ([]ProgramSpec, error) {
	optional := map[string]bool{}
	for prog := range mk.optional {
		optional[prog] = true
	}
	var out []ProgramSpec
	for name, p := range cs.Programs {
		kind, target := classifySection(p.SectionName)
		ps := ProgramSpec{Name: name, Section: p.SectionName, Attach: kind, Target: target, Optional: optional[name], IterMap: mk.iterTargets[name]}
		if ps.IterMap != "" {
			if _, ok := cs.Maps[ps.IterMap]; !ok {
				return nil, fmt.Errorf("iterator target marker for program %s names map %q, which the ELF does not have", name, ps.IterMap)
			}
		}
		out = append(out, ps)
		delete(optional, name)
	}
	if len(out) == 0 {
		return nil, errors.New("the ELF holds no programs")
	}
	for prog := range optional {
		return nil, fmt.Errorf("GADGET_OPTIONAL(%s) names no program", prog)
	}
	for prog, m := range mk.iterTargets {
		if _, ok := cs.Programs[prog]; !ok {
			return nil, fmt.Errorf("iterator target marker (GADGET_ITER_TARGET_MAP(%s, %s)) names no program", prog, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func streamSpecs(cs *ebpf.CollectionSpec, elf []byte, mk *markers, opts ParseOptions, periodic bool) ([]StreamSpec, error) {
	var streams []StreamSpec
	tracers := append([]tracerMarker(nil), mk.tracers...)
	sort.Slice(tracers, func(i, j int) bool { return tracers[i].name < tracers[j].name })
	for _, t := range tracers {
		if opts.Map != "" && opts.Map != t.mapName {
			continue
		}
		ms, err := outputMap(cs, t.mapName)
		if err != nil {
			return nil, fmt.Errorf("tracer %q (marker %s): %w", t.name, t.marker, err)
		}
		st, err := structByName(cs.Types, t.typeName)
		if err != nil {
			return nil, fmt.Errorf("tracer %q (marker %s): %w", t.name, t.marker, err)
		}
		streams = append(streams, newStream(cs, t.name, ms, st, eventtype.ByMarker, "the object's BTF"))
	}
	if len(streams) > 0 {
		return streams, nil
	}
	if len(tracers) > 0 {
		return nil, &OptionError{Option: "map", Err: fmt.Errorf("no tracer writes to map %q", opts.Map)}
	}

	// No markers: a plain libbpf program. Every ring buffer and perf event
	// array is an output, unless the config names one.
	var maps []*ebpf.MapSpec
	for name, ms := range cs.Maps {
		if opts.Map != "" && name != opts.Map {
			continue
		}
		if ms.Type == ebpf.RingBuf || ms.Type == ebpf.PerfEventArray {
			maps = append(maps, ms)
		}
	}
	if len(maps) == 0 {
		if opts.Map != "" {
			return nil, &OptionError{Option: "map", Err: fmt.Errorf("no ring buffer or perf event array called %q", opts.Map)}
		}
		if periodic {
			return nil, nil // the gadget's output is its iterators
		}
		return nil, errors.New("the gadget has no output: no GADGET_TRACER, GADGET_ITER or GADGET_MAPITER marker and no ring buffer or perf event array map")
	}
	sort.Slice(maps, func(i, j int) bool { return maps[i].Name < maps[j].Name })
	q, err := newTypeQuery(cs, elf, opts)
	if err != nil {
		return nil, err
	}
	for _, ms := range maps {
		r, err := q.find(cs, ms, opts.EventType)
		if err != nil {
			if periodic && opts.Map == "" {
				// A buffer the iterators' gadget does not describe: say
				// so rather than run without it.
				return nil, fmt.Errorf("%w (the gadget's iterators are read; this map would be lost)", err)
			}
			return nil, err
		}
		streams = append(streams, newStream(cs, ms.Name, ms, r.Type, r.How, r.From))
	}
	return streams, nil
}

// unreadBuffers returns the ring buffers and perf event arrays that are no
// stream's map.
func unreadBuffers(cs *ebpf.CollectionSpec, streams []StreamSpec) []string {
	read := map[string]bool{}
	for _, st := range streams {
		read[st.Map] = true
	}
	var out []string
	for name, ms := range cs.Maps {
		if (ms.Type == ebpf.RingBuf || ms.Type == ebpf.PerfEventArray) && !read[name] {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// checkUnreadableOutputs refuses outputs sluice cannot read rather than run
// the gadget without them: maps of perf buffers or ring buffers (Inspektor
// Gadget's traceloop keeps a perf buffer per container in a hash of maps
// and reads it on demand, a flight recorder rather than a stream).
func checkUnreadableOutputs(cs *ebpf.CollectionSpec) error {
	names := make([]string, 0, len(cs.Maps))
	for name := range cs.Maps {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ms := cs.Maps[name]
		if ms.Type != ebpf.HashOfMaps && ms.Type != ebpf.ArrayOfMaps || ms.InnerMap == nil {
			continue
		}
		if t := ms.InnerMap.Type; t == ebpf.PerfEventArray || t == ebpf.RingBuf {
			return fmt.Errorf("map %s is a %s of %s maps (a traceloop-style output: buffers per container, read on demand); sluice reads outputs as streams and does not support it: write events to one ring buffer or perf event array named by GADGET_TRACER", name, ms.Type, t)
		}
	}
	return nil
}

func newStream(cs *ebpf.CollectionSpec, name string, ms *ebpf.MapSpec, st *btf.Struct, foundBy eventtype.How, from string) StreamSpec {
	s := StreamSpec{Name: name, Map: ms.Name, MapType: ms.Type, EventType: st, FoundBy: foundBy, TypeFrom: from}
	if _, ok := cs.Maps[ms.Name+lostSuffix]; ok {
		s.LostMap = ms.Name + lostSuffix
	}
	return s
}

func outputMap(cs *ebpf.CollectionSpec, name string) (*ebpf.MapSpec, error) {
	ms, ok := cs.Maps[name]
	if !ok {
		return nil, fmt.Errorf("no map called %q", name)
	}
	if ms.Type != ebpf.RingBuf && ms.Type != ebpf.PerfEventArray {
		return nil, fmt.Errorf("map %q is a %s; an output must be a ring buffer or a perf event array", name, ms.Type)
	}
	return ms, nil
}

func structByName(types *btf.Spec, name string) (*btf.Struct, error) {
	var st *btf.Struct
	if err := types.TypeByName(name, &st); err != nil {
		return nil, fmt.Errorf("find event type struct %s in BTF: %w", name, err)
	}
	return st, nil
}

// recordSizes returns the constant record sizes passed with mapName to
// bpf_ringbuf_reserve, bpf_ringbuf_output and bpf_perf_event_output.
func recordSizes(cs *ebpf.CollectionSpec, mapName string) map[uint32]bool {
	sizes := map[uint32]bool{}
	for _, p := range cs.Programs {
		insns := p.Instructions
		for i, ins := range insns {
			if !ins.IsBuiltinCall() {
				continue
			}
			var mapReg, sizeReg asm.Register
			switch asm.BuiltinFunc(ins.Constant) {
			case asm.FnRingbufReserve:
				mapReg, sizeReg = asm.R1, asm.R2
			case asm.FnRingbufOutput:
				mapReg, sizeReg = asm.R1, asm.R3
			case asm.FnPerfEventOutput:
				mapReg, sizeReg = asm.R2, asm.R5
			default:
				continue
			}
			if regMap(insns, i, mapReg) != mapName {
				continue
			}
			if size, ok := regConst(insns, i, sizeReg); ok {
				sizes[uint32(size)] = true
			}
		}
	}
	return sizes
}

// lookback bounds the backwards scan for a register's last assignment; the
// compiler sets up helper arguments right before the call.
const lookback = 16

func regMap(insns asm.Instructions, call int, reg asm.Register) string {
	for j := call - 1; j >= 0 && j >= call-lookback; j-- {
		if insns[j].Dst == reg && insns[j].OpCode.IsDWordLoad() {
			return insns[j].Reference()
		}
		if insns[j].Dst == reg {
			return ""
		}
	}
	return ""
}

func regConst(insns asm.Instructions, call int, reg asm.Register) (int64, bool) {
	for j := call - 1; j >= 0 && j >= call-lookback; j-- {
		ins := insns[j]
		if ins.Dst != reg {
			continue
		}
		if ins.OpCode.ALUOp() == asm.Mov && ins.OpCode.Source() == asm.ImmSource {
			return ins.Constant, true
		}
		return 0, false
	}
	return 0, false
}
