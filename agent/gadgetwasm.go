package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cilium/ebpf"
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

// gadgetModuleName is the name a source's module has in metrics and logs:
// it is metered as a stage of that name. A dot cannot occur in a config
// name, so it never collides with a stage's.
func gadgetModuleName(source string) string { return source + ".wasm" }

// gadgetSource is the pipeline source of a gadget with a module: it runs
// the gadget with its emitter wrapped, so that the module sees the events
// first, and calls gadget_stop before the gadget detaches.
type gadgetSource struct {
	g    *sources.Gadget
	wasm *gadgetWasm
	mod  *wasmstages.GadgetModule // set by init
	log  *slog.Logger             // the agent's lines about the module
	// guestLog is the module's own logger (wasmstages adds stage=NAME,
	// and source=guest to the guest's lines, so it has no source key).
	guestLog *slog.Logger

	// The module's counters, those of a stage named gadgetModuleName.
	m        *pipeline.ComponentMetrics
	filtered *pipeline.Counter
	batches  *pipeline.Counter
	duration *pipeline.Histogram
	reg      *pipeline.Registry

	mu      sync.Mutex // the streams' readers emit concurrently
	errs    map[string]*pipeline.Counter
	warnLog pipeline.LogLimiter

	closeOnce sync.Once
}

var _ pipeline.Source = (*gadgetSource)(nil)

func newGadgetSource(g *sources.Gadget, w *gadgetWasm, reg *pipeline.Registry, log *slog.Logger) *gadgetSource {
	name := gadgetModuleName(g.Name())
	m := reg.Component("stage", name)
	reg.StageErrorKinds(name, wasmstages.ErrorKinds()...)
	return &gadgetSource{
		g: g, wasm: w, log: log.With("source", g.Name(), "gadget", g.Spec().Name), guestLog: log.With("gadget", g.Spec().Name),
		m: m, filtered: m.Dropped(pipeline.ReasonFiltered), reg: reg,
		batches:  m.Counter(pipeline.MetricStageBatches, "Batches a stage was called with."),
		duration: m.Histogram(pipeline.MetricStageDuration, "Time a stage took per batch."),
		errs:     map[string]*pipeline.Counter{},
	}
}

func (s *gadgetSource) Name() string { return s.g.Name() }

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

// init compiles the module and runs its gadget_init, before the gadget
// loads: the parameters it sets are the ones the gadget loads with.
func (s *gadgetSource) init(ctx context.Context, cache *wasmstages.Cache, reg *pipeline.Registry) error {
	cfg := moduleConfig(s.g, s.wasm)
	cfg.Cache, cfg.Logger, cfg.Metrics = cache, s.guestLog, reg
	start := time.Now()
	mod, err := wasmstages.NewGadgetModule(ctx, cfg)
	if err != nil {
		return err
	}
	s.mod = mod
	s.log.Info("gadget module initialised", "module", s.wasm.origin, "digest", mod.Digest()[:12], "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// Run runs the gadget with the module in front of out. When ctx ends, the
// module's gadget_stop runs first, then the gadget detaches and drains
// (through sluice_process still), then the module is released.
func (s *gadgetSource) Run(ctx context.Context, out pipeline.Emitter) error {
	if s.mod == nil {
		return fmt.Errorf("source %q: gadget module used before the agent started it", s.g.Name())
	}
	defer s.close(ctx)
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
	err := s.g.Run(gctx, &moduleEmitter{s: s, out: out})
	if !stopAfter() {
		<-stopped // the stop hook ran (or runs): wait for it
	}
	return err
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

// countError counts a failed call by kind, as the pipeline counts a
// stage's, and logs it at most every 10 seconds.
func (s *gadgetSource) countError(err error, events int) {
	kind := pipeline.StageErrorKind(err)
	s.mu.Lock()
	c := s.errs[kind]
	if c == nil {
		c = s.reg.StageErrors(gadgetModuleName(s.g.Name()), kind)
		s.errs[kind] = c
	}
	s.mu.Unlock()
	c.Inc()
	s.m.Errors.Inc()
	if warn, suppressed := s.warnLog.Allow(time.Now()); warn {
		s.log.Warn("gadget module failed; passed the batch on", "kind", kind, "events", events, "error", err, "suppressed", suppressed)
	}
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
	n := uint64(len(batch))
	s.m.Received.Add(n)
	s.batches.Inc()
	start := time.Now()
	// A fresh slice: the queue keeps what it accepts.
	out, err := s.mod.Process(ctx, batch, make([]pipeline.Event, 0, len(batch)))
	s.duration.Observe(time.Since(start))
	if err != nil {
		s.countError(err, len(batch))
		s.m.Sent.Add(n)
		return e.out.Emit(ctx, batch)
	}
	m := uint64(len(out))
	switch {
	case m < n:
		s.filtered.Add(n - m)
	case m > n:
		s.m.Received.Add(m - n) // events the module adds enter there
	}
	s.m.Sent.Add(m)
	if m == 0 {
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
	case errors.As(err, &pe) && pe.Reason == "no such parameter":
		return wasmstages.ClassifyError(wasmstages.ErrNotFound, err)
	case errors.As(err, &pe):
		return wasmstages.ClassifyError(wasmstages.ErrInvalid, err)
	}
	return err
}

func (h gadgetHandle) Map(name string) (wasmstages.MapHandle, error) {
	m, err := h.g.Map(name)
	switch {
	case errors.Is(err, sources.ErrNotLoaded):
		return nil, wasmstages.ClassifyError(wasmstages.ErrWrongPhase, err)
	case err != nil:
		return nil, wasmstages.ClassifyError(wasmstages.ErrNotFound, err)
	}
	return newMapHandle(name, m)
}

// mapHandle is one of a gadget's maps as a module sees it: raw keys and
// values, per-CPU values as the kernel lays them out (each CPU's value
// padded to 8 bytes, for every possible CPU).
type mapHandle struct {
	name   string
	m      *ebpf.Map
	info   wasmstages.MapInfo
	perCPU int // possible CPUs for a per-CPU map, else 0
	stride int // bytes per CPU's value
}

func newMapHandle(name string, m *ebpf.Map) (*mapHandle, error) {
	h := &mapHandle{name: name, m: m, info: wasmstages.MapInfo{
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

func (h *mapHandle) Info() wasmstages.MapInfo { return h.info }

// mapError classifies a map operation's error for the guest.
func (h *mapHandle) mapError(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ebpf.ErrKeyNotExist):
		return wasmstages.ClassifyError(wasmstages.ErrNotFound, fmt.Errorf("%s map %q: %w", op, h.name, err))
	case errors.Is(err, ebpf.ErrKeyExist):
		return wasmstages.ClassifyError(wasmstages.ErrExists, fmt.Errorf("%s map %q: %w", op, h.name, err))
	}
	return fmt.Errorf("%s map %q (%s): %w", op, h.name, h.m.Type(), err)
}

func (h *mapHandle) Lookup(key, value []byte) error {
	if h.perCPU == 0 {
		return h.mapError("look up in", h.m.Lookup(key, value))
	}
	vals := make([][]byte, h.perCPU)
	if err := h.m.Lookup(key, vals); err != nil {
		return h.mapError("look up in", err)
	}
	clear(value)
	for i, v := range vals {
		copy(value[i*h.stride:i*h.stride+int(h.m.ValueSize())], v)
	}
	return nil
}

func (h *mapHandle) Update(key, value []byte, flags uint64) error {
	switch t := h.m.Type(); t {
	case ebpf.ProgramArray, ebpf.ArrayOfMaps, ebpf.HashOfMaps, ebpf.PerfEventArray, ebpf.RingBuf, ebpf.StructOpsMap:
		return wasmstages.ClassifyError(wasmstages.ErrInvalid, fmt.Errorf("map %q is a %s, whose values are kernel objects or records; a module cannot write it", h.name, t))
	}
	if h.perCPU == 0 {
		return h.mapError("update", h.m.Update(key, value, ebpf.MapUpdateFlags(flags)))
	}
	vals := make([][]byte, h.perCPU)
	for i := range vals {
		vals[i] = value[i*h.stride : i*h.stride+int(h.m.ValueSize())]
	}
	return h.mapError("update", h.m.Update(key, vals, ebpf.MapUpdateFlags(flags)))
}

func (h *mapHandle) Delete(key []byte) error {
	return h.mapError("delete from", h.m.Delete(key))
}

func (h *mapHandle) NextKey(key, next []byte) error {
	// cilium/ebpf asks for the first key when it gets a nil interface; a
	// nil []byte in one would be a key of length 0, which it refuses.
	var k any = key
	if key == nil {
		k = nil
	}
	return h.mapError("iterate", h.m.NextKey(k, next))
}

// addGadgetModule registers the module of gadget g, which New made for a
// source with one.
func (a *Agent) addGadgetModule(g *sources.Gadget, w *gadgetWasm) {
	if a.gadgetModules == nil {
		a.gadgetModules = map[*sources.Gadget]*gadgetSource{}
	}
	a.gadgetModules[g] = newGadgetSource(g, w, a.metrics, a.log)
}

// pipelineSource is what a pipeline runs for gadget g: g itself, or g
// behind its module.
func (a *Agent) pipelineSource(g *sources.Gadget) pipeline.Source {
	if s := a.gadgetModules[g]; s != nil {
		return s
	}
	return g
}

// initGadgetModule runs gadget g's module up to gadget_init, before g
// loads.
func (a *Agent) initGadgetModule(ctx context.Context, g *sources.Gadget) error {
	s := a.gadgetModules[g]
	if s == nil {
		return nil
	}
	return s.init(ctx, a.cache, a.metrics)
}

// startGadgetModule calls gadget g's gadget_start, once g is loaded and
// attached.
func (a *Agent) startGadgetModule(ctx context.Context, g *sources.Gadget) error {
	s := a.gadgetModules[g]
	if s == nil || s.mod == nil {
		return nil
	}
	return s.mod.Start(ctx)
}

// closeGadgetModules releases the modules whose source did not run (a
// failed start).
func (a *Agent) closeGadgetModules(ctx context.Context) {
	for _, s := range a.gadgetModules {
		s.close(ctx)
	}
}

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
		cfg := moduleConfig(r.gadget, r.wasm)
		cfg.Cache = cache
		if err := wasmstages.CheckGadget(ctx, cfg); err != nil {
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
