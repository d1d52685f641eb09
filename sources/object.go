package sources

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Object is an eBPF ELF loaded into the kernel whose programs are attached
// one at a time, on request, and whose output maps are read on request:
// the model of a wasm-bpf application (package wasmbpf), whose own code
// decides what to attach and when to poll. Loading, attaching and the
// errors are a gadget's (ring buffers sized as a gadget's, optional
// programs dropped when the kernel refuses them, *ProgramError with the
// verifier's log, ErrKernelFeature), so an object and a gadget fail alike.
//
// Methods are safe for concurrent use; Close ends every other use.
type Object struct {
	g *Gadget

	mu      sync.Mutex
	readers []*Reader
	closed  bool
}

// ObjectConfig are the knobs of LoadObject.
type ObjectConfig struct {
	// BufferSize is the ring buffer size, or the perf buffer size per CPU,
	// of the object's outputs; 0 = the gadgets' defaults.
	BufferSize int
	Logger     *slog.Logger
}

// LoadObject loads spec into the kernel without attaching anything.
// Parameters keep the values the ELF holds (a wasm-bpf guest writes its
// `const volatile` settings into the ELF's .rodata before it hands the
// object over).
func LoadObject(spec *GadgetSpec, cfg ObjectConfig) (*Object, error) {
	if err := CheckPrivileges(); err != nil {
		return nil, err
	}
	if err := PrepareKernel(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Gadget{spec: spec, cfg: GadgetConfig{BufferSize: cfg.BufferSize}, log: log, stacks: &stackResolver{}}
	cs := spec.CollectionSpec()
	g.sizeBuffers(cs)
	if err := g.preparePins(cs); err != nil {
		return nil, fmt.Errorf("gadget %q: %w", spec.Name, err)
	}
	skipped, err := g.loadCollection(cs)
	if err != nil {
		g.removePins()
		return nil, err
	}
	g.skipped = skipped
	g.stacks.setMaps(g.coll)
	return &Object{g: g}, nil
}

// Spec returns the object's spec.
func (o *Object) Spec() *GadgetSpec { return o.g.spec }

// SkippedPrograms lists optional programs the kernel refused to load.
func (o *Object) SkippedPrograms() []string { return o.g.skipped }

// Attach attaches the program called name as a gadget's program attaches
// (by its section, libbpf's conventions). target is the attach point the
// section leaves open: the network interface of an xdp program, the cgroup
// directory of a cgroup or sockops program; other sections carry their
// own and ignore it. Errors are *ProgramError.
func (o *Object) Attach(name, target string) error {
	o.mu.Lock()
	closed := o.closed
	o.mu.Unlock()
	if closed {
		return fmt.Errorf("attach program %q: %w", name, ErrNotLoaded)
	}
	ps, ok := o.programSpec(name)
	if !ok {
		return fmt.Errorf("gadget %q has no program %q (it has %s)", o.g.spec.Name, name, o.programNames())
	}
	prog, ok := o.g.coll.Programs[name]
	if !ok {
		return &ProgramError{Gadget: o.g.spec.Name, Program: name, Section: ps.Section, Op: "attach",
			Err: errors.New("the program was not loaded: the kernel refused it (see the load warning)")}
	}
	if err := o.attach(ps, prog, target); err != nil {
		return &ProgramError{Gadget: o.g.spec.Name, Program: name, Section: ps.Section, Op: "attach", Err: err}
	}
	return nil
}

func (o *Object) attach(ps ProgramSpec, prog *ebpf.Program, target string) error {
	l, err := o.attachTarget(ps, prog, target)
	if l == nil && err == nil {
		// The section says where: as a gadget attaches it.
		return o.g.attach(ps, prog, nil)
	}
	if err != nil {
		return err
	}
	o.g.linksMu.Lock()
	o.g.links = append(o.g.links, l)
	o.g.linksMu.Unlock()
	return nil
}

// attachTarget attaches the programs whose section leaves the target open;
// nil, nil for the others.
func (o *Object) attachTarget(ps ProgramSpec, prog *ebpf.Program, target string) (link.Link, error) {
	kind, _, _ := strings.Cut(ps.Section, "/")
	switch {
	case kind == "xdp":
		if target == "" {
			return nil, errors.New("an xdp program attaches to a network interface: pass its name as the attach target")
		}
		iface, err := net.InterfaceByName(target)
		if err != nil {
			return nil, fmt.Errorf("find interface %q: %w", target, err)
		}
		return link.AttachXDP(link.XDPOptions{Program: prog, Interface: iface.Index})
	case kind == "sockops" || strings.HasPrefix(kind, "cgroup"):
		if target == "" {
			return nil, fmt.Errorf("a %s program attaches to a cgroup: pass its directory (/sys/fs/cgroup/...) as the attach target", kind)
		}
		if st, err := os.Stat(target); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("cgroup %q: not a directory (%v)", target, err)
		}
		spec := o.g.spec.collection.Programs[ps.Name]
		return link.AttachCgroup(link.CgroupOptions{Path: target, Attach: spec.AttachType, Program: prog})
	}
	return nil, nil
}

func (o *Object) programSpec(name string) (ProgramSpec, bool) {
	for _, ps := range o.g.spec.Programs {
		if ps.Name == name {
			return ps, true
		}
	}
	return ProgramSpec{}, false
}

func (o *Object) programNames() string {
	names := make([]string, 0, len(o.g.spec.Programs))
	for _, ps := range o.g.spec.Programs {
		names = append(names, ps.Name)
	}
	return strings.Join(names, ", ")
}

// Attached returns how many attachments are in place.
func (o *Object) Attached() int {
	o.g.linksMu.Lock()
	defer o.g.linksMu.Unlock()
	return len(o.g.links) + len(o.g.attached)
}

// Map returns the loaded map called name; it belongs to the object.
func (o *Object) Map(name string) (*ebpf.Map, error) { return o.g.Map(name) }

// RawMap returns the loaded map called name as raw bytes (see RawMap).
func (o *Object) RawMap(name string) (*RawMap, error) { return o.g.RawMap(name) }

// MapNames lists the object's maps.
func (o *Object) MapNames() []string {
	names := make([]string, 0, len(o.g.coll.Maps))
	for n := range o.g.coll.Maps {
		names = append(names, n)
	}
	return names
}

// Reader reads the records of one ring buffer or perf event array. It is
// owned by one goroutine at a time; Close may be called from any.
type Reader struct {
	r recordReader
}

// OpenReader opens a reader on the output map called name (a ring buffer
// or a perf event array). The object closes it with itself.
func (o *Object) OpenReader(name string) (*Reader, error) {
	m, err := o.g.Map(name)
	if err != nil {
		return nil, err
	}
	r, err := openReader(m, StreamSpec{Map: name, MapType: m.Type()}, o.g.perfBufferSize())
	if err != nil {
		return nil, fmt.Errorf("gadget %q: open reader for map %q: %w", o.g.spec.Name, name, err)
	}
	rd := &Reader{r: r}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		r.Close()
		return nil, fmt.Errorf("open reader for map %q: %w", name, ErrNotLoaded)
	}
	o.readers = append(o.readers, rd)
	return rd, nil
}

// SetDeadline bounds how long Read waits; a deadline in the past makes it
// return what the buffer holds, then os.ErrDeadlineExceeded.
func (r *Reader) SetDeadline(t time.Time) { r.r.SetDeadline(t) }

// Read returns the next record, or a count of records the kernel lost
// (perf buffers), or os.ErrDeadlineExceeded, or os.ErrClosed. The record is
// valid until the next Read.
func (r *Reader) Read() (record []byte, lost uint64, err error) { return r.r.Read() }

// Close closes the reader; a Read waiting in another goroutine returns
// os.ErrClosed.
func (r *Reader) Close() error {
	if err := r.r.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return err
	}
	return nil
}

// Detach closes every attachment: the programs stop producing. Readers
// stay open, so what the buffers hold can still be read.
func (o *Object) Detach() { o.g.detach() }

// Close detaches the programs, closes the readers and frees the object's
// maps and programs. It is safe to call more than once.
func (o *Object) Close() error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	readers := o.readers
	o.readers = nil
	o.mu.Unlock()
	var errs []error
	for _, r := range readers {
		if err := r.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, o.g.Close())
	return errors.Join(errs...)
}

// ParseObject reads an eBPF ELF into a spec as ParseGadget does, but
// leniently, for objects whose own code reads them (a wasm-bpf
// application's): an object without outputs parses, and an output whose
// event type cannot be found (no marker, no typed map, no hint, nothing
// the instructions tell) is left out of Streams with the reason in
// undecodable, keyed by map name, instead of failing the parse. Event
// types are found by ParseGadget's rules, so whatever it learns to find
// them by, ParseObject finds them by too.
func ParseObject(name string, elf []byte, opts ParseOptions) (spec *GadgetSpec, undecodable map[string]error, err error) {
	spec, err = ParseGadget(name, elf, opts)
	if err == nil {
		return spec, nil, nil
	}
	cs, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(elf))
	if err != nil {
		return nil, nil, fmt.Errorf("parse object %q: %w", name, err)
	}
	if cs.Types == nil {
		return nil, nil, fmt.Errorf("parse object %q: the ELF has no BTF; compile with clang -g", name)
	}
	spec = &GadgetSpec{Name: name, collection: cs, Metadata: opts.Metadata}
	mk, err := readMarkers(cs)
	if err != nil {
		return nil, nil, fmt.Errorf("parse object %q: %w", name, err)
	}
	if spec.Programs, err = programSpecs(cs, mk); err != nil {
		return nil, nil, fmt.Errorf("parse object %q: %w", name, err)
	}
	if spec.Params, err = paramSpecs(cs, mk); err != nil {
		return nil, nil, fmt.Errorf("parse object %q: %w", name, err)
	}
	var outputs []string
	for n, ms := range cs.Maps {
		if ms.Type == ebpf.RingBuf || ms.Type == ebpf.PerfEventArray {
			outputs = append(outputs, n)
		}
	}
	slices.Sort(outputs)
	undecodable = map[string]error{}
	for _, m := range outputs {
		one, err := ParseGadget(name, elf, ParseOptions{EventType: opts.EventType, Map: m})
		if err != nil {
			undecodable[m] = err
			continue
		}
		spec.Streams = append(spec.Streams, one.Streams...)
	}
	return spec, undecodable, nil
}
