package wasmstages

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/sluice-dev/sluice/internal/kallsyms"
	"github.com/sluice-dev/sluice/pipeline"
)

// An Inspektor Gadget module is the Wasm module of a gadget built for IG:
// it imports IG's host module "ig" and exports gadgetAPIVersion and IG's
// lifecycle hooks (docs/stage-abi.md, "Inspektor Gadget modules"). Unlike a
// sluice gadget module it is not handed batches: it subscribes to the
// gadget's data sources, and the host calls its dataSourceCallback for
// every event (or every snapshot), in which it reads and writes the
// event's fields through handles, drops it, or emits packets of its own.
// It runs on a Stage underneath (runtime, cache, limits, error kinds,
// instance replacement) with the igFlavour's exports and host functions.

// IGAPIVersion is the version of Inspektor Gadget's wasm API this host
// implements (gadgetAPIVersion must return it).
const IGAPIVersion = 1

// igImportModule is the import module of Inspektor Gadget's host functions.
const igImportModule = "ig"

// IGHandle is the gadget an Inspektor Gadget module runs with, as it sees
// it through the "ig" host functions. The agent implements it over a
// *sources.Gadget. Its methods are called on the goroutine calling into
// the module, one at a time. Errors are classified like GadgetHandle's.
type IGHandle interface {
	// Outputs lists the gadget's data sources: its tracers, iterators and
	// map iterators, by the names IG gives them.
	Outputs() []IGOutput
	// Param returns the value of a parameter by key: one of the module's
	// own (gadget.yaml params.wasm), else one of the gadget's.
	Param(key string) (string, error)
	// Map returns the loaded gadget's map called name (ErrWrongPhase
	// before the gadget loads).
	Map(name string) (MapHandle, error)
	// NewMap creates an eBPF map for the module (newMap); the module
	// closes it.
	NewMap(spec IGMapSpec) (OwnedMap, error)
	// DiscardMountNS reports whether events of mount namespace id are to
	// be dropped by the source's container filter (false when it has
	// none).
	DiscardMountNS(id uint64) bool
}

// IGOutput is one data source of a gadget.
type IGOutput struct {
	Name   string
	Schema *pipeline.Schema // the schema of the output's events
	// Array says the output emits snapshots (iterators, map iterators):
	// IG's DataSourceTypeArray, each batch one array.
	Array bool
}

// IGMapSpec describes a map a module creates.
type IGMapSpec struct {
	Name                                 string
	Type, KeySize, ValueSize, MaxEntries uint32
}

// OwnedMap is a map the module created; closing it frees it.
type OwnedMap interface {
	MapHandle
	Close() error
}

// PerfReaderMap is implemented by the MapHandle of a perf event array a
// module may read itself (newPerfReader).
type PerfReaderMap interface {
	OpenPerfReader(perCPUBuffer int, overwritable bool) (PerfReader, error)
}

// PerfReader reads a perf event array's records. Read never blocks: with
// no record ready it fails with ErrNotFound.
type PerfReader interface {
	// Read copies the next record into dst and returns its length; a
	// record longer than dst is consumed and reported as ErrInvalid.
	Read(dst []byte) (int, error)
	Pause() error
	Resume() error
	Close() error
}

// IGConfig describes a gadget's Inspektor Gadget module.
type IGConfig struct {
	// Name is the module's name in metrics and logs ("exec.wasm").
	Name string
	// Source is the source whose events the module processes; Host and
	// Gadget fill the envelope of the events of data sources the module
	// creates.
	Source, Host, Gadget string
	// Module (a path) or ModuleBytes is the module; exactly one is set.
	Module      string
	ModuleBytes []byte
	// Handle is the gadget. Required.
	Handle IGHandle

	// Timeout bounds the callbacks of one batch together; 0 means
	// DefaultTimeout. Lifecycle hooks get InitTimeout.
	Timeout     time.Duration
	MemoryLimit uint64
	Grants      Grants
	Cache       *Cache
	CacheDir    string
	Logger      *slog.Logger
	Metrics     *pipeline.Registry
}

// IGModule is a gadget's running Inspektor Gadget module: one instance.
// Build it with NewIGModule before the gadget loads (gadgetInit and
// gadgetPreStart run then); call Start once the gadget is loaded and
// attached, Process with its events, Stop before it detaches, Flush for
// what the module emitted outside a batch, then Close. Every method is
// safe for concurrent use (calls into the guest are serialised).
type IGModule struct {
	cfg   IGConfig
	stage *Stage
	// logs carries the guest's log lines and the host's warnings about
	// its calls (rate-limited as a stage's are).
	logs *host

	started atomic.Bool

	// The rest is guarded by stage.mu: the host functions run during
	// calls into the guest, which hold it.
	dss      []*igDataSource // the gadget's outputs, the host's (containers), then the module's
	bySchema map[*pipeline.Schema]*igDataSource
	sess     *igSession
	config   map[string]string // setConfig
	pending  []pipeline.Event  // emitted outside a batch, for Flush
	owned    []OwnedMap        // maps newMap created, closed on Close
	// batch is the batch being processed, nil between batches.
	batch *igBatch
}

// igABI is the ABI of an Inspektor Gadget module.
var igABI = moduleABI{
	what: "an Inspektor Gadget module",
	api:  "Inspektor Gadget's wasm API 1",
	exports: []abiExport{
		{"gadgetAPIVersion", nil, []api.ValueType{i64}, true},
		{"gadgetInit", nil, []api.ValueType{i32}, false},
		{"gadgetPreStart", nil, []api.ValueType{i32}, false},
		{"gadgetStart", nil, []api.ValueType{i32}, false},
		{"gadgetStop", nil, []api.ValueType{i32}, false},
		{"gadgetPostStop", nil, []api.ValueType{i32}, false},
		{"dataSourceCallback", []api.ValueType{i64, i32, i32}, nil, false},
		{"_initialize", nil, nil, false},
	},
	// "sluice" for the call the interrupt rewriter adds (and log and
	// counter_add, which a module written for sluice may use).
	imports: map[string]map[string]funcType{igImportModule: igImports, "sluice": hostImports},
	alts: map[string][]funcType{
		"gadgetAPIVersion": {{nil, []api.ValueType{i32}}},
		"gadgetInit":       {{nil, nil}},
		"gadgetPreStart":   {{nil, nil}},
		"gadgetStart":      {{nil, nil}},
		"gadgetStop":       {{nil, nil}},
		"gadgetPostStop":   {{nil, nil}},
	},
}

// igHooks are the lifecycle exports, in the order they run.
var igHooks = []string{"gadgetInit", "gadgetPreStart", "gadgetStart", "gadgetStop", "gadgetPostStop"}

// igFlavour is the flavour of an IGModule's stage.
type igFlavour struct{ m *IGModule }

var _ flavour = igFlavour{}

func (f igFlavour) abi() moduleABI { return igABI }
func (f igFlavour) source() string { return f.m.cfg.Source }

func (f igFlavour) checkExports(ex exports) error { return nil }

func (f igFlavour) instantiateHost(ctx context.Context, r wazero.Runtime) error {
	return f.m.instantiateHost(ctx, r)
}

// NewIGModule compiles the module (or loads it from the cache), checks it,
// makes its instance and runs _initialize, gadgetAPIVersion, gadgetInit
// and gadgetPreStart. Call it before the gadget loads. A failing hook
// (ErrGadgetInit) or check (ErrABI) leaves nothing running.
func NewIGModule(ctx context.Context, cfg IGConfig) (*IGModule, error) {
	if cfg.Handle == nil || cfg.Source == "" {
		return nil, fmt.Errorf("load gadget %q module: a handle and a source are required", cfg.Gadget)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &IGModule{cfg: cfg, bySchema: map[*pipeline.Schema]*igDataSource{}, config: map[string]string{}}
	m.logs = newHost(cfg.Name, cfg.Logger.With("stage", cfg.Name), nil)
	for i, o := range cfg.Handle.Outputs() {
		ds := &igDataSource{name: o.Name, array: o.Array, output: i, schema: o.Schema, fields: map[string]*igField{}}
		m.dss = append(m.dss, ds)
		if o.Schema != nil {
			m.bySchema[o.Schema] = ds
		}
	}
	if m.dsByName(IGContainersDataSource) == nil {
		m.dss = append(m.dss, &igDataSource{name: IGContainersDataSource, output: igHostOutput, schema: containersSchema, fields: map[string]*igField{}})
	}
	scfg := Config{
		Name: cfg.Name, Module: cfg.Module, ModuleBytes: cfg.ModuleBytes,
		Timeout: cfg.Timeout, MemoryLimit: cfg.MemoryLimit, Workers: 1, Grants: cfg.Grants,
		Cache: cfg.Cache, CacheDir: cfg.CacheDir, Logger: cfg.Logger, Metrics: cfg.Metrics,
	}
	s, err := newStage(ctx, scfg, igFlavour{m}, fmt.Sprintf("gadget %q module", cfg.Gadget))
	if err != nil {
		m.closeOwned()
		return nil, err
	}
	m.stage = s
	return m, nil
}

// CheckIG does what NewIGModule does and releases it all again: what
// `sluice config validate` runs.
func CheckIG(ctx context.Context, cfg IGConfig) error {
	cfg.Metrics = nil
	m, err := NewIGModule(ctx, cfg)
	if err != nil {
		return err
	}
	return m.Close(ctx)
}

// Name returns the module's name (IGConfig.Name).
func (m *IGModule) Name() string { return m.cfg.Name }

// Digest returns the SHA-256 of the module, in hex.
func (m *IGModule) Digest() string { return m.stage.Digest() }

// Start calls gadgetStart, once the gadget is loaded and attached: its
// maps exist from now on. A replacement instance (after a failure) runs
// gadgetInit, gadgetPreStart and gadgetStart again.
func (m *IGModule) Start(ctx context.Context) error {
	m.started.Store(true)
	return m.lifecycle(ctx, "gadgetStart")
}

// Stop calls gadgetStop, before the gadget detaches: its maps are still
// there. Batches processed afterwards (the gadget's buffers draining)
// still reach the module's subscriptions.
func (m *IGModule) Stop(ctx context.Context) error { return m.lifecycle(ctx, "gadgetStop") }

// Flush appends the events the module emitted outside a batch (in a
// lifecycle hook) to out and forgets them.
func (m *IGModule) Flush(out []pipeline.Event) []pipeline.Event {
	s := m.stage
	s.mu.Lock()
	defer s.mu.Unlock()
	out = append(out, m.pending...)
	clear(m.pending)
	m.pending = m.pending[:0]
	return out
}

// Close calls gadgetPostStop on a working instance, releases the module
// and closes the maps it created.
func (m *IGModule) Close(ctx context.Context) error {
	var err error
	if m.hasInstance() {
		// Not on a replacement made for the purpose: a module whose
		// instance failed last gets no gadgetPostStop.
		if err = m.lifecycle(ctx, "gadgetPostStop"); errors.Is(err, ErrClosed) {
			err = nil
		}
	}
	if cerr := m.stage.Close(ctx); err == nil {
		err = cerr
	}
	m.stage.mu.Lock()
	m.closeOwned()
	m.stage.mu.Unlock()
	return err
}

// hasInstance reports whether the module has a working instance.
func (m *IGModule) hasInstance() bool {
	s := m.stage
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.closed && s.cur.slots[0] != nil
}

func (m *IGModule) closeOwned() {
	for _, om := range m.owned {
		_ = om.Close()
	}
	m.owned = nil
}

func (m *IGModule) lifecycle(ctx context.Context, name string) error {
	return runHook(ctx, m.stage, m.cfg.Gadget, name, m.callHook)
}

// callHook calls a lifecycle export; a non-zero result is the guest's
// failure (IG's hooks log why before they return).
func (m *IGModule) callHook(ctx context.Context, inst *instance, name string) error {
	fn := inst.mod.ExportedFunction(name)
	if err := inst.call(ctx, initTimeout, fn, name); err != nil {
		return err
	}
	if len(fn.Definition().ResultTypes()) == 1 {
		if rc := int32(inst.stack[0]); rc != 0 {
			return callError(KindGuest, "%s returned %d (see the module's log lines)", name, rc)
		}
	}
	return nil
}

// initialize prepares a new instance: _initialize, the API version, then
// the hooks of every phase the gadget has reached (gadgetInit and
// gadgetPreStart, and gadgetStart for a replacement of a started one). A
// replacement starts a new session: its handles and subscriptions are its
// own; the data sources and fields the module created stay.
func (f igFlavour) initialize(ctx context.Context, inst *instance, v *version, initialize api.Function) error {
	m := f.m
	if importsIG(v, "kallsymsSymbolExists") {
		// As for sluice gadget modules: read /proc/kallsyms once, outside
		// any call's deadline.
		_, _ = kallsyms.Load()
	}
	if len(inst.stack) < 3 {
		inst.stack = make([]uint64, 3) // dataSourceCallback has three parameters
	}
	m.sess = newIGSession()
	for _, ds := range m.dss {
		ds.subs, ds.unreferenced = nil, false
	}
	if initialize != nil {
		if err := inst.call(ctx, initTimeout, initialize, "_initialize"); err != nil {
			return err
		}
	}
	if err := inst.call(ctx, initTimeout, inst.mod.ExportedFunction("gadgetAPIVersion"), "gadgetAPIVersion"); err != nil {
		return err
	}
	if got := inst.stack[0] & 0xffffffff; got != IGAPIVersion {
		return &apiError{fmt.Sprintf("module does not implement Inspektor Gadget's wasm API %d: gadgetAPIVersion returned %d", IGAPIVersion, int64(got))}
	}
	hooks := igHooks[:2]
	if m.started.Load() {
		hooks = igHooks[:3]
	}
	for _, h := range hooks {
		if !v.exports.present[h] {
			continue
		}
		if err := m.callHook(ctx, inst, h); err != nil {
			if se, ok := errors.AsType[*pipeline.StageError](err); ok && se.Kind == KindGuest {
				return fmt.Errorf("%w: %w", ErrGadgetInit, se.Err)
			}
			return err
		}
	}
	return nil
}

// importsIG reports whether v's module imports the ig function name.
func importsIG(v *version, name string) bool {
	return slices.ContainsFunc(v.compiled.ImportedFunctions(), func(f api.FunctionDefinition) bool {
		mod, n, _ := f.Import()
		return mod == igImportModule && n == name
	})
}
