package sources

import (
	"fmt"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// SnapshotSpec is an iterator (GADGET_ITER, formerly GADGET_SNAPSHOTTER):
// iter/ programs that each write elements of one struct with
// bpf_seq_write(). One run of all its programs is one snapshot.
type SnapshotSpec struct {
	Name      string
	EventType *btf.Struct
	Programs  []string // the iter/ programs, sorted
	Marker    string   // the marker that declared it, for errors
}

// MapIterSpec is a map iterator (GADGET_MAPITER): a hash map drained every
// interval, each entry one event with the key's fields then the value's.
type MapIterSpec struct {
	Name    string
	Map     string
	MapType ebpf.MapType
	Key     btf.Type
	Value   btf.Type
	Marker  string
	// EventType is a struct laying the key and the value side by side
	// (value at offset KeySize), which is how entries are decoded.
	EventType *btf.Struct
	KeySize   int
	ValueSize int
}

func snapshotSpecs(cs *ebpf.CollectionSpec, mk *markers, progs []ProgramSpec) ([]SnapshotSpec, error) {
	kinds := map[string]ProgramSpec{}
	for _, p := range progs {
		kinds[p.Name] = p
	}
	var out []SnapshotSpec
	for _, it := range mk.iters {
		if it.typeName == "" {
			return nil, fmt.Errorf("iterator %q: programs are marked as its members (ig:iter:%s) but no GADGET_ITER(%s, struct) gives its element type", it.name, it.name, it.name)
		}
		st, err := structByName(cs.Types, it.typeName)
		if err != nil {
			return nil, fmt.Errorf("iterator %q (marker %s): %w", it.name, it.marker, err)
		}
		if st.Size == 0 {
			return nil, fmt.Errorf("iterator %q (marker %s): struct %s is empty", it.name, it.marker, it.typeName)
		}
		if len(it.programs) == 0 {
			return nil, fmt.Errorf("iterator %q (marker %s) has no programs: mark each iter/ program with GADGET_ITER_MEMBER(%s) or list it in GADGET_ITER", it.name, it.marker, it.name)
		}
		for _, prog := range it.programs {
			ps, ok := kinds[prog]
			if !ok {
				return nil, fmt.Errorf("iterator %q (marker %s) names program %s, which the ELF does not have", it.name, it.marker, prog)
			}
			if ps.Attach != AttachIter {
				return nil, fmt.Errorf("iterator %q (marker %s): program %s is in section %q; an iterator's programs are iter/<kind> programs", it.name, it.marker, prog, ps.Section)
			}
			if ps.Target == "bpf_map_elem" && ps.IterMap == "" {
				return nil, fmt.Errorf("iterator %q: program %s walks a map (iter/bpf_map_elem) but no GADGET_ITER_TARGET_MAP(%s, map) says which", it.name, prog, prog)
			}
		}
		out = append(out, SnapshotSpec{Name: it.name, EventType: st, Programs: it.programs, Marker: it.marker})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func mapIterSpecs(cs *ebpf.CollectionSpec, mk *markers) ([]MapIterSpec, error) {
	var out []MapIterSpec
	for _, mi := range mk.mapIters {
		ms, ok := cs.Maps[mi.mapName]
		if !ok {
			return nil, fmt.Errorf("map iterator %q (marker %s): no map called %q", mi.name, mi.marker, mi.mapName)
		}
		switch ms.Type {
		case ebpf.Hash, ebpf.LRUHash:
		default:
			return nil, fmt.Errorf("map iterator %q (marker %s): map %q is a %s; sluice drains hash and LRU hash maps (per-CPU maps would need their values summed per field)", mi.name, mi.marker, mi.mapName, ms.Type)
		}
		if ms.Key == nil || ms.Value == nil {
			return nil, fmt.Errorf("map iterator %q (marker %s): map %q has no BTF key and value types; declare it with __type(key, ...) and __type(value, ...)", mi.name, mi.marker, mi.mapName)
		}
		ks, kerr := btf.Sizeof(ms.Key)
		vs, verr := btf.Sizeof(ms.Value)
		if kerr != nil || verr != nil || ks != int(ms.KeySize) || vs != int(ms.ValueSize) {
			return nil, fmt.Errorf("map iterator %q (marker %s): the BTF key and value types of map %q do not match its key_size %d and value_size %d", mi.name, mi.marker, mi.mapName, ms.KeySize, ms.ValueSize)
		}
		out = append(out, MapIterSpec{
			Name: mi.name, Map: mi.mapName, MapType: ms.Type, Key: ms.Key, Value: ms.Value, Marker: mi.marker,
			EventType: entryStruct(mi.mapName, ms.Key, ms.Value, ks, vs), KeySize: ks, ValueSize: vs,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// entryStruct lays a map's key and value side by side so one decode plan
// renders an entry. Struct keys and values join the event anonymously (their
// members become top-level fields, as IG shows them); scalars are called key
// and value.
func entryStruct(mapName string, key, value btf.Type, keySize, valueSize int) *btf.Struct {
	member := func(name string, t btf.Type, off int) btf.Member {
		if _, ok := btf.UnderlyingType(t).(*btf.Struct); ok {
			name = ""
		}
		return btf.Member{Name: name, Type: t, Offset: btf.Bits(off * 8)}
	}
	return &btf.Struct{
		Name:    mapName,
		Size:    uint32(keySize + valueSize),
		Members: []btf.Member{member("key", key, 0), member("value", value, keySize)},
	}
}

// checkMapSizes finds maps declared with no entries: each must be sized by a
// parameter <map>_max_entries (Inspektor Gadget's contract, used by IG's
// ig_build_id), else the kernel refuses it with an unhelpful error. It also
// marks the parameters that size a map.
func checkMapSizes(cs *ebpf.CollectionSpec, params []ParamSpec) error {
	sized := map[string]bool{}
	for i := range params {
		p := &params[i]
		name, ok := strings.CutSuffix(p.Name, maxEntriesSuffix)
		if !ok {
			continue
		}
		if _, isMap := cs.Maps[name]; !isMap {
			continue
		}
		if p.Kind != ParamInt && p.Kind != ParamUint {
			return fmt.Errorf("parameter %s sizes map %s but is a %s; make it an integer", p.Name, name, p.Kind)
		}
		p.SizesMap = name
		sized[name] = true
	}
	var names []string
	for name := range cs.Maps {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ms := cs.Maps[name]
		if ms.MaxEntries != 0 || sized[name] {
			continue
		}
		switch ms.Type {
		case ebpf.PerfEventArray, ebpf.RingBuf:
			continue // sized by the loader (CPUs) and by sluice (buffer_size)
		}
		return fmt.Errorf("map %s is declared with max_entries 0 and no parameter sizes it: add `const volatile __u32 %s%s = N; GADGET_PARAM(%s%s);`", name, name, maxEntriesSuffix, name, maxEntriesSuffix)
	}
	return nil
}
