package wasmstages

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/sluice-dev/sluice/internal/interrupt"
	"github.com/sluice-dev/sluice/internal/jail"
	"github.com/sluice-dev/sluice/pipeline"
)

// Stage is a Wasm stage: a pipeline.Stage that runs a module version's
// instances. Build it with New. See the package documentation for the
// guarantees; every method is safe for concurrent use.
type Stage struct {
	cfg    Config // defaults applied
	action pipeline.ErrorAction
	log    *slog.Logger
	tick   time.Duration
	params []byte

	cache    *Cache
	ownCache bool
	host     *host
	modCfg   wazero.ModuleConfig
	jails    []*jail.FS // the roots of the directory grants, closed with the stage
	instSeq  atomic.Uint64

	restarts, reloadsOK *pipeline.Counter

	// fl is set when the stage runs a gadget's embedded module: sluice's
	// gadget-module ABI (gadget.go) or Inspektor Gadget's (ig.go), with
	// other exports, host functions and initialisation. source is the
	// Source of events derived from no input: the stage's name, or the
	// gadget's source.
	fl     flavour
	source string

	// swapMu serialises Swap (and so Reload and WatchFile) calls; mu
	// guards cur, closed and pending, and is held for a whole Process or
	// Tick so that a swap falls between two batches.
	swapMu sync.Mutex
	mu     sync.Mutex
	cur    *version
	closed bool
	// pending holds what the replaced version's last tick emitted at a
	// swap; the next Tick hands it on.
	pending []pipeline.Event
	// running describes cur for readers that must not wait for a batch.
	running atomic.Pointer[Running]
	// lastFailed is the digest of the last module Swap refused, so that
	// WatchFile does not retry the same broken file on every poll.
	lastFailed string
}

var (
	_ pipeline.Stage       = (*Stage)(nil)
	_ pipeline.ErrorPolicy = (*Stage)(nil)
	_ pipeline.Ticker      = (*Stage)(nil)
)

// version is one module: its runtime, its compiled code and the instances
// running it. Each version has a runtime of its own, because whether the
// runtime must watch contexts (close-on-context-done) depends on whether the
// module could be made interruptible.
type version struct {
	seq    int
	digest string // of the module's bytes, in hex
	label  Version
	// stamp is the encoded key and value Config.StampVersion adds to
	// events; nil when it is off.
	stamp    []byte
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	exports  exports
	// interruptible: the module was rewritten with the interrupt global
	// (package interrupt) and the runtime does not check contexts.
	interruptible bool

	// Per worker slot: the instance (nil until made, or after a failure),
	// when a failed attempt to make one may be retried, and why it failed.
	slots   []*instance
	retryAt []time.Time
	lastErr []error
	outs    [][]pipeline.Event // scratch outputs of the slots beyond the first
	errs    []error

	// failures counts the calls of this version that failed (and so
	// tripped on_error), for a rollback decision.
	failures atomic.Uint64
}

// Metric names of the Wasm-specific series, labelled {component="stage",
// name} (the stage); MetricReloads also {result} (ReloadOK, ReloadCompile,
// ...).
const (
	MetricInstanceRestarts = "sluice_stage_instance_restarts_total"
	MetricReloads          = "sluice_stage_reloads_total"
)

// rewriteModule makes a module interruptible; a variable so that a test
// can take the fallback path (a module the rewriter does not understand).
var rewriteModule = interrupt.Rewrite

// initTimeout is InitTimeout; a variable so that a test need not wait 10s.
var initTimeout = InitTimeout

// retryInstance is how long a slot whose instance could not be made waits
// before the next attempt; the batches in between fail with KindInit.
const retryInstance = time.Second

// minChunk is the smallest part of a batch worth handing to another worker.
const minChunk = 32

// New compiles cfg's module (or loads it from the cache), checks it against
// the ABI and starts cfg.Workers initialised instances. A module that fails
// the checks or whose sluice_init fails is refused (ErrABI, ErrInit) and
// nothing keeps running.
func New(ctx context.Context, cfg Config) (*Stage, error) {
	return newStage(ctx, cfg, nil, fmt.Sprintf("stage %q", cfg.Name))
}

// flavour is what sets a gadget's module apart from a stage: the ABI it
// is checked against, its host functions and how an instance starts.
type flavour interface {
	abi() moduleABI
	// checkExports adds what the export table cannot say.
	checkExports(ex exports) error
	// instantiateHost adds the flavour's host modules to a new runtime.
	instantiateHost(ctx context.Context, r wazero.Runtime) error
	// initialize prepares a new instance (initialize is the reactor's
	// _initialize, nil when the module has none).
	initialize(ctx context.Context, inst *instance, v *version, initialize api.Function) error
	// source is the Source of events the module derives from no input.
	source() string
}

// newStage is New, for a stage or (fl set) a gadget's module; label names
// it in errors.
func newStage(ctx context.Context, cfg Config, fl flavour, label string) (*Stage, error) {
	cfg, err := cfg.checked()
	if err != nil {
		return nil, err
	}
	module := cfg.ModuleBytes
	if cfg.Module != "" {
		if module, err = os.ReadFile(cfg.Module); err != nil {
			return nil, fmt.Errorf("load %s: read module: %w", label, err)
		}
	}
	params, err := appendParams(nil, cfg.Params)
	if err != nil {
		return nil, fmt.Errorf("load %s: encode params: %w", label, err)
	}
	s := &Stage{cfg: cfg, log: cfg.Logger.With("stage", cfg.Name), params: params, cache: cfg.Cache, fl: fl, source: cfg.Name}
	if fl != nil {
		s.source = fl.source()
	}
	s.action, _ = pipeline.ParseErrorAction(cfg.OnError) // checked() accepted it
	if s.cache == nil {
		if s.cache, err = NewCache(cfg.CacheDir); err != nil {
			return nil, fmt.Errorf("load %s: %w", label, err)
		}
		s.ownCache = true
	}
	reg := cfg.Metrics
	m := reg.Component("stage", cfg.Name)
	s.restarts = m.Counter(MetricInstanceRestarts, "Wasm instances made to replace a failed one.")
	// Every result a swap can have is a series from the start, so that an
	// alert on failed swaps sees 0 rather than nothing.
	for _, r := range ReloadResults() {
		ReloadCounter(reg, cfg.Name, r)
	}
	s.reloadsOK = ReloadCounter(reg, cfg.Name, ReloadOK)
	reg.StageErrorKinds(cfg.Name, ErrorKinds()...)
	if err := s.start(); err != nil {
		s.closeCache(ctx)
		s.closeJails()
		return nil, fmt.Errorf("load %s: %w", label, err)
	}
	v, err := s.load(ctx, module, digestOf(module), false)
	if err != nil {
		s.closeCache(ctx)
		s.closeJails()
		return nil, fmt.Errorf("load %s: %w", label, err)
	}
	switch {
	case cfg.Tick > 0 && !v.exports.tick:
		s.closeVersion(ctx, v)
		s.closeCache(ctx)
		s.closeJails()
		return nil, fmt.Errorf("load %s: %w", label, ErrNoTick)
	case cfg.Tick > 0:
		s.tick = cfg.Tick
	case v.exports.tick:
		s.tick = DefaultTick
	}
	s.setLabel(v, cfg.Version)
	s.cur = v
	s.running.Store(&Running{Version: v.label, Module: v.digest, Since: time.Now()})
	s.log.Debug("stage loaded", "digest", v.digest, "version", v.label.Digest, "workers", cfg.Workers, "tick", s.tick, "interruptible", v.interruptible)
	return s, nil
}

// Check does what New does (compile, check the ABI, instantiate one
// instance and run its sluice_init with cfg.Params) and releases it all
// again. It is what `sluice config validate` runs: no privileges needed, no
// events processed. cfg.OnError, DeadLetter and Workers are not used.
func Check(ctx context.Context, cfg Config) error {
	cfg.OnError, cfg.DeadLetter, cfg.Workers = "", nil, 1
	cfg.Metrics = nil
	s, err := New(ctx, cfg)
	if err != nil {
		return err
	}
	return s.Close(ctx)
}

// start prepares what every version shares: the host functions' state and
// the module config (the grants).
func (s *Stage) start() error {
	cfg := s.cfg
	for _, d := range cfg.Grants.Dirs {
		if st, err := os.Stat(d.Host); err != nil || !st.IsDir() {
			return fmt.Errorf("grant directory %s as %s: not a directory (%v)", d.Host, d.Guest, err)
		}
	}
	s.host = newHost(cfg.Name, s.log, cfg.Metrics)
	// Real clocks and random; no sleeping (a sleeping guest would only hold
	// its batch up), no args beyond the stage name, nothing else granted.
	mc := wazero.NewModuleConfig().
		WithStartFunctions().
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader).
		WithArgs(cfg.Name)
	for _, k := range slices.Sorted(maps.Keys(cfg.Grants.Env)) {
		mc = mc.WithEnv(k, cfg.Grants.Env[k])
	}
	if len(cfg.Grants.Dirs) > 0 {
		fs, err := s.jailGrants(cfg.Grants.Dirs)
		if err != nil {
			return err
		}
		mc = mc.WithFSConfig(fs)
	}
	s.modCfg = mc
	return nil
}

// newRuntime makes a compiler runtime with WASI and the host module. Only
// a runtime for modules that could not be made interruptible checks
// contexts at every loop (see RATIONALE.md).
func (s *Stage) newRuntime(ctx context.Context, closeOnContextDone bool) (wazero.Runtime, error) {
	rc := wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(s.cache.c).
		WithCloseOnContextDone(closeOnContextDone)
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("instantiate wasi: %w", err)
	}
	if err := s.host.instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	if s.fl != nil {
		if err := s.fl.instantiateHost(ctx, rt); err != nil {
			rt.Close(ctx)
			return nil, err
		}
	}
	return rt, nil
}

// compilesWithoutCache tells whether code compiles in a runtime of its own
// without a compilation cache.
func compilesWithoutCache(ctx context.Context, code []byte) bool {
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	defer rt.Close(ctx)
	cm, err := rt.CompileModule(ctx, code)
	if err != nil {
		return false
	}
	cm.Close(ctx)
	return true
}

// digestOf returns the SHA-256 of module in hex, a version's identity.
func digestOf(module []byte) string {
	sum := sha256.Sum256(module)
	return hex.EncodeToString(sum[:])
}

// compiled is a module made interruptible (when it could be) and compiled,
// in a runtime of its own, or why it could not be.
type compiled struct {
	rt            wazero.Runtime
	cm            wazero.CompiledModule
	interruptible bool
	rewriteErr    error // why the module is not interruptible
	err           error
}

// release closes what compile made.
func (c compiled) release(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	if c.cm != nil {
		c.cm.Close(ctx)
	}
	if c.rt != nil {
		c.rt.Close(ctx)
	}
}

// compile makes module interruptible and compiles it (or loads the code
// from the cache). aside compiles a large module aside first
// (compileAside), into the cache, where the process finds it.
func (s *Stage) compile(ctx context.Context, module []byte, aside bool) compiled {
	var c compiled
	code, _, rerr := rewriteModule(module)
	c.interruptible, c.rewriteErr = rerr == nil, rerr
	if !c.interruptible {
		code = module
	}
	key := cacheKey(code, !c.interruptible)
	if _, held := s.cache.holds.Load(key); aside && !held && len(code) >= asideMinSize && s.cache.dir != "" {
		start := time.Now()
		report, err := compileAside(ctx, s.cache.dir, code, !c.interruptible)
		if err != nil {
			s.log.Debug("compiled aside", "bytes", len(code), "took", time.Since(start), "error", err)
		} else {
			s.log.Debug("compiled aside", "bytes", len(code), "took", time.Since(start), "report", report)
		}
		if errors.Is(err, ErrCompile) {
			c.err = err
			return c
		}
		if err != nil && ctx.Err() != nil {
			// The agent stops: no second compile here.
			c.err = fmt.Errorf("compile aside: %w", context.Cause(ctx))
			return c
		}
		// Any other failure aside is compiled here again.
	}
	rt, err := s.newRuntime(ctx, !c.interruptible)
	if err != nil {
		c.err = err
		return c
	}
	cm, err := rt.CompileModule(ctx, code)
	if err != nil && s.cache.dir != "" && compilesWithoutCache(ctx, code) {
		// wazero's errors are not typed: that the module compiles without
		// the cache is what tells a bad cache entry from a bad module.
		s.log.Warn("the compilation cache holds an entry that cannot be read; clearing it and compiling afresh", "dir", s.cache.dir, "error", err)
		if perr := s.cache.purge(); perr != nil {
			s.log.Warn("clear the compilation cache", "error", perr)
		} else {
			cm, err = rt.CompileModule(ctx, code)
		}
	}
	if err != nil {
		rt.Close(context.WithoutCancel(ctx))
		c.err = fmt.Errorf("%w: %w", ErrCompile, err)
		return c
	}
	s.cache.holds.Store(key, struct{}{})
	c.rt, c.cm = rt, cm
	return c
}

// load compiles module, whose digestOf is digest, and starts a full set of
// initialised instances of it. It does not touch the running version. A
// swap (aside) compiles a large module aside, so that the pipelines
// running meanwhile keep their pace.
func (s *Stage) load(ctx context.Context, module []byte, digest string, aside bool) (*version, error) {
	c := s.compile(ctx, module, aside)
	if c.err != nil {
		return nil, c.err
	}
	v := &version{digest: digest, rt: c.rt, compiled: c.cm, interruptible: c.interruptible}
	if !v.interruptible {
		s.log.Info("cannot make the module cheaply interruptible; wazero's context checks enforce the deadline instead, which slows loops down", "error", c.rewriteErr)
	}
	abi := stageABI
	if s.fl != nil {
		abi = s.fl.abi()
	}
	var err error
	if v.exports, err = checkModuleABI(c.cm, s.cfg.MemoryLimit, abi); err == nil && s.fl != nil {
		err = s.fl.checkExports(v.exports)
	}
	if err != nil {
		c.release(ctx)
		return nil, err
	}
	n := s.cfg.Workers
	v.slots, v.retryAt, v.lastErr = make([]*instance, n), make([]time.Time, n), make([]error, n)
	v.outs, v.errs = make([][]pipeline.Event, n), make([]error, n)
	for i := range n {
		if v.slots[i], err = s.newInstance(ctx, v); err != nil {
			s.closeVersion(ctx, v)
			return nil, err
		}
	}
	return v, nil
}

// newInstance instantiates v's module and initialises the instance.
func (s *Stage) newInstance(ctx context.Context, v *version) (*instance, error) {
	name := fmt.Sprintf("%s#%d", s.cfg.Name, s.instSeq.Add(1))
	mc := s.modCfg.WithName(name)
	if s.cfg.Grants.Stdout {
		mc = mc.WithStdout(&lineWriter{h: s.host, level: slog.LevelInfo, name: "stdout"})
	}
	if s.cfg.Grants.Stderr {
		mc = mc.WithStderr(&lineWriter{h: s.host, level: slog.LevelWarn, name: "stderr"})
	}
	actx, alloc := memoryAllocatorContext(ctx, s.cfg.MemoryLimit)
	ictx, cancel := context.WithTimeout(actx, initTimeout)
	defer cancel()
	mod, err := v.rt.InstantiateModule(ictx, v.compiled, mc)
	if err != nil {
		if alloc.mem != nil && alloc.mem.refused.Load() {
			return nil, fmt.Errorf("instantiate: %w of %d bytes: %w", ErrMemoryLimit, s.cfg.MemoryLimit, err)
		}
		return nil, fmt.Errorf("instantiate: %w", err)
	}
	inst := &instance{
		mod: mod, mem: mod.Memory(), lm: alloc.mem, name: name,
		alloc:   mod.ExportedFunction("sluice_alloc"),
		process: mod.ExportedFunction("sluice_process"),
		tick:    mod.ExportedFunction("sluice_tick"),
		close:   mod.ExportedFunction("sluice_close"),
		stack:   make([]uint64, 2),
	}
	if inst.lm == nil {
		// checkModule made sure the module defines a memory, which went
		// through the allocator.
		mod.Close(ctx)
		return nil, errors.New("instantiate: the module's memory bypassed the limit")
	}
	inst.interruptible = v.interruptible
	// A gadget's module feeds the pipeline's edge, whose batches may part
	// the copies it makes of one event: number them apart for good.
	inst.result.unsequencedCopies = s.fl != nil
	s.host.byModule.Store(mod, inst)
	var initialize = mod.ExportedFunction("_initialize")
	if !v.exports.initialize {
		initialize = nil
	}
	if s.fl != nil {
		err = s.fl.initialize(ctx, inst, v, initialize)
	} else {
		err = inst.initialize(ctx, initialize, mod.ExportedFunction("sluice_abi_version"), mod.ExportedFunction("sluice_init"), s.params, ErrInit)
	}
	if err != nil {
		inst.broken = true // no sluice_close for an instance that never started
		s.release(ctx, inst)
		// A guest that ran out of memory fails in its own way: it traps
		// (KindOOM), or it handles the failed allocation and reports an
		// error, after the host refused to grow its memory.
		if pipeline.StageErrorKind(err) == KindOOM || inst.lm.refused.Load() {
			err = fmt.Errorf("%w: %w", ErrMemoryLimit, err)
		}
		return nil, err
	}
	return inst, nil
}

// release closes an instance and forgets it.
func (s *Stage) release(ctx context.Context, inst *instance) {
	if err := inst.closeGuest(ctx, s.cfg.Timeout); err != nil {
		s.log.Debug("close instance", "instance", inst.name, "error", err)
	}
	s.host.byModule.Delete(inst.mod)
}

// closeVersion releases v's instances, compiled module and runtime.
func (s *Stage) closeVersion(ctx context.Context, v *version) {
	for i, inst := range v.slots {
		if inst != nil {
			s.release(ctx, inst)
			v.slots[i] = nil
		}
	}
	ctx = context.WithoutCancel(ctx)
	if v.compiled != nil {
		v.compiled.Close(ctx)
	}
	v.rt.Close(ctx)
}

func (s *Stage) closeCache(ctx context.Context) {
	if s.ownCache {
		_ = s.cache.Close(context.WithoutCancel(ctx))
	}
}

// Name returns the stage's name.
func (s *Stage) Name() string { return s.cfg.Name }

// ErrorKinds returns the kinds of failure a Wasm stage reports
// (pipeline.ErrorKindsReporter).
func (s *Stage) ErrorKinds() []string { return ErrorKinds() }

// OnError implements pipeline.ErrorPolicy.
func (s *Stage) OnError() (pipeline.ErrorAction, pipeline.Sink) { return s.action, s.cfg.DeadLetter }

// TickInterval implements pipeline.Ticker: Config.Tick, or DefaultTick when
// the first version exports sluice_tick, else 0. A swap does not change it.
func (s *Stage) TickInterval() time.Duration { return s.tick }

// Digest returns the SHA-256 of the running module version's bytes, in
// hex. It does not wait for a batch in progress.
func (s *Stage) Digest() string { return s.running.Load().Module }

// Running describes the running version. It does not wait for a batch in
// progress.
func (s *Stage) Running() Running { return *s.running.Load() }

// Failures returns the running version's Seq and how many of its calls
// (batches and ticks) failed so far, each of which tripped the stage's
// on_error policy; calls cancelled by the pipeline do not count.
func (s *Stage) Failures() (seq int, failed uint64) {
	s.mu.Lock()
	v := s.cur
	s.mu.Unlock()
	return v.seq, v.failures.Load()
}

// setLabel names v: label, with the defaults of the module's own digest
// and the configured file, and the stamp that goes with it.
func (s *Stage) setLabel(v *version, label Version) {
	if label.Digest == "" {
		label.Digest = "sha256:" + v.digest
	}
	if label.Ref == "" {
		label.Ref = s.cfg.Module
	}
	v.label = label
	v.stamp = nil
	if s.cfg.StampVersion {
		v.stamp = appendStamp(nil, s.cfg.Name, label.Digest)
	}
}

// countFailure counts a failed call of v for Failures.
func countFailure(v *version, err error) {
	if err != nil && pipeline.StageErrorKind(err) != KindCanceled {
		v.failures.Add(1)
	}
}

// Process implements pipeline.Stage: it runs in through the running
// version. With several workers, a large batch is cut into consecutive
// parts, one per instance, processed in parallel and joined in order, so
// the output order is the one a single worker would produce. A failure in
// any part fails the whole batch (it then follows on_error as a whole).
// With Config.StampVersion every output event carries the version's
// digest.
func (s *Stage) Process(ctx context.Context, in, out []pipeline.Event) ([]pipeline.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return out, ErrClosed
	}
	if len(in) == 0 {
		return out, nil
	}
	start := len(out)
	out, err := s.processVersion(ctx, s.cur, in, out)
	countFailure(s.cur, err)
	if err == nil && s.cur.stamp != nil {
		stampEvents(out[start:], s.cur.stamp)
	}
	return out, err
}

// processVersion is Process on version v.
func (s *Stage) processVersion(ctx context.Context, v *version, in, out []pipeline.Event) ([]pipeline.Event, error) {
	parts := min(len(v.slots), len(in)/minChunk)
	if parts <= 1 {
		// One instance takes the whole batch: a result that keeps it all
		// may hand in back (pipeline.Stage allows it); split batches are
		// joined in out, so their parts must not alias in. Stamping
		// rewrites the output's entries, which must not be in's.
		return s.runSlot(ctx, v, 0, in, out, len(out) == 0 && v.stamp == nil)
	}
	per := (len(in) + parts - 1) / parts
	var wg sync.WaitGroup
	for i := 1; i < parts; i++ {
		lo, hi := groupCut(in, i*per), groupCut(in, (i+1)*per)
		if lo == hi {
			v.outs[i] = v.outs[i][:0] // a group of one source event's events took this part
			continue
		}
		wg.Go(func() {
			v.outs[i], v.errs[i] = s.runSlot(ctx, v, i, in[lo:hi], v.outs[i][:0], false)
		})
	}
	start := len(out)
	out, v.errs[0] = s.runSlot(ctx, v, 0, in[:groupCut(in, per)], out, false)
	wg.Wait()
	var err error
	for i := range parts {
		if v.errs[i] != nil && err == nil {
			err = v.errs[i]
		}
		v.errs[i] = nil
	}
	for i := 1; i < parts; i++ {
		if err == nil {
			out = append(out, v.outs[i]...)
		}
		clear(v.outs[i]) // do not pin the events' data until the next batch
		if cap(v.outs[i]) > maxKeptEvents {
			v.outs[i] = nil
		}
	}
	if err != nil {
		clear(out[start:])
		return out[:start], err
	}
	return out, nil
}

// groupCut moves a cut of in at position at (clamped to len(in)) forward
// past the events that share a source event with the one before it, so
// that one instance sees all the events derived from one source event and
// can number them (parseResult).
func groupCut(in []pipeline.Event, at int) int {
	at = min(at, len(in))
	for at > 0 && at < len(in) && in[at].Seq != 0 && in[at].Seq == in[at-1].Seq && in[at].Source == in[at-1].Source {
		at++
	}
	return at
}

// runSlot processes in on the instance of slot i, making one when needed,
// and discards the instance if the call broke it.
func (s *Stage) runSlot(ctx context.Context, v *version, i int, in, out []pipeline.Event, returnInput bool) ([]pipeline.Event, error) {
	inst, err := s.slot(ctx, v, i)
	if err != nil {
		return out, err
	}
	out, err = inst.processBatch(ctx, s.cfg.Timeout, in, out, s.source, returnInput)
	if inst.broken {
		s.discard(ctx, v, i, err)
	}
	return out, err
}

// slot returns the instance of slot i, replacing a discarded one. An
// attempt that fails is repeated at most every retryInstance.
func (s *Stage) slot(ctx context.Context, v *version, i int) (*instance, error) {
	if inst := v.slots[i]; inst != nil {
		return inst, nil
	}
	if time.Now().Before(v.retryAt[i]) {
		return nil, &pipeline.StageError{Kind: KindInit, Err: fmt.Errorf("no instance (the last attempt to make one failed): %w", v.lastErr[i])}
	}
	inst, err := s.newInstance(ctx, v)
	if err != nil {
		v.retryAt[i], v.lastErr[i] = time.Now().Add(retryInstance), err
		s.log.Warn("cannot replace a failed instance", "worker", i, "error", err)
		return nil, &pipeline.StageError{Kind: KindInit, Err: fmt.Errorf("replace failed instance: %w", err)}
	}
	s.restarts.Inc()
	v.slots[i] = inst
	return inst, nil
}

func (s *Stage) discard(ctx context.Context, v *version, i int, cause error) {
	inst := v.slots[i]
	v.slots[i] = nil
	s.log.Debug("discarding instance", "instance", inst.name, "error", cause)
	s.release(ctx, inst)
}

// Tick implements pipeline.Ticker: it calls every instance's sluice_tick
// and appends what they emit, after what the last tick of a version
// replaced since the previous Tick emitted. A version without sluice_tick
// emits nothing.
func (s *Stage) Tick(ctx context.Context, now time.Time, out []pipeline.Event) ([]pipeline.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return out, ErrClosed
	}
	out = append(out, s.pending...)
	clear(s.pending)
	s.pending = s.pending[:0]
	out, err := s.tickVersion(ctx, s.cur, now, out)
	countFailure(s.cur, err)
	return out, err
}

// tickVersion ticks every instance of v and appends what they emit,
// stamped when Config.StampVersion says so.
func (s *Stage) tickVersion(ctx context.Context, v *version, now time.Time, out []pipeline.Event) ([]pipeline.Event, error) {
	if !v.exports.tick {
		return out, nil
	}
	start := len(out)
	var first error
	for i := range v.slots {
		inst, err := s.slot(ctx, v, i)
		if err == nil {
			out, err = inst.tickOnce(ctx, s.cfg.Timeout, now, out, s.cfg.Name)
			if inst.broken {
				s.discard(ctx, v, i, err)
			}
		}
		if err != nil && first == nil {
			first = err
		}
	}
	if v.stamp != nil {
		stampEvents(out[start:], v.stamp)
	}
	return out, first
}

// Swap replaces the running module version with module, between two
// batches. The new version is compiled, checked and initialised first,
// beside the old one, which keeps processing meanwhile; if any step fails,
// Swap returns the error and the old version stays. Swapping in the bytes
// that already run does nothing.
func (s *Stage) Swap(ctx context.Context, module []byte) error {
	return s.SwapVersion(ctx, module, Version{})
}

// SwapVersion is Swap, naming the new version label (its zero fields
// default to the module's digest and the configured file). Swapping in the
// bytes that already run only renames the running version.
func (s *Stage) SwapVersion(ctx context.Context, module []byte, label Version) error {
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	return s.swap(ctx, module, digestOf(module), label)
}

// swap is SwapVersion of module, whose digestOf is digest; swapMu is held.
//
// The switch itself holds mu, which Process and Tick hold for a whole
// call: the batch in progress finishes on the old version, every worker
// slot of the next batch runs the new one, and no batch sees both. A
// stage with a timer ticks the old version's instances one last time
// before they close, so that what they kept for their next tick (a
// summary, a window) is handed on by the next Tick instead of being lost.
func (s *Stage) swap(ctx context.Context, module []byte, digest string, label Version) error {
	s.mu.Lock()
	closed, cur := s.closed, s.cur
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if digest == cur.digest {
		s.mu.Lock()
		s.setLabel(cur, label)
		r := *s.running.Load()
		r.Version = cur.label
		s.running.Store(&r)
		s.mu.Unlock()
		return nil
	}
	seen := time.Now()
	nv, err := s.load(ctx, module, digest, true)
	if err != nil {
		result := ReloadResult(err)
		ReloadCounter(s.cfg.Metrics, s.cfg.Name, result).Inc()
		kind := KindLoad
		if result == ReloadInit {
			kind = KindInit
		}
		s.cfg.Metrics.StageErrors(s.cfg.Name, kind).Inc()
		s.lastFailed = digest
		return fmt.Errorf("swap stage %q: keep version %s: %w", s.cfg.Name, ShortDigest(cur.label.Digest), err)
	}
	s.setLabel(nv, label)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.closeVersion(ctx, nv)
		return ErrClosed
	}
	old := s.cur
	if s.tick > 0 {
		var terr error
		if s.pending, terr = s.tickVersion(ctx, old, time.Now(), s.pending); terr != nil {
			countFailure(old, terr)
			s.log.Warn("the last tick of the replaced version failed", "version", ShortDigest(old.label.Digest), "error", terr)
		}
	}
	nv.seq = old.seq + 1
	s.cur = nv
	s.running.Store(&Running{Version: nv.label, Module: nv.digest, Seq: nv.seq, Since: time.Now()})
	// Counted as it serves: whoever sees the new version sees it counted.
	s.reloadsOK.Inc()
	s.mu.Unlock()
	// No batch runs on old any more: Process holds mu for a whole batch.
	s.closeVersion(ctx, old)
	s.log.Info("stage module swapped", "from", ShortDigest(old.label.Digest), "to", ShortDigest(nv.label.Digest), "ref", nv.label.Ref,
		"version", nv.seq, "took", time.Since(seen).Round(time.Millisecond))
	return nil
}

// Close calls sluice_close on every working instance and releases the
// stage. Process and Tick fail with ErrClosed afterwards.
func (s *Stage) Close(ctx context.Context) error {
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	v := s.cur
	if len(s.pending) > 0 {
		// Only a swap after the pipeline's final tick leaves these.
		s.log.Warn("closing with events the replaced version's last tick emitted; they are lost", "events", len(s.pending))
		s.pending = nil
	}
	s.mu.Unlock()
	s.closeVersion(ctx, v)
	s.closeCache(ctx)
	s.closeJails()
	return nil
}
