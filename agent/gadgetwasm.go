package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/oci"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/sources"
	"github.com/sluice-dev/sluice/wasmstages"
)

// A gadget module is the Wasm module a gadget carries: its image's Wasm
// layer, or the file a source's `wasm` attribute names. The agent runs it
// with the gadget's lifecycle (docs/stage-abi.md, "Gadget modules"):
// gadget_init before the gadget loads, gadget_start once it is attached,
// sluice_process on every batch the gadget reads (before the pipeline's
// edge queue and stages), gadget_stop before it detaches.

// gadgetWasm is a source's gadget module, resolved but not compiled.
type gadgetWasm struct {
	bytes  []byte
	origin string // "image sha256:..." or the file's path, for logs
	// abi says whether the module is written against sluice's
	// gadget-module ABI or Inspektor Gadget's wasm API.
	abi wasmstages.GadgetABI
	// params are the values of the module's own parameters (gadget.yaml
	// params.wasm, by key: the config's, else the defaults), which an
	// Inspektor Gadget module reads with getParamValue.
	params map[string]string
	host   string // the agent's name, for the envelope of the module's own events
}

// fingerprint identifies the module and its parameters.
func (w *gadgetWasm) fingerprint() string {
	b := slices.Clip(w.bytes)
	for _, k := range slices.Sorted(maps.Keys(w.params)) {
		b = append(b, 0)
		b = append(b, k+"="+w.params[k]...)
	}
	return sha256Hex(b)
}

// resolveGadgetWasm finds the module of a source's gadget: the `wasm`
// attribute (a file, relative to the config), or image's Wasm layer. Both
// at once is an error; neither is no module.
func resolveGadgetWasm(src *config.Source, image *oci.GadgetImage, baseDir string) (*gadgetWasm, *hcl.Diagnostic) {
	if src.Wasm == "" {
		if image != nil && image.Wasm != nil {
			return &gadgetWasm{bytes: image.Wasm, origin: "image " + image.Digest.String()}, nil
		}
		return nil, nil
	}
	if image != nil && image.Wasm != nil {
		return nil, &hcl.Diagnostic{
			Severity: hcl.DiagError, Summary: "Gadget has a module already",
			Detail:  fmt.Sprintf("gadget image %q carries its own Wasm module (a gadget runs at most one); remove the wasm attribute, or build the image without its module", src.Gadget),
			Subject: rangePtr(src.WasmRange),
		}
	}
	path := src.Wasm
	if !filepath.IsAbs(path) && baseDir != "" {
		path = filepath.Join(baseDir, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown gadget module", Detail: fmt.Sprintf("read gadget module %q: %v", src.Wasm, err), Subject: rangePtr(src.WasmRange)}
	}
	return &gadgetWasm{bytes: b, origin: path}, nil
}

// detectABI tells which ABI the module is written against.
func (w *gadgetWasm) detectABI(src *config.Source) *hcl.Diagnostic {
	abi, err := wasmstages.DetectGadgetABI(w.bytes)
	if err != nil {
		subject := src.WasmRange
		if src.Wasm == "" {
			subject = src.GadgetRange
		}
		return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid gadget module", Detail: fmt.Sprintf("gadget module %s: %v", w.origin, err), Subject: rangePtr(subject)}
	}
	w.abi = abi
	return nil
}

// gadgetModuleName is the name a source's module has in metrics and logs:
// it is metered as a stage of that name. A dot cannot occur in a config
// name, so it never collides with a stage's.
func gadgetModuleName(source string) string { return source + ".wasm" }

// gadgetModule is a gadget's running module: a *wasmstages.GadgetModule
// (sluice's ABI) or a *wasmstages.IGModule (Inspektor Gadget's).
type gadgetModule interface {
	pipeline.Stage
	Digest() string
	// Start runs once the gadget is loaded and attached; Stop before it
	// detaches.
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// moduleFlusher is a module that emits events outside batches (an IG
// module's packets from its lifecycle hooks).
type moduleFlusher interface {
	Flush(out []pipeline.Event) []pipeline.Event
}

var (
	_ gadgetModule  = (*wasmstages.GadgetModule)(nil)
	_ gadgetModule  = (*wasmstages.IGModule)(nil)
	_ moduleFlusher = (*wasmstages.IGModule)(nil)
)

// gadgetSource runs a gadget with its module: the module sees the events
// first, and gadget_stop runs before the gadget detaches.
type gadgetSource struct {
	g    *sources.Gadget
	wasm *gadgetWasm
	mod  gadgetModule // set by init
	log  *slog.Logger // the agent's lines about the module
	// guestLog is the module's own logger (wasmstages adds stage=NAME,
	// and source=guest to the guest's lines, so it has no source key).
	guestLog *slog.Logger
	// meter counts the module as a stage named gadgetModuleName, the way
	// the pipeline counts its stages.
	meter   *pipeline.StageMeter
	warnLog pipeline.LogLimiter
	// containers is what an Inspektor Gadget module sees of containers;
	// nil outside a running agent.
	containers *igContainers

	closeOnce sync.Once
}

func newGadgetSource(g *sources.Gadget, w *gadgetWasm, reg *pipeline.Registry, log *slog.Logger) *gadgetSource {
	meter := reg.StageMeter(gadgetModuleName(g.Name()))
	meter.ErrorKinds(wasmstages.ErrorKinds()...)
	return &gadgetSource{
		g: g, wasm: w, log: log.With("source", g.Name(), "gadget", g.Spec().Name), guestLog: log.With("gadget", g.Spec().Name),
		meter: meter,
	}
}

// DropReasons are the gadget's (pipeline.DropReasonsReporter).
func (s *gadgetSource) DropReasons() []string { return s.g.DropReasons() }

// moduleConfig is the module's wasmstages config, without the parts of
// the running agent.
func moduleConfig(g *sources.Gadget, w *gadgetWasm) wasmstages.GadgetConfig {
	return wasmstages.GadgetConfig{
		Name: gadgetModuleName(g.Name()), Source: g.Name(), Gadget: g.Spec().Name,
		ModuleBytes: w.bytes, Handle: gadgetHandle{g},
	}
}

// igModuleConfig is an Inspektor Gadget module's wasmstages config,
// without the parts of the running agent.
func igModuleConfig(g *sources.Gadget, w *gadgetWasm, containers *igContainers) wasmstages.IGConfig {
	return wasmstages.IGConfig{
		Name: gadgetModuleName(g.Name()), Source: g.Name(), Host: w.host, Gadget: g.Spec().Name,
		ModuleBytes: w.bytes, Handle: igHandle{g: g, params: w.params, containers: containers},
	}
}

// newGadgetModule compiles the module of g and runs what precedes the
// load (gadget_init; gadgetInit and gadgetPreStart), by its ABI.
func newGadgetModule(ctx context.Context, g *sources.Gadget, w *gadgetWasm, containers *igContainers, cache *wasmstages.Cache, log *slog.Logger, reg *pipeline.Registry) (gadgetModule, error) {
	if w.abi == wasmstages.ABIInspektorGadget {
		cfg := igModuleConfig(g, w, containers)
		cfg.Cache, cfg.Logger, cfg.Metrics = cache, log, reg
		return wasmstages.NewIGModule(ctx, cfg)
	}
	cfg := moduleConfig(g, w)
	cfg.Cache, cfg.Logger, cfg.Metrics = cache, log, reg
	return wasmstages.NewGadgetModule(ctx, cfg)
}

// init compiles the module and runs its gadget_init, before the gadget
// loads: the parameters it sets are the ones the gadget loads with.
func (s *gadgetSource) init(ctx context.Context, cache *wasmstages.Cache, reg *pipeline.Registry) error {
	start := time.Now()
	mod, err := newGadgetModule(ctx, s.g, s.wasm, s.containers, cache, s.guestLog, reg)
	if err != nil {
		return err
	}
	s.mod = mod
	s.log.Info("gadget module initialised", "module", s.wasm.origin, "abi", s.wasm.abi.String(), "digest", mod.Digest()[:12], "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// run runs the gadget with the module in front of out. When ctx ends, the
// module's gadget_stop runs first, then the gadget detaches and drains
// (through sluice_process still).
func (s *gadgetSource) run(ctx context.Context, out pipeline.Emitter) error {
	gctx, detach := context.WithCancel(context.WithoutCancel(ctx))
	defer detach()
	stopped := make(chan struct{})
	stopAfter := context.AfterFunc(ctx, func() {
		defer close(stopped)
		if err := s.mod.Stop(context.WithoutCancel(ctx)); err != nil {
			s.log.Warn("gadget module stop failed", "error", err)
		}
		detach()
	})
	// What the module emitted when it started goes first.
	if err := s.flush(ctx, out); err != nil {
		return err
	}
	if im, ok := s.mod.(*wasmstages.IGModule); ok && s.containers != nil && im.WantsContainers() {
		fctx, stopFeed := context.WithCancel(gctx)
		fed := make(chan struct{})
		go func() {
			defer close(fed)
			s.feedContainers(fctx, im, out)
		}()
		defer func() { stopFeed(); <-fed }()
	}
	// The gadget's own failure (a reader that broke) ends the run too.
	err := s.g.Run(gctx, &moduleEmitter{s: s, out: out})
	if !stopAfter() {
		<-stopped // the stop hook ran (or runs): wait for it
	}
	// What the module emitted when it stopped goes last (the pipeline
	// still drains its sources' last batches).
	if ferr := s.flush(context.WithoutCancel(ctx), out); err == nil {
		err = ferr
	}
	return err
}

// flush emits what the module emitted outside a batch.
func (s *gadgetSource) flush(ctx context.Context, out pipeline.Emitter) error {
	f, ok := s.mod.(moduleFlusher)
	if !ok {
		return nil
	}
	evs := f.Flush(nil)
	if len(evs) == 0 {
		return nil
	}
	s.meter.M.Sent.Add(uint64(len(evs)))
	return out.Emit(ctx, evs)
}

func (s *gadgetSource) close(ctx context.Context) {
	s.closeOnce.Do(func() {
		if s.mod == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		if err := s.mod.Close(ctx); err != nil {
			s.log.Warn("close gadget module", "error", err)
		}
	})
}

// moduleEmitter is the emitter the gadget gets: each batch goes through
// sluice_process first. A failed call passes its batch on unchanged (the
// gadget's events are not lost to a broken module) and is counted; the
// instance is replaced before the next batch.
type moduleEmitter struct {
	s   *gadgetSource
	out pipeline.Emitter
}

var (
	_ pipeline.Emitter      = (*moduleEmitter)(nil)
	_ pipeline.LossReporter = (*moduleEmitter)(nil)
)

func (e *moduleEmitter) Emit(ctx context.Context, batch []pipeline.Event) error {
	s := e.s
	// A fresh slice: the queue keeps what it accepts, and the reader
	// reuses batch once Emit returns.
	out, err := s.meter.Process(ctx, s.mod, batch, make([]pipeline.Event, 0, len(batch)))
	if err == nil && len(out) > 0 && len(batch) > 0 && &out[0] == &batch[0] {
		// The module kept every event and handed batch back (a stage may).
		out = append(make([]pipeline.Event, 0, len(out)), out...)
	}
	if err != nil {
		if warn, suppressed := s.warnLog.Allow(time.Now()); warn {
			s.log.Warn("gadget module failed; passed the batch on", "kind", pipeline.StageErrorKind(err), "events", len(batch), "error", err, "suppressed", suppressed)
		}
		s.meter.M.Sent.Add(uint64(len(batch)))
		return e.out.Emit(ctx, batch)
	}
	if f, ok := s.mod.(moduleFlusher); ok {
		n := len(out)
		out = f.Flush(out) // packets emitted meanwhile, by a lifecycle hook
		s.meter.M.Sent.Add(uint64(len(out) - n))
	}
	if len(out) == 0 {
		return nil
	}
	return e.out.Emit(ctx, out)
}

// ReportLoss passes the gadget's kernel losses on.
func (e *moduleEmitter) ReportLoss(source, gadget, reason string, count uint64) {
	if lr, ok := e.out.(pipeline.LossReporter); ok {
		lr.ReportLoss(source, gadget, reason, count)
	}
}

// gadgetHandle adapts a *sources.Gadget to what a module sees of it.
type gadgetHandle struct{ g *sources.Gadget }

var _ wasmstages.GadgetHandle = gadgetHandle{}

func (h gadgetHandle) Params() []string {
	var names []string
	for _, p := range h.g.Spec().Params {
		names = append(names, p.Name)
	}
	return names
}

func (h gadgetHandle) Param(name string) (string, error) {
	v, err := h.g.Param(name)
	if err != nil {
		return "", wasmstages.ClassifyError(wasmstages.ErrNotFound, err)
	}
	return v, nil
}

func (h gadgetHandle) SetParam(name, value string) error {
	err := h.g.SetParam(name, value)
	var pe *sources.ParamError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sources.ErrLoaded):
		return wasmstages.ClassifyError(wasmstages.ErrWrongPhase, err)
	case errors.Is(err, sources.ErrUnknownParam):
		return wasmstages.ClassifyError(wasmstages.ErrNotFound, err)
	case errors.As(err, &pe):
		return wasmstages.ClassifyError(wasmstages.ErrInvalid, err)
	}
	return err
}

func (h gadgetHandle) Map(name string) (wasmstages.MapHandle, error) {
	m, err := h.g.RawMap(name)
	switch {
	case errors.Is(err, sources.ErrNotLoaded):
		return nil, wasmstages.ClassifyError(wasmstages.ErrWrongPhase, err)
	case err != nil:
		return nil, wasmstages.ClassifyError(wasmstages.ErrNotFound, err)
	}
	return mapHandle{m}, nil
}

// mapHandle is a gadget's map as a module sees it: sources.RawMap, with
// its errors classified for the guest.
type mapHandle struct{ m *sources.RawMap }

func (h mapHandle) Info() wasmstages.MapInfo { return wasmstages.MapInfo(h.m.Info()) }

func classifyMapError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sources.ErrKeyNotExist):
		return wasmstages.ClassifyError(wasmstages.ErrNotFound, err)
	case errors.Is(err, sources.ErrKeyExist):
		return wasmstages.ClassifyError(wasmstages.ErrExists, err)
	case errors.Is(err, sources.ErrMapReadOnly):
		return wasmstages.ClassifyError(wasmstages.ErrInvalid, err)
	}
	return err
}

func (h mapHandle) Lookup(key, value []byte) error { return classifyMapError(h.m.Lookup(key, value)) }
func (h mapHandle) Update(key, value []byte, flags uint64) error {
	return classifyMapError(h.m.Update(key, value, flags))
}
func (h mapHandle) Delete(key []byte) error        { return classifyMapError(h.m.Delete(key)) }
func (h mapHandle) NextKey(key, next []byte) error { return classifyMapError(h.m.NextKey(key, next)) }

// checkGadgetModules compiles the module of every gadget that has one,
// checks it against the ABI and runs its gadget_init against the gadget's
// configured parameters (on the gadget validation built: nothing loads);
// see Check.
func checkGadgetModules(ctx context.Context, resolved []*resolvedGadget, cache *wasmstages.Cache) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, r := range resolved {
		if r.wasm == nil {
			continue
		}
		var err error
		if r.wasm.abi == wasmstages.ABIInspektorGadget {
			cfg := igModuleConfig(r.gadget, r.wasm, nil)
			cfg.Cache = cache
			err = wasmstages.CheckIG(ctx, cfg)
		} else {
			cfg := moduleConfig(r.gadget, r.wasm)
			cfg.Cache = cache
			err = wasmstages.CheckGadget(ctx, cfg)
		}
		if err != nil {
			subject := r.source.WasmRange
			if r.source.Wasm == "" {
				subject = r.source.GadgetRange
			}
			summary := "Invalid gadget module"
			if errors.Is(err, wasmstages.ErrGadgetInit) {
				summary = "Gadget module init failed"
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: err.Error(), Subject: rangePtr(subject)})
		}
	}
	return diags
}

// igHandle adapts a *sources.Gadget to what an Inspektor Gadget module
// sees of it.
type igHandle struct {
	g          *sources.Gadget
	params     map[string]string // the module's own parameters, by key
	containers *igContainers     // nil when validating: no filter applies
}

var _ wasmstages.IGHandle = igHandle{}

// Outputs are the gadget's tracers, then its iterators and map iterators
// (IG's array data sources), as sources lists them.
func (h igHandle) Outputs() []wasmstages.IGOutput {
	names, schemas := h.g.OutputNames(), h.g.Schemas()
	streams := len(h.g.Spec().Streams)
	out := make([]wasmstages.IGOutput, len(names))
	for i := range names {
		out[i] = wasmstages.IGOutput{Name: names[i], Schema: schemas[i], Array: i >= streams}
	}
	return out
}

// Param is one of the module's parameters, else one of the gadget's (by
// gadget.yaml key or variable name).
func (h igHandle) Param(key string) (string, error) {
	if v, ok := h.params[key]; ok {
		return v, nil
	}
	v, err := h.g.Param(key)
	if err != nil {
		return "", wasmstages.ClassifyError(wasmstages.ErrNotFound, err)
	}
	return v, nil
}

func (h igHandle) Map(name string) (wasmstages.MapHandle, error) {
	return gadgetHandle{h.g}.Map(name)
}

func (h igHandle) NewMap(spec wasmstages.IGMapSpec) (wasmstages.OwnedMap, error) {
	m, err := sources.NewRawMap(spec.Name, spec.Type, spec.KeySize, spec.ValueSize, spec.MaxEntries)
	if err != nil {
		return nil, err
	}
	return ownedMapHandle{mapHandle{m}}, nil
}

// DiscardMountNS is the decision of the source's mount namespace filter
// (see igContainers.discard).
func (h igHandle) DiscardMountNS(ns uint64) bool { return h.containers.discard(ns) }

type ownedMapHandle struct{ mapHandle }

func (o ownedMapHandle) Close() error { return o.m.Close() }

// OpenPerfReader reads a perf event array of the gadget record by record.
func (h mapHandle) OpenPerfReader(perCPU int, overwritable bool) (wasmstages.PerfReader, error) {
	r, err := h.m.OpenPerfReader(perCPU, overwritable)
	if err != nil {
		return nil, wasmstages.ClassifyError(wasmstages.ErrInvalid, err)
	}
	return perfReader{r}, nil
}

type perfReader struct{ r *sources.PerfReader }

func (p perfReader) Read(dst []byte) (int, error) {
	n, err := p.r.Read(dst)
	if errors.Is(err, sources.ErrNoRecord) {
		return 0, wasmstages.ClassifyError(wasmstages.ErrNotFound, err)
	}
	return n, err
}

func (p perfReader) Pause() error  { return p.r.Pause() }
func (p perfReader) Resume() error { return p.r.Resume() }
func (p perfReader) Close() error  { return p.r.Close() }

// GadgetHelp is what `sluice run GADGET --help` lists of a source's
// gadget: the gadget, and its Wasm module's own parameters.
type GadgetHelp struct {
	Gadget *sources.Gadget
	// Module says where the gadget's Wasm module comes from and which ABI
	// it is written against; "" when the gadget has none.
	Module string
	// ModuleParams are the module's parameters (gadget.yaml params.wasm),
	// sorted by key; set like the gadget's (--param KEY=VALUE).
	ModuleParams []ModuleParam
}

// ModuleParam is a parameter of a gadget's Wasm module. Its value is text
// (what the module's getParamValue reads).
type ModuleParam struct {
	Key, Default, Description string
}

// GadgetHelpOf is GadgetsOf with each gadget's Wasm module: where it comes
// from and its parameters.
func GadgetHelpOf(f *config.File, images *Images) ([]GadgetHelp, hcl.Diagnostics) {
	resolved, diags := resolveGadgets(f, images, nil)
	out := make([]GadgetHelp, 0, len(resolved))
	for _, r := range resolved {
		h := GadgetHelp{Gadget: r.gadget}
		if r.wasm != nil {
			api := "sluice's gadget-module ABI"
			if r.wasm.abi == wasmstages.ABIInspektorGadget {
				api = "Inspektor Gadget's wasm API"
			}
			h.Module = fmt.Sprintf("%s, written against %s", r.wasm.origin, api)
			for key, doc := range moduleParamDocs(r.metadata) {
				h.ModuleParams = append(h.ModuleParams, ModuleParam{Key: key, Default: doc.DefaultValue, Description: doc.Description})
			}
			slices.SortFunc(h.ModuleParams, func(a, b ModuleParam) int { return strings.Compare(a.Key, b.Key) })
		}
		out = append(out, h)
	}
	return out, diags
}
