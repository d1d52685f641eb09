package sources

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/perf"
)

// Errors of RawMap operations that callers tell apart.
var (
	// ErrKeyNotExist: no such key (or no key after the given one).
	ErrKeyNotExist = ebpf.ErrKeyNotExist
	// ErrKeyExist: the key exists and the update asked for a new one.
	ErrKeyExist = ebpf.ErrKeyExist
	// ErrMapReadOnly: the map's values are kernel objects or records
	// (program arrays, map-in-maps, ring buffers, perf arrays): nothing
	// outside the kernel may write them.
	ErrMapReadOnly = errors.New("the map's values are kernel objects or records")
)

// RawMap is one of a loaded gadget's maps with keys and values as raw bytes
// in the kernel's layout, the view a gadget's Wasm module gets. Per-CPU
// values are laid out as the kernel copies them: every possible CPU's
// value, each padded to 8 bytes. Safe for concurrent use while the gadget
// is loaded.
type RawMap struct {
	name   string
	m      *ebpf.Map
	info   RawMapInfo
	perCPU int  // possible CPUs for a per-CPU map, else 0
	stride int  // bytes per CPU's value
	owned  bool // made by NewRawMap: Close closes it
}

// RawMapInfo describes a RawMap.
type RawMapInfo struct {
	Type       uint32 // the kernel's BPF_MAP_TYPE_* number
	KeySize    uint32
	ValueSize  uint32 // for per-CPU maps: every possible CPU's value, each padded to 8 bytes
	MaxEntries uint32
}

// RawMap returns the loaded map called name as raw bytes (see Map for the
// errors).
func (g *Gadget) RawMap(name string) (*RawMap, error) {
	m, err := g.Map(name)
	if err != nil {
		return nil, err
	}
	return newRawMap(name, m)
}

func newRawMap(name string, m *ebpf.Map) (*RawMap, error) {
	h := &RawMap{name: name, m: m, info: RawMapInfo{
		Type: uint32(m.Type()), KeySize: m.KeySize(), ValueSize: m.ValueSize(), MaxEntries: m.MaxEntries(),
	}}
	switch m.Type() {
	case ebpf.PerCPUHash, ebpf.PerCPUArray, ebpf.LRUCPUHash, ebpf.PerCPUCGroupStorage:
		cpus, err := ebpf.PossibleCPU()
		if err != nil {
			return nil, fmt.Errorf("map %q: %w", name, err)
		}
		h.perCPU, h.stride = cpus, (int(m.ValueSize())+7)&^7
		h.info.ValueSize = uint32(cpus * h.stride)
	}
	return h, nil
}

// Info describes the map.
func (h *RawMap) Info() RawMapInfo { return h.info }

func (h *RawMap) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s map %q (%s): %w", op, h.name, h.m.Type(), err)
}

// Lookup copies the value of key into value (ErrKeyNotExist).
func (h *RawMap) Lookup(key, value []byte) error {
	if h.perCPU == 0 {
		return h.wrap("look up in", h.m.Lookup(key, value))
	}
	vals := make([][]byte, h.perCPU)
	if err := h.m.Lookup(key, vals); err != nil {
		return h.wrap("look up in", err)
	}
	clear(value)
	for i, v := range vals {
		copy(value[i*h.stride:i*h.stride+int(h.m.ValueSize())], v)
	}
	return nil
}

// Update sets key to value; flags are the kernel's BPF_ANY (0),
// BPF_NOEXIST (1), BPF_EXIST (2) (ErrKeyExist, ErrKeyNotExist,
// ErrMapReadOnly).
func (h *RawMap) Update(key, value []byte, flags uint64) error {
	switch t := h.m.Type(); t {
	case ebpf.ProgramArray, ebpf.ArrayOfMaps, ebpf.HashOfMaps, ebpf.PerfEventArray, ebpf.RingBuf, ebpf.StructOpsMap:
		return fmt.Errorf("update map %q (%s): %w", h.name, t, ErrMapReadOnly)
	}
	if h.perCPU == 0 {
		return h.wrap("update", h.m.Update(key, value, ebpf.MapUpdateFlags(flags)))
	}
	vals := make([][]byte, h.perCPU)
	for i := range vals {
		vals[i] = value[i*h.stride : i*h.stride+int(h.m.ValueSize())]
	}
	return h.wrap("update", h.m.Update(key, vals, ebpf.MapUpdateFlags(flags)))
}

// Delete removes key (ErrKeyNotExist).
func (h *RawMap) Delete(key []byte) error {
	return h.wrap("delete from", h.m.Delete(key))
}

// NextKey writes the key after key into next; a nil key asks for the first
// (ErrKeyNotExist: no more keys).
func (h *RawMap) NextKey(key, next []byte) error {
	// cilium/ebpf asks for the first key when it gets a nil interface; a
	// nil []byte in one would be a key of length 0, which it refuses.
	var k any = key
	if key == nil {
		k = nil
	}
	return h.wrap("iterate", h.m.NextKey(k, next))
}

// NewRawMap creates an eBPF map of the given shape for a gadget's Wasm
// module (Inspektor Gadget's newMap): it belongs to the caller, who closes
// it with Close.
func NewRawMap(name string, typ, keySize, valueSize, maxEntries uint32) (*RawMap, error) {
	if err := CheckPrivileges(); err != nil {
		return nil, fmt.Errorf("create map %q: %w", name, err)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: name, Type: ebpf.MapType(typ), KeySize: keySize, ValueSize: valueSize, MaxEntries: maxEntries})
	if err != nil {
		return nil, fmt.Errorf("create map %q (type %d, key %d bytes, value %d bytes, %d entries): %w", name, typ, keySize, valueSize, maxEntries, err)
	}
	h, err := newRawMap(name, m)
	if err != nil {
		m.Close()
		return nil, err
	}
	h.owned = true
	return h, nil
}

// Close closes a map NewRawMap created; a gadget's own maps are closed by
// the gadget, and Close leaves them alone.
func (h *RawMap) Close() error {
	if !h.owned {
		return nil
	}
	return h.m.Close()
}

// ErrNoRecord is PerfReader.Read's answer when no record is ready.
var ErrNoRecord = errors.New("no record is ready")

// PerfReader reads a perf event array map of a gadget record by record,
// for the gadget's Wasm module (Inspektor Gadget's perf readers). It never
// waits for a record. Not safe for concurrent use.
type PerfReader struct {
	r   *perf.Reader
	rec perf.Record
}

// OpenPerfReader opens a reader of the perf event array with perCPUBuffer
// bytes per CPU; an overwritable one keeps the newest records and must be
// paused to be read.
func (h *RawMap) OpenPerfReader(perCPUBuffer int, overwritable bool) (*PerfReader, error) {
	if h.m.Type() != ebpf.PerfEventArray {
		return nil, fmt.Errorf("map %q is a %s, not a perf event array", h.name, h.m.Type())
	}
	r, err := perf.NewReaderWithOptions(h.m, perCPUBuffer, perf.ReaderOptions{Overwritable: overwritable})
	if err != nil {
		return nil, fmt.Errorf("open a perf reader of map %q: %w", h.name, err)
	}
	return &PerfReader{r: r}, nil
}

// Read copies the next record into dst and returns its length: ErrNoRecord
// when none is ready; a record longer than dst is consumed and is an error.
func (p *PerfReader) Read(dst []byte) (int, error) {
	for {
		p.r.SetDeadline(time.Now())
		if err := p.r.ReadInto(&p.rec); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return 0, ErrNoRecord
			}
			return 0, err
		}
		if p.rec.LostSamples > 0 && len(p.rec.RawSample) == 0 {
			continue // a count of lost samples, not a record
		}
		if len(p.rec.RawSample) > len(dst) {
			return 0, fmt.Errorf("a record of %d bytes does not fit a buffer of %d", len(p.rec.RawSample), len(dst))
		}
		return copy(dst, p.rec.RawSample), nil
	}
}

func (p *PerfReader) Pause() error  { return p.r.Pause() }
func (p *PerfReader) Resume() error { return p.r.Resume() }
func (p *PerfReader) Close() error  { return p.r.Close() }
