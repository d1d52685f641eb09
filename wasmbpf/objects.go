package wasmbpf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/tetratelabs/wazero/api"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/sources"
	"github.com/sluice-dev/sluice/sources/decode"
)

// guestObject is an eBPF object a guest loaded.
type guestObject struct {
	id   uint64
	obj  *sources.Object
	spec *sources.GadgetSpec
	// plans decode the records of each output map; a map whose event type
	// could not be found has none (its records go to the guest only) and
	// its reason in undecodable.
	plans       map[string]*decode.Plan
	undecodable map[string]error
	outputs     []string // the ring buffers and perf event arrays
	fds         []int32  // the map fds handed to the guest
	// perf are the readers of the perf event arrays, opened at load: a
	// perf event array drops what a program writes while no reader has
	// mapped it (bpf_perf_event_output fails, and nothing counts it),
	// and a guest attaches before its first poll. A poll takes its map's
	// reader from here.
	perf map[string]*sources.Reader
}

// guestMap is a map fd the guest holds.
type guestMap struct {
	obj    *guestObject
	name   string
	m      *ebpf.Map
	raw    *sources.RawMap
	output bool
}

// refuse counts a host call the host refused for what the guest passed,
// and returns -errno.
func (a *App) refuse(function, reason string, errno int32) int32 {
	a.m.refused(function, reason).Inc()
	return -errno
}

// hostLoad is u64 wasm_load_bpf_object(const void *obj_buf, int obj_buf_sz):
// the object is parsed as a gadget is (its outputs and their event types),
// loaded with CO-RE against the running kernel, and nothing is attached.
// 0 means it failed; the reason is in the log.
func (a *App) hostLoad(_ context.Context, mod api.Module, stack []uint64) {
	ptr, size := uint32(stack[0]), int32(stack[1])
	stack[0] = 0
	if a.stopping.Load() {
		return
	}
	if size <= 0 || size > MaxObjectSize {
		a.refuse("wasm_load_bpf_object", "size", errnoINVAL)
		a.log.Warn("wasm_load_bpf_object: refused an object size", "size", size, "max", MaxObjectSize)
		return
	}
	b, ok := guestBytes(mod, ptr, uint32(size))
	if !ok {
		a.refuse("wasm_load_bpf_object", "pointer", errnoFAULT)
		return
	}
	a.mu.Lock()
	n := len(a.objects)
	a.mu.Unlock()
	if n >= MaxObjects {
		a.refuse("wasm_load_bpf_object", "limit", errnoNOSPC)
		a.log.Warn("wasm_load_bpf_object: the guest holds the most objects a guest may hold", "max", MaxObjects)
		return
	}
	elf := bytes.Clone(b) // guest memory changes under us; the spec keeps what it parsed
	o, err := a.loadObject(elf)
	if err != nil {
		a.m.guestErrors(KindLoad).Inc()
		a.log.Error("the guest's eBPF object did not load", "error", err)
		return
	}
	a.mu.Lock()
	a.nextID++
	o.id = a.nextID
	a.objects[o.id] = o
	a.mu.Unlock()
	stack[0] = o.id
}

func (a *App) loadObject(elf []byte) (*guestObject, error) {
	spec, undecodable, err := sources.ParseObject(a.cfg.App, elf, sources.ParseOptions{EventType: a.cfg.EventType})
	if err != nil {
		return nil, err
	}
	obj, err := sources.LoadObject(spec, sources.ObjectConfig{BufferSize: a.cfg.BufferSize, Logger: a.log})
	if err != nil {
		return nil, err
	}
	o := &guestObject{obj: obj, spec: spec, plans: map[string]*decode.Plan{}, undecodable: undecodable}
	if o.undecodable == nil {
		o.undecodable = map[string]error{}
	}
	for _, st := range spec.Streams {
		plan, err := decode.Compile(st.EventType, decode.Options{Gadget: a.cfg.App, Source: a.cfg.Source, Host: a.cfg.Host})
		if err != nil {
			o.undecodable[st.Map] = err
			continue
		}
		o.plans[st.Map] = plan
	}
	for _, name := range obj.MapNames() {
		if m, err := obj.Map(name); err == nil && (m.Type() == ebpf.RingBuf || m.Type() == ebpf.PerfEventArray) {
			o.outputs = append(o.outputs, name)
		}
	}
	slices.Sort(o.outputs)
	for _, name := range o.outputs {
		if m, _ := obj.Map(name); m.Type() != ebpf.PerfEventArray {
			continue
		}
		r, err := obj.OpenReader(name)
		if err != nil {
			obj.Close()
			return nil, err
		}
		if o.perf == nil {
			o.perf = map[string]*sources.Reader{}
		}
		o.perf[name] = r
	}
	var decoded []string
	for _, st := range spec.Streams {
		if _, ok := o.plans[st.Map]; ok {
			decoded = append(decoded, fmt.Sprintf("%s: struct %s (%s)", st.Map, st.EventType.Name, st.FoundBy))
		}
	}
	a.log.Info("eBPF object loaded", "programs", programNames(spec), "outputs", decoded, "skipped_programs", obj.SkippedPrograms())
	for _, name := range slices.Sorted(maps.Keys(o.undecodable)) {
		if a.cfg.Emit.records() {
			a.log.Warn("the records of this output go to the guest but do not become events: their type is unknown", "map", name, "reason", o.undecodable[name])
		}
	}
	return o, nil
}

func programNames(spec *sources.GadgetSpec) []string {
	out := make([]string, len(spec.Programs))
	for i, p := range spec.Programs {
		out[i] = p.Name
	}
	return out
}

// object returns the guest's object with handle id.
func (a *App) object(id uint64) *guestObject {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.objects[id]
}

// hostClose is int wasm_close_bpf_object(u64 obj): it detaches the
// object's programs and frees it; what its outputs still hold is emitted.
func (a *App) hostClose(_ context.Context, _ api.Module, stack []uint64) {
	o := a.object(stack[0])
	if o == nil {
		stack[0] = uint64(uint32(a.refuse("wasm_close_bpf_object", "handle", errnoINVAL)))
		return
	}
	a.closeObject(o)
	stack[0] = 0
}

func (a *App) closeObject(o *guestObject) {
	o.obj.Detach()
	drained := map[string]bool{}
	for _, fd := range o.fds {
		if b := a.buffers[fd]; b != nil {
			a.drain(b)
			drained[b.gm.name] = true
			delete(a.buffers, fd)
		}
		delete(a.fds, fd)
	}
	// An output the guest never polled still holds what its programs
	// wrote: a ring buffer always, a perf event array since its reader
	// was opened at load.
	for _, name := range o.outputs {
		if drained[name] {
			continue
		}
		m, err := o.obj.Map(name)
		if err != nil || m.Type() != ebpf.RingBuf && o.perf[name] == nil {
			continue
		}
		if b, err := a.buffer(-1, &guestMap{obj: o, name: name, m: m, output: true}); err == nil {
			a.drain(b)
			delete(a.buffers, -1)
		}
	}
	a.mu.Lock()
	delete(a.objects, o.id)
	a.mu.Unlock()
	if err := o.obj.Close(); err != nil {
		a.log.Warn("close eBPF object", "error", err)
	}
}

// closeAll closes every object the guest left loaded. Run's goroutine,
// once the guest has returned (or Close, when Run never ran).
func (a *App) closeAll() {
	a.mu.Lock()
	objs := slices.Collect(maps.Values(a.objects))
	a.mu.Unlock()
	for _, o := range objs {
		a.closeObject(o)
	}
}

// hostAttach is int wasm_attach_bpf_program(u64 obj, const char *name,
// const char *attach_target). The target (NULL or "" for none) is an
// interface for xdp programs, a cgroup directory for cgroup and sockops
// programs, and ignored by the sections that name their own.
func (a *App) hostAttach(_ context.Context, mod api.Module, stack []uint64) {
	const fn = "wasm_attach_bpf_program"
	o, name, ok := a.objectAndName(fn, mod, stack)
	if !ok {
		return
	}
	var target string
	if p := uint32(stack[2]); p != 0 {
		if target, ok = guestString(mod, p, maxTargetLen); !ok {
			stack[0] = uint64(uint32(a.refuse(fn, "pointer", errnoFAULT)))
			return
		}
	}
	stack[0] = uint64(uint32(a.attach(o, name, target, fn)))
}

// hostAttachFD is int wasm_attach_bpf_program_fd(u64 obj, const char
// *name, int target_fd): the target is a directory the guest was granted
// (its WASI descriptor), such as a cgroup; a negative fd attaches by
// section alone.
func (a *App) hostAttachFD(_ context.Context, mod api.Module, stack []uint64) {
	const fn = "wasm_attach_bpf_program_fd"
	o, name, ok := a.objectAndName(fn, mod, stack)
	if !ok {
		return
	}
	var target string
	if fd := int32(stack[2]); fd >= 0 {
		// wazero numbers preopened directories from 3, in the order
		// they are mounted.
		i := int(fd) - 3
		if i < 0 || i >= len(a.cfg.Grants.Dirs) {
			stack[0] = uint64(uint32(a.refuse(fn, "fd", errnoBADF)))
			return
		}
		target = a.cfg.Grants.Dirs[i].Host
	}
	stack[0] = uint64(uint32(a.attach(o, name, target, fn)))
}

// objectAndName reads the (u64 obj, const char *name) arguments that open
// several host functions; on a bad handle or pointer it has already put the
// refusal in stack[0].
func (a *App) objectAndName(fn string, mod api.Module, stack []uint64) (*guestObject, string, bool) {
	o := a.object(stack[0])
	if o == nil {
		stack[0] = uint64(uint32(a.refuse(fn, "handle", errnoINVAL)))
		return nil, "", false
	}
	name, ok := guestString(mod, uint32(stack[1]), maxNameLen)
	if !ok {
		stack[0] = uint64(uint32(a.refuse(fn, "pointer", errnoFAULT)))
		return nil, "", false
	}
	return o, name, true
}

func (a *App) attach(o *guestObject, name, target, fn string) int32 {
	if a.stopping.Load() {
		return -errnoINTR
	}
	if target != "" && path.IsAbs(target) {
		host, ok := a.hostPath(target)
		if !ok {
			a.log.Warn(fn+": the attach target is a path outside every directory the guest was granted; grant it (grants { dir \"...\" { host = \"...\" } })",
				"program", name, "target", target)
			return a.refuse(fn, "target", errnoPERM)
		}
		target = host
	}
	if err := o.obj.Attach(name, target); err != nil {
		a.m.guestErrors(KindAttach).Inc()
		a.log.Error("the guest's program did not attach", "error", err)
		return -errnoOf(err)
	}
	if len(o.outputs) > 0 {
		a.outputsLive.Store(true)
	}
	a.log.Debug("program attached", "program", name, "target", target)
	return 0
}

// hostPath translates a path in the guest's file system to the host's,
// through the granted directories.
func (a *App) hostPath(guest string) (string, bool) {
	guest = path.Clean(guest)
	for _, d := range a.cfg.Grants.Dirs {
		rel, ok := strings.CutPrefix(guest, d.Guest)
		if ok && (rel == "" || rel[0] == '/' || d.Guest == "/") {
			p := d.Host + "/" + strings.TrimPrefix(rel, "/")
			if rel == "" {
				p = d.Host
			}
			return p, true
		}
	}
	return "", false
}

// hostMapFD is int wasm_bpf_map_fd_by_name(u64 obj, const char *name):
// the map's file descriptor, which the guest passes to the map operations
// and to the poll. Only descriptors of the guest's own maps are accepted
// there.
func (a *App) hostMapFD(_ context.Context, mod api.Module, stack []uint64) {
	const fn = "wasm_bpf_map_fd_by_name"
	o, name, ok := a.objectAndName(fn, mod, stack)
	if !ok {
		return
	}
	m, err := o.obj.Map(name)
	if err != nil {
		a.log.Debug(fn, "error", err)
		stack[0] = result(-errnoNOENT)
		return
	}
	fd := int32(m.FD())
	if _, known := a.fds[fd]; !known {
		raw, err := o.obj.RawMap(name)
		if err != nil {
			a.log.Warn(fn, "error", err)
			stack[0] = result(-errnoINVAL)
			return
		}
		a.fds[fd] = &guestMap{obj: o, name: name, m: m, raw: raw, output: slices.Contains(o.outputs, name)}
		o.fds = append(o.fds, fd)
	}
	stack[0] = uint64(uint32(fd))
}

// result is an i32 result in a stack slot.
func result(rc int32) uint64 { return uint64(uint32(rc)) }

// errnoOf finds the errno an error carries, EINVAL when it has none.
func errnoOf(err error) int32 {
	var errno syscall.Errno
	switch {
	case errors.Is(err, ebpf.ErrKeyNotExist):
		return errnoNOENT
	case errors.Is(err, ebpf.ErrKeyExist):
		return errnoEXIST
	case errors.Is(err, sources.ErrMapReadOnly):
		return errnoPERM
	case errors.Is(err, sources.ErrKernelFeature), errors.Is(err, sources.ErrUnsupportedAttach):
		return errnoNOTSUP
	case errors.Is(err, os.ErrNotExist):
		return errnoNOENT
	case errors.As(err, &errno) && errno != 0:
		return int32(errno)
	}
	return errnoINVAL
}

// guestBytes returns the guest's memory at ptr, n bytes, or false when it
// lies outside (a range that wraps around included).
func guestBytes(mod api.Module, ptr, n uint32) ([]byte, bool) {
	mem := mod.Memory()
	if uint64(ptr)+uint64(n) > uint64(mem.Size()) {
		return nil, false
	}
	return mem.Read(ptr, n)
}

// guestString reads the NUL-terminated string at ptr, of at most max
// bytes.
func guestString(mod api.Module, ptr uint32, max int) (string, bool) {
	mem := mod.Memory()
	size := mem.Size()
	if ptr >= size {
		return "", false
	}
	n := min(uint64(max)+1, uint64(size)-uint64(ptr))
	b, ok := mem.Read(ptr, uint32(n))
	if !ok {
		return "", false
	}
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", false
	}
	return string(b[:i]), true
}

// lineSchema is the schema of the events made from the guest's output.
func lineSchema(app string) *pipeline.Schema {
	return &pipeline.Schema{Gadget: app, Type: "line", Fields: []pipeline.Field{
		{Name: "time", Kind: pipeline.FieldString, Width: 30},
		{Name: "host", Kind: pipeline.FieldString, Width: 12},
		{Name: "source", Kind: pipeline.FieldString, Width: 10},
		{Name: "gadget", Kind: pipeline.FieldString, Width: 16},
		{Name: "seq", Kind: pipeline.FieldUint, Width: 8},
		{Name: "stream", Kind: pipeline.FieldString, Width: 6, Doc: "stdout or stderr"},
		{Name: "line", Kind: pipeline.FieldString, Width: 80, Doc: "one line the application printed"},
	}}
}
