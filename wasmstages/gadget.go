package wasmstages

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/sluice-dev/sluice/internal/kallsyms"
	"github.com/sluice-dev/sluice/pipeline"
)

// A gadget module is the Wasm module a gadget carries (the Wasm layer of
// its image, or a file beside its ELF). It runs with the gadget's
// lifecycle and sees the gadget's events before any pipeline stage; see
// docs/stage-abi.md, "Gadget modules". It is a Stage underneath (the same
// runtime, cache, limits, error kinds, batch ABI and instance
// replacement), with its own exports and the sluice_gadget host functions.

// GadgetHandle is the gadget a module runs with, as the module sees it
// through the sluice_gadget host functions. The agent implements it over a
// *sources.Gadget. Its methods are called on the goroutine calling into
// the module, one at a time.
//
// Errors are classified for the guest by what they wrap: ErrNotFound,
// ErrInvalid, ErrWrongPhase or ErrExists; anything else is a failure of
// the system. The error text reaches the guest (last_error).
type GadgetHandle interface {
	// Params lists the gadget's parameter names.
	Params() []string
	// Param returns a parameter's value as text (the value it will load
	// with, or did).
	Param(name string) (string, error)
	// SetParam changes a parameter before the gadget loads (ErrWrongPhase
	// after; ErrInvalid for a value that does not fit its type).
	SetParam(name, value string) error
	// Map returns the loaded gadget's map called name (ErrWrongPhase
	// before the gadget loads).
	Map(name string) (MapHandle, error)
}

// MapHandle is one eBPF map of a gadget. Key and value slices are guest
// memory, valid only during the call: implementations must not keep them.
// The host checks their lengths against Info before calling.
type MapHandle interface {
	Info() MapInfo
	// Lookup copies the value of key into value (ErrNotFound: no such key).
	Lookup(key, value []byte) error
	// Update sets key to value; flags are the kernel's BPF_ANY (0),
	// BPF_NOEXIST (1), BPF_EXIST (2) (ErrExists, ErrNotFound).
	Update(key, value []byte, flags uint64) error
	// Delete removes key (ErrNotFound: no such key).
	Delete(key []byte) error
	// NextKey writes the key after key into next; key nil asks for the
	// first (ErrNotFound: no more keys).
	NextKey(key, next []byte) error
}

// MapInfo describes a map as the guest sees it.
type MapInfo struct {
	Type       uint32 // the kernel's BPF_MAP_TYPE_* number
	KeySize    uint32
	ValueSize  uint32 // for per-CPU maps: every possible CPU's value, each padded to 8 bytes
	MaxEntries uint32
}

// Error classes of a GadgetHandle, which the host turns into the guest's
// error codes.
var (
	ErrNotFound   = errors.New("not found")
	ErrInvalid    = errors.New("invalid argument")
	ErrWrongPhase = errors.New("not in this phase of the gadget's lifecycle")
	ErrExists     = errors.New("already exists")
	// ErrGadgetInit marks a failed gadget_init (or sluice_init) of a
	// gadget module; the error text carries the guest's message.
	ErrGadgetInit = errors.New("gadget module init failed")
)

// ClassifyError marks err as of class (ErrNotFound, ErrInvalid,
// ErrWrongPhase or ErrExists) for the guest, keeping its text: the guest
// reads that text with last_error.
func ClassifyError(class, err error) error { return &classified{class: class, err: err} }

type classified struct{ class, err error }

func (c *classified) Error() string        { return c.err.Error() }
func (c *classified) Unwrap() error        { return c.err }
func (c *classified) Is(target error) bool { return target == c.class }

// GadgetConfig describes a gadget's module.
type GadgetConfig struct {
	// Name is the module's name in metrics and logs ("exec.wasm" for the
	// module of source exec). Required.
	Name string
	// Source is the source whose events the module processes; events the
	// module makes from no input carry it. Required.
	Source string
	// Gadget is the gadget's name, for errors.
	Gadget string
	// Module (a path) or ModuleBytes is the module; exactly one is set.
	Module      string
	ModuleBytes []byte
	// Handle is the gadget. Required.
	Handle GadgetHandle

	// Timeout bounds each sluice_process call; 0 means DefaultTimeout.
	// Lifecycle calls (gadget_init, gadget_start, gadget_stop) get
	// InitTimeout.
	Timeout     time.Duration
	MemoryLimit uint64
	Grants      Grants
	Cache       *Cache
	CacheDir    string
	Logger      *slog.Logger
	Metrics     *pipeline.Registry
}

// GadgetModule is a gadget's running module: one instance, so that what
// gadget_init computes is what sluice_process sees. Build it with
// NewGadgetModule before the gadget loads; call Start once it is loaded and
// attached, Process with its events, Stop before it detaches, then Close.
// Every method is safe for concurrent use (calls into the guest are
// serialised).
type GadgetModule struct {
	cfg   GadgetConfig
	stage *Stage

	// paramsOpen is true while the first instance runs gadget_init: only
	// then does param_set change the gadget's parameters.
	paramsOpen atomic.Bool
	started    atomic.Bool

	mu      sync.Mutex
	lastErr string
	maps    []MapHandle // by handle - 1
	mapIdx  map[string]int32
}

// gadgetABI is the ABI of a gadget module: the stage ABI's exports, all
// optional but the version, and the lifecycle hooks.
var gadgetABI = moduleABI{
	what: "a gadget module",
	exports: []abiExport{
		{"sluice_abi_version", nil, []api.ValueType{i32}, true},
		{"sluice_alloc", []api.ValueType{i32}, []api.ValueType{i32}, false},
		{"sluice_init", []api.ValueType{i32, i32}, []api.ValueType{i32}, false},
		{"sluice_process", []api.ValueType{i32, i32}, []api.ValueType{i64}, false},
		{"sluice_tick", []api.ValueType{i64}, []api.ValueType{i64}, false}, // accepted, never called
		{"sluice_close", nil, nil, false},
		{"gadget_init", nil, []api.ValueType{i32}, false},
		{"gadget_start", nil, []api.ValueType{i32}, false},
		{"gadget_stop", nil, []api.ValueType{i32}, false},
		{"_initialize", nil, nil, false},
	},
	imports: map[string]map[string]funcType{"sluice": hostImports, gadgetImportModule: gadgetImports},
}

var _ flavour = (*GadgetModule)(nil)

func (m *GadgetModule) abi() moduleABI { return gadgetABI }
func (m *GadgetModule) source() string { return m.cfg.Source }

// checkExports adds what the export table cannot say.
func (m *GadgetModule) checkExports(ex exports) error {
	p := ex.present
	if (p["sluice_init"] || p["sluice_process"]) && !p["sluice_alloc"] {
		return fmt.Errorf("%w %d: missing export sluice_alloc (i32) -> (i32), which sluice_init and sluice_process need", ErrABI, ABIVersion)
	}
	if !p["gadget_init"] && !p["gadget_start"] && !p["gadget_stop"] && !p["sluice_process"] {
		return fmt.Errorf("%w %d: a gadget module exports at least one of gadget_init, gadget_start, gadget_stop and sluice_process; this one would do nothing", ErrABI, ABIVersion)
	}
	return nil
}

// NewGadgetModule compiles the module (or loads it from the cache), checks
// it, and makes its instance: _initialize, sluice_abi_version, sluice_init
// with the gadget's parameters, then gadget_init, which may change them
// through the handle. Call it before the gadget loads. A failing init
// (ErrGadgetInit, with the guest's message) or check (ErrABI) leaves
// nothing running.
func NewGadgetModule(ctx context.Context, cfg GadgetConfig) (*GadgetModule, error) {
	if cfg.Handle == nil || cfg.Source == "" {
		return nil, fmt.Errorf("load gadget %q module: a handle and a source are required", cfg.Gadget)
	}
	m := &GadgetModule{cfg: cfg, mapIdx: map[string]int32{}}
	scfg := Config{
		Name: cfg.Name, Module: cfg.Module, ModuleBytes: cfg.ModuleBytes,
		Timeout: cfg.Timeout, MemoryLimit: cfg.MemoryLimit, Workers: 1, Grants: cfg.Grants,
		Cache: cfg.Cache, CacheDir: cfg.CacheDir, Logger: cfg.Logger, Metrics: cfg.Metrics,
	}
	m.paramsOpen.Store(true)
	s, err := newStage(ctx, scfg, m, fmt.Sprintf("gadget %q module", cfg.Gadget))
	m.paramsOpen.Store(false)
	if err != nil {
		return nil, err
	}
	m.stage = s
	return m, nil
}

// CheckGadget does what NewGadgetModule does (gadget_init included, so it
// may change the handle's parameters) and releases it all again: what
// `sluice config validate` runs.
func CheckGadget(ctx context.Context, cfg GadgetConfig) error {
	cfg.Metrics = nil
	m, err := NewGadgetModule(ctx, cfg)
	if err != nil {
		return err
	}
	return m.Close(ctx)
}

// Name returns the module's name (GadgetConfig.Name).
func (m *GadgetModule) Name() string { return m.cfg.Name }

// Digest returns the SHA-256 of the module, in hex.
func (m *GadgetModule) Digest() string { return m.stage.Digest() }

// Processes reports whether the module exports sluice_process; without it,
// Process passes every batch on unchanged.
func (m *GadgetModule) Processes() bool {
	return m.stage.cur.exports.present["sluice_process"]
}

// Start calls gadget_start, once the gadget is loaded and attached. From
// now on param_set changes nothing, and a replacement instance (after a
// failure) runs gadget_init and gadget_start again. A failure is the
// guest's message (or a trap); the source should then not run.
func (m *GadgetModule) Start(ctx context.Context) error {
	m.started.Store(true)
	return m.lifecycle(ctx, "gadget_start")
}

// Stop calls gadget_stop, before the gadget detaches: its maps are still
// there. Batches processed afterwards (the gadget's buffers draining)
// still reach sluice_process.
func (m *GadgetModule) Stop(ctx context.Context) error {
	return m.lifecycle(ctx, "gadget_stop")
}

// Process runs a batch of the gadget's events through sluice_process, like
// Stage.Process: on a failure (a *pipeline.StageError of a known kind) the
// instance is replaced before the next batch, and the caller decides what
// becomes of the batch.
func (m *GadgetModule) Process(ctx context.Context, in, out []pipeline.Event) ([]pipeline.Event, error) {
	if !m.Processes() {
		return append(out, in...), nil
	}
	return m.stage.Process(ctx, in, out)
}

// Close calls sluice_close on a working instance and releases the module.
func (m *GadgetModule) Close(ctx context.Context) error { return m.stage.Close(ctx) }

func (m *GadgetModule) lifecycle(ctx context.Context, name string) error {
	return runHook(ctx, m.stage, m.cfg.Gadget, name, m.callHook)
}

// runHook calls the lifecycle export name of a gadget's module on its first
// instance, making one first when the last failed; a module without the hook
// succeeds at once. call is the module family's calling convention.
func runHook(ctx context.Context, s *Stage, gadget, name string, call func(context.Context, *instance, string) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	v := s.cur
	if !v.exports.present[name] {
		return nil
	}
	inst, err := s.slot(ctx, v, 0)
	if err != nil {
		return fmt.Errorf("gadget %q module: %s: %w", gadget, name, err)
	}
	err = call(ctx, inst, name)
	if inst.broken {
		s.discard(ctx, v, 0, err)
	}
	if err != nil {
		return fmt.Errorf("gadget %q module: %w", gadget, err)
	}
	return nil
}

// callHook calls a () -> i32 lifecycle export; non-zero is the guest's
// failure, with its set_error message.
func (m *GadgetModule) callHook(ctx context.Context, inst *instance, name string) error {
	if err := inst.call(ctx, initTimeout, inst.mod.ExportedFunction(name), name); err != nil {
		return err
	}
	if rc := int32(inst.stack[0]); rc != 0 {
		return callError(KindGuest, "%s returned %d: %s", name, rc, inst.guestMessage())
	}
	return nil
}

// initialize prepares a new instance: _initialize, the ABI version,
// sluice_init with the gadget's parameters (name -> text), gadget_init,
// and gadget_start when the gadget already runs (a replacement instance).
func (m *GadgetModule) initialize(ctx context.Context, inst *instance, v *version, initialize api.Function) error {
	if importsKernelSymbols(v) {
		// Reading /proc/kallsyms takes a few hundred milliseconds, once
		// per process: here, outside any call's deadline, rather than in
		// the first sluice_process that asks (which would time out). A
		// failure is reported by the host function that needs it.
		_, _ = kallsyms.Load()
	}
	var init api.Function
	var params []byte
	if v.exports.present["sluice_init"] {
		vals := map[string]string{}
		for _, name := range m.cfg.Handle.Params() {
			if val, err := m.cfg.Handle.Param(name); err == nil {
				vals[name] = val
			}
		}
		var err error
		if params, err = appendValue(nil, vals, 0); err != nil {
			return err
		}
		init = inst.mod.ExportedFunction("sluice_init")
	}
	if err := inst.initialize(ctx, initialize, inst.mod.ExportedFunction("sluice_abi_version"), init, params, ErrGadgetInit); err != nil {
		return err
	}
	if v.exports.present["gadget_init"] {
		if err := m.callHook(ctx, inst, "gadget_init"); err != nil {
			if se, ok := errors.AsType[*pipeline.StageError](err); ok && se.Kind == KindGuest {
				return fmt.Errorf("%w: %w", ErrGadgetInit, se.Err)
			}
			return err
		}
	}
	if m.started.Load() && v.exports.present["gadget_start"] {
		return m.callHook(ctx, inst, "gadget_start")
	}
	return nil
}

// importsKernelSymbols reports whether v's module imports ksym_name or
// ksym_addr.
func importsKernelSymbols(v *version) bool {
	for _, f := range v.compiled.ImportedFunctions() {
		if mod, name, _ := f.Import(); mod == gadgetImportModule && (name == "ksym_name" || name == "ksym_addr") {
			return true
		}
	}
	return false
}

// openMap returns the handle number of the gadget's map called name,
// asking the GadgetHandle the first time.
func (m *GadgetModule) openMap(name string) (int32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, ok := m.mapIdx[name]; ok {
		return h, nil
	}
	mh, err := m.cfg.Handle.Map(name)
	if err != nil {
		return 0, err
	}
	m.maps = append(m.maps, mh)
	h := int32(len(m.maps))
	m.mapIdx[name] = h
	return h, nil
}

func (m *GadgetModule) mapByHandle(h int32) (MapHandle, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h < 1 || int(h) > len(m.maps) {
		return nil, ClassifyError(ErrInvalid, fmt.Errorf("map handle %d was not returned by map_open", h))
	}
	return m.maps[h-1], nil
}

func (m *GadgetModule) setLastError(err error) {
	m.mu.Lock()
	m.lastErr = err.Error()
	m.mu.Unlock()
}
