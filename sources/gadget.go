package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/sources/decode"
)

// Defaults for buffer sizing. A ring buffer costs its size twice in the
// agent's RSS (the reader maps its data pages twice, so that a record
// wrapping round the end reads in one piece, and the kernel maps them all
// at once), so a ring gets the size its gadget declares
// (GADGET_TRACER_MAP), sized for the gadget's rate, and at least
// DefaultRingBufferSize, Inspektor Gadget's usual size. A source's
// buffer_size sets it. See RATIONALE.md.
const (
	DefaultRingBufferSize = 256 << 10
	DefaultPerfBufferSize = 1 << 20 // per CPU
	defaultBatchSize      = 256
	defaultPollInterval   = 5 * time.Millisecond
	lostPollInterval      = time.Second
	verifierTailLines     = 24
)

// GadgetConfig binds a GadgetSpec to one configured source.
type GadgetConfig struct {
	Source     string            // the config name, carried in every event
	Host       string            // the envelope's host
	Params     map[string]string // parameter values as text
	BufferSize int               // ring buffer bytes, or perf buffer bytes per CPU; 0 = default
	BatchSize  int               // events per emitted batch; 0 = 256
	// PollInterval bounds how long a record waits in the kernel buffer when
	// the gadget skips reader wakeups; 0 = 5ms.
	PollInterval time.Duration
	// Filter selects events in the kernel; see Filter.
	Filter Filter
	Logger *slog.Logger
	// Seq numbers the events; nil gives the gadget a counter of its own.
	// A source that is restarted or replaced (a reload) passes the
	// counter of its predecessor, so that its numbers go on.
	Seq *atomic.Uint64

	// Interval is how often the gadget's iterators take a snapshot (0: once,
	// when the gadget starts) and its map iterators drain their maps (0:
	// every DefaultMapInterval).
	Interval time.Duration
	// Runs stops the iterators and map iterators after that many snapshots
	// (0: until the source stops; an iterator with no Interval runs once).
	// A gadget whose only outputs are these finishes when they do.
	Runs int
	// Ifaces are the interfaces TC classifiers attach to, in each of the
	// gadget's network namespaces.
	Ifaces []string
	// NetNS are the network namespaces (paths such as /run/netns/x or
	// /proc/PID/ns/net) socket filters, TC classifiers and the tcp/udp
	// iterators work in; none means the host's.
	NetNS []string
	// SampleFrequency is the per-CPU sampling rate of perf_event programs,
	// in Hz; 0 = DefaultSampleFrequency.
	SampleFrequency uint64
	// PinRoot is the bpffs directory under which maps a gadget pins by name
	// get a directory of their own per gadget instance, removed on Close;
	// "" = /sys/fs/bpf/sluice.
	PinRoot string
}

// DefaultMapInterval is how often map iterators drain their maps unless the
// source says otherwise (Inspektor Gadget's map-fetch-interval default).
const DefaultMapInterval = time.Second

// Gadget is a pipeline source reading one gadget's output streams.
type Gadget struct {
	spec   *GadgetSpec
	cfg    GadgetConfig
	params map[string][]byte
	plans  []*decode.Plan
	log    *slog.Logger
	seq    *atomic.Uint64
	lost   []atomic.Uint64 // kernel losses per stream, summed over CPUs
	// filtered counts the events the kernel filter discarded so far.
	filtered atomic.Uint64
	coll     *ebpf.Collection
	// closeMu serialises Close with Run's start and end: Close while Run
	// runs closes the readers (which ends Run with an error) and leaves
	// the rest to Run's end, when nothing reads the maps any more.
	closeMu  sync.Mutex
	running  bool
	closeEnd bool
	// stopRun ends the current Run's periodic outputs (Close while Run
	// runs a gadget that has no readers to close).
	stopRun context.CancelFunc
	linksMu sync.Mutex
	links   []link.Link
	// attached are handles of attachments that are not links: packet
	// sockets, perf events, tcx links; closed on detach.
	attached []io.Closer
	readers  []recordReader
	skipped  []string // optional programs that did not attach
	// periodic are the iterators and map iterators; see periodic.go.
	periodic []*periodicOutput
	stacks   *stackResolver
	pinDir   string // this instance's pin directory, "" when it pins nothing
	// mapReplacements are maps the gadget shares instead of creating
	// (the socket enricher's); enricherHeld says Close releases it.
	mapReplacements map[string]*ebpf.Map
	enricherHeld    bool
	finished        atomic.Bool

	filterMu sync.Mutex
	kfilter  *kernelFilter // from Open to Close
}

var _ pipeline.Source = (*Gadget)(nil)

// NewGadget validates parameters and compiles one decode plan per stream.
// It does not touch the kernel.
func NewGadget(spec *GadgetSpec, cfg GadgetConfig) (*Gadget, error) {
	fparams, err := spec.filterParams(cfg.Filter)
	if err != nil {
		return nil, err
	}
	values := cfg.Params
	if len(fparams) > 0 {
		values = make(map[string]string, len(cfg.Params)+len(fparams))
		for k, v := range cfg.Params {
			values[k] = v
		}
		for k, v := range fparams {
			if old, ok := values[k]; ok && old != v {
				return nil, &FilterError{Gadget: spec.Name, Err: fmt.Errorf("parameter %s=%q contradicts the filter (%s=%q): set one of them", k, old, k, v)}
			}
			values[k] = v
		}
	}
	params, err := spec.encodeParams(values)
	if err != nil {
		return nil, err
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = defaultBatchSize
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = defaultPollInterval
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Gadget{spec: spec, cfg: cfg, params: params, log: log.With("source", cfg.Source, "gadget", spec.Name), seq: cfg.Seq, stacks: &stackResolver{}}
	if g.seq == nil {
		g.seq = new(atomic.Uint64)
	}
	for _, st := range spec.Streams {
		plan, err := decode.Compile(st.EventType, decode.Options{Gadget: spec.Name, Source: cfg.Source, Host: cfg.Host, Stacks: g.stacks, Fields: spec.fields})
		if err != nil {
			return nil, fieldsError(fmt.Errorf("gadget %q stream %q: %w", spec.Name, st.Name, err))
		}
		spec.annotateSchema(st.Name, plan.Schema())
		g.plans = append(g.plans, plan)
	}
	g.lost = make([]atomic.Uint64, len(spec.Streams))
	if err := g.newPeriodic(); err != nil {
		return nil, err
	}
	if err := g.checkHints(); err != nil {
		return nil, err
	}
	return g, nil
}

// checkHints fails on a field hint that applied to no output: a typo
// would otherwise silently leave the member rendered as before.
func (g *Gadget) checkHints() error {
	keys := make([]string, 0, len(g.spec.fields))
	for k := range g.spec.fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		applied := false
		var members []string
		for _, p := range g.allPlans() {
			if p.Hinted(key) {
				applied = true
				break
			}
			members = append(members, fmt.Sprintf("struct %s: %s", p.Schema().Type, p.MemberList()))
		}
		if !applied {
			return &OptionError{Option: "fields", Field: key, Err: fmt.Errorf("gadget %q: fields hint %q names no member of its event types (%s)", g.spec.Name, key, strings.Join(members, "; "))}
		}
	}
	return nil
}

func (g *Gadget) allPlans() []*decode.Plan {
	out := slices.Clone(g.plans)
	for _, po := range g.periodic {
		out = append(out, po.plan)
	}
	return out
}

// Name returns the source's config name.
func (g *Gadget) Name() string { return g.cfg.Source }

// DropReasons implements pipeline.DropReasonsReporter: a gadget loses
// events in the kernel (a full ring buffer, lost perf samples).
func (g *Gadget) DropReasons() []string { return []string{pipeline.ReasonKernel} }

// Spec returns the gadget's spec.
func (g *Gadget) Spec() *GadgetSpec { return g.spec }

// OutputNames returns the name of each output (tracer, iterator or map
// iterator), in the order of Schemas.
func (g *Gadget) OutputNames() []string {
	out := make([]string, 0, len(g.plans)+len(g.periodic))
	for _, st := range g.spec.Streams {
		out = append(out, st.Name)
	}
	for _, po := range g.periodic {
		out = append(out, po.name)
	}
	return out
}

// Schemas returns the event schema of each output: the streams, in stream
// order, then the iterators and map iterators.
func (g *Gadget) Schemas() []*pipeline.Schema {
	out := make([]*pipeline.Schema, 0, len(g.plans)+len(g.periodic))
	for _, p := range g.plans {
		out = append(out, p.Schema())
	}
	for _, po := range g.periodic {
		out = append(out, po.plan.Schema())
	}
	return out
}

// KernelLost returns the events the kernel could not hand to the reader so
// far (ring buffer reserve failures and lost perf samples), over all streams.
func (g *Gadget) KernelLost() uint64 {
	var n uint64
	for i := range g.lost {
		n += g.lost[i].Load()
	}
	return n
}

// KernelFiltered returns the events the kernel filter discarded so far, as
// last read from the gadget's counter (once a second while Run runs, and
// when it stops); 0 for a gadget without a filter or without the counter.
func (g *Gadget) KernelFiltered() uint64 { return g.filtered.Load() }

// Open loads the gadget into the kernel, attaches its programs and opens its
// output readers. Errors name the program at fault; a verifier rejection
// carries the tail of the verifier log (see ProgramError).
func (g *Gadget) Open() (err error) {
	if err := CheckPrivileges(); err != nil {
		return err
	}
	if err := PrepareKernel(); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			g.Close()
		}
	}()
	cs := g.spec.CollectionSpec()
	if err := applyParams(cs, g.params); err != nil {
		return fmt.Errorf("gadget %q: %w", g.spec.Name, err)
	}
	// Held until the filter is loaded, so that a concurrent SetMntNS
	// lands either in the initial set or in the loaded map.
	g.filterMu.Lock()
	filterLocked := true
	defer func() {
		if filterLocked {
			g.filterMu.Unlock()
		}
	}()
	if err := applyFilterGlobals(cs, g.cfg.Filter); err != nil {
		return fmt.Errorf("gadget %q: %w", g.spec.Name, err)
	}
	if err := g.sizeMaps(cs); err != nil {
		return fmt.Errorf("gadget %q: %w", g.spec.Name, err)
	}
	g.sizeBuffers(cs)
	if err := g.preparePins(cs); err != nil {
		return fmt.Errorf("gadget %q: %w", g.spec.Name, err)
	}
	g.useSocketEnricher(cs)
	skipped, err := g.loadCollection(cs)
	if err != nil {
		return err
	}
	g.skipped = skipped
	// The filter sets are filled before anything attaches, so no event
	// passes a filter that is not complete yet.
	k := &kernelFilter{}
	if err := k.fill(g.coll, g.cfg.Filter); err != nil {
		return fmt.Errorf("gadget %q: %w", g.spec.Name, err)
	}
	g.kfilter = k
	filterLocked = false
	g.filterMu.Unlock()
	g.stacks.setMaps(g.coll)
	iterators := g.iteratorPrograms()
	for _, ps := range g.spec.Programs {
		prog, ok := g.coll.Programs[ps.Name]
		if !ok {
			continue // an optional program the kernel refused to load
		}
		if err := g.attach(ps, prog, iterators); err != nil {
			var absent *absentTargetError
			switch {
			case errors.As(err, &absent):
				// As Inspektor Gadget does: a uprobe on a library or
				// symbol this host lacks is skipped, not fatal.
				g.log.Warn("uprobe target absent; program skipped", "program", ps.Name, "section", ps.Section, "reason", absent.Err)
				g.skipped = append(g.skipped, ps.Name)
				continue
			case ps.Optional:
				g.log.Warn("optional program not attached", "program", ps.Name, "error", err)
				g.skipped = append(g.skipped, ps.Name)
				continue
			}
			var missing *missingTracepointError
			if errors.As(err, &missing) {
				missing.programs = append(missing.programs, g.missingTracepoints(ps.Name)...)
			}
			return &ProgramError{Gadget: g.spec.Name, Program: ps.Name, Section: ps.Section, Op: "attach", Err: err}
		}
	}
	for _, m := range g.spec.Unread {
		g.log.Warn("buffer named by no tracer; its records are not read (add GADGET_TRACER(name, map, struct) to read them)", "map", m)
	}
	if len(g.links) == 0 && len(g.attached) == 0 && !g.hasIterators() {
		return fmt.Errorf("gadget %q: no program could be attached (skipped: %s)", g.spec.Name, strings.Join(g.skipped, ", "))
	}
	for _, st := range g.spec.Streams {
		g.log.Info("reading output", "output", st.Name, "map", st.Map, "struct", st.EventType.Name, "size", st.EventType.Size, "found_by", string(st.FoundBy), "from", st.TypeFrom)
		r, err := openReader(g.coll.Maps[st.Map], st, g.perfBufferSize())
		if err != nil {
			return fmt.Errorf("gadget %q: open reader for map %q: %w", g.spec.Name, st.Map, err)
		}
		g.readers = append(g.readers, r)
	}
	return g.openPeriodic()
}

// attach attaches one loaded program according to its kind. Iterators are
// attached here and run by their snapshot.
func (g *Gadget) attach(ps ProgramSpec, prog *ebpf.Program, iterators map[string]*periodicOutput) error {
	add := func(cs []io.Closer, err error) error {
		g.linksMu.Lock()
		g.attached = append(g.attached, cs...)
		g.linksMu.Unlock()
		return err
	}
	switch ps.Attach {
	case AttachIter:
		po := iterators[ps.Name]
		if po == nil {
			g.log.Warn("iter program belongs to no iterator (GADGET_ITER); not run", "program", ps.Name)
			g.skipped = append(g.skipped, ps.Name)
			return nil
		}
		opts := link.IterOptions{Program: prog}
		if ps.IterMap != "" {
			opts.Map = g.coll.Maps[ps.IterMap]
		}
		it, err := link.AttachIter(opts)
		if err != nil {
			return fmt.Errorf("attach iterator: %w", err)
		}
		po.iters = append(po.iters, iterLink{prog: ps, link: it})
		return add([]io.Closer{it}, nil)
	case AttachSocketFilter:
		return add(attachSocketFilter(prog, g.cfg.NetNS))
	case AttachTC:
		return add(attachTC(ps, prog, g.cfg.Ifaces, g.cfg.NetNS))
	case AttachPerfEvent:
		return add(attachPerfEvent(prog, g.cfg.SampleFrequency))
	}
	l, err := attachProgram(ps, prog)
	if err != nil {
		return err
	}
	g.linksMu.Lock()
	g.links = append(g.links, l)
	g.linksMu.Unlock()
	return nil
}

// missingTracepoints lists the gadget's other required tracepoint
// programs whose tracepoints tracefs lacks, besides the one named first.
func (g *Gadget) missingTracepoints(first string) []ProgramSpec {
	var out []ProgramSpec
	for _, ps := range g.spec.Programs {
		if ps.Name != first && ps.Attach == AttachTracepoint && !ps.Optional && tracepointMissing(ps.Target) {
			out = append(out, ps)
		}
	}
	return out
}

// SkippedPrograms lists optional programs that are not running.
func (g *Gadget) SkippedPrograms() []string { return g.skipped }

func (g *Gadget) sizeBuffers(cs *ebpf.CollectionSpec) {
	for _, st := range g.spec.Streams {
		ms := cs.Maps[st.Map]
		if ms.Type != ebpf.RingBuf {
			continue
		}
		size := g.cfg.BufferSize
		if size <= 0 {
			if ms.MaxEntries >= DefaultRingBufferSize {
				continue // the gadget asked for more than our default
			}
			size = DefaultRingBufferSize
		}
		ms.MaxEntries = ringSize(size)
	}
}

func (g *Gadget) perfBufferSize() int {
	if g.cfg.BufferSize > 0 {
		return g.cfg.BufferSize
	}
	return DefaultPerfBufferSize
}

// ringSize rounds n up to what the kernel accepts for a ring buffer: a power
// of two and a multiple of the page size.
func ringSize(n int) uint32 {
	page := os.Getpagesize()
	if n < page {
		n = page
	}
	return uint32(1) << bits.Len32(uint32(n-1))
}

// loadCollection loads the collection, dropping optional programs the
// kernel refuses and retrying, so a gadget can carry programs for features
// some kernels lack.
func (g *Gadget) loadCollection(cs *ebpf.CollectionSpec) ([]string, error) {
	var skipped []string
	for {
		coll, err := ebpf.NewCollectionWithOptions(cs, g.collectionOptions())
		if err == nil {
			g.coll = coll
			return skipped, nil
		}
		ps, found, progErr := g.failingProgram(cs)
		if !found {
			return skipped, fmt.Errorf("load gadget %q: %w", g.spec.Name, err)
		}
		err = progErr
		perr := &ProgramError{Gadget: g.spec.Name, Program: ps.Name, Section: ps.Section, Op: "load", Err: err}
		var ve *ebpf.VerifierError
		if hint := loadFeatureHint(ps, err); hint != "" {
			// cilium's own hint (MEMLOCK) is wrong here, and the
			// verifier never ran: the kernel refused the program kind.
			// Keep only its errno.
			perr.Err = fmt.Errorf("%w (%s): %w", ErrKernelFeature, hint, errnoOf(err))
		} else if errors.As(err, &ve) {
			perr.VerifierLog = verifierTail(ve.Log, verifierTailLines)
			perr.Err = fmt.Errorf("the verifier rejected the program: %w", ve.Cause)
		}
		if !ps.Optional {
			return skipped, perr
		}
		g.log.Warn("optional program not loaded", "program", ps.Name, "error", perr.Err)
		delete(cs.Programs, ps.Name)
		skipped = append(skipped, ps.Name)
		if len(cs.Programs) == 0 {
			return skipped, perr
		}
	}
}

// failingProgram finds the program a collection load failed on, and the
// kernel's answer about it alone, by loading the maps without programs and
// then each program alone with the maps (cilium/ebpf names the program only
// in its error text). Only a failed load pays for it. It finds none when
// the maps themselves fail to load.
func (g *Gadget) failingProgram(cs *ebpf.CollectionSpec) (ps ProgramSpec, found bool, err error) {
	only := func(keep string) *ebpf.CollectionSpec {
		one := cs.Copy()
		for name := range one.Programs {
			if name != keep {
				delete(one.Programs, name)
			}
		}
		for _, ms := range one.Maps {
			if ms.Type == ebpf.ProgramArray {
				ms.Contents = nil // they name programs this load leaves out
			}
		}
		return one
	}
	maps, err := ebpf.NewCollectionWithOptions(only(""), g.collectionOptions())
	if err != nil {
		return ProgramSpec{}, false, nil
	}
	maps.Close()
	for _, ps := range g.spec.Programs {
		if _, ok := cs.Programs[ps.Name]; !ok {
			continue
		}
		coll, err := ebpf.NewCollectionWithOptions(only(ps.Name), g.collectionOptions())
		if err == nil {
			coll.Close()
			continue
		}
		// cilium/ebpf wraps the kernel's answer in "program <name>: ";
		// ProgramError names the program already.
		if inner := errors.Unwrap(err); inner != nil {
			err = inner
		}
		return ps, true, err
	}
	return ProgramSpec{}, false, nil
}

func verifierTail(log []string, n int) []string {
	var lines []string
	for _, l := range log {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// Run reads every output stream until ctx is cancelled, emitting batches of
// decoded events to out. On cancellation it detaches the programs first, so
// no new events arrive, then drains what the kernel buffers still hold
// (bounded by drainTimeout) and returns nil. Open must have succeeded. A
// stream that fails (its reader broke, or Close ran while Run was still
// meant to run) stops the others the same way, and Run returns its error.
func (g *Gadget) Run(ctx context.Context, out pipeline.Emitter) error {
	g.closeMu.Lock()
	readers, coll := slices.Clone(g.readers), g.coll
	if coll == nil {
		g.closeMu.Unlock()
		return fmt.Errorf("gadget %q: Run before Open", g.spec.Name)
	}
	// A stream that fails stops the others (and detaches the programs):
	// the gadget as a whole has failed, and its owner decides what next.
	// A gadget whose outputs are only iterators finishes with them: its
	// context ends when they do.
	grp, gctx := errgroup.WithContext(ctx)
	rctx, cancel := context.WithCancel(gctx)
	defer cancel()
	g.running, g.stopRun = true, cancel
	g.closeMu.Unlock()
	defer func() {
		g.closeMu.Lock()
		g.running, g.stopRun = false, nil
		closeNow := g.closeEnd
		g.closeMu.Unlock()
		if closeNow {
			g.Close()
		}
	}()
	stop := context.AfterFunc(rctx, g.detach)
	defer stop()
	for i, r := range readers {
		grp.Go(func() error { return g.readStream(rctx, r, i, out) })
	}
	if len(readers) > 0 {
		grp.Go(func() error { return g.pollLost(rctx, coll, out) })
	}
	grp.Go(func() error {
		err := g.runPeriodic(rctx, out)
		if len(readers) == 0 {
			if err == nil && rctx.Err() == nil {
				g.finished.Store(true)
			}
			cancel()
		}
		return err
	})
	return grp.Wait()
}

// Finished reports whether the last Run returned because the gadget was
// done: its only outputs, iterators or map iterators, took all their
// snapshots (Runs, or one snapshot without an Interval). A source that
// finished is not a failed one. Safe for concurrent use.
func (g *Gadget) Finished() bool { return g.finished.Load() }

// drainTimeout bounds how long a stopping source may spend handing its last
// records downstream.
const drainTimeout = 2 * time.Second

// detach closes the links so programs stop producing. Readers stay open so
// Run can drain them.
func (g *Gadget) detach() {
	g.linksMu.Lock()
	defer g.linksMu.Unlock()
	for _, l := range g.links {
		if err := l.Close(); err != nil {
			g.log.Warn("detach program", "error", err)
		}
	}
	g.links = nil
	for _, c := range g.attached {
		if err := c.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			g.log.Warn("detach program", "error", err)
		}
	}
	g.attached = nil
}

func (g *Gadget) readStream(ctx context.Context, r recordReader, i int, out pipeline.Emitter) error {
	plan, st := g.plans[i], g.spec.Streams[i]
	schema := plan.Schema()
	emitCtx := ctx

	arena := pipeline.NewArena() // see pipeline/arena.go
	// What one record needs of an arena: Append writes its fixed-size
	// fields without checking room (decode.Plan.Room).
	room := max(plan.Size()*2+512, plan.Room())
	// A pipeline takes each batch over (pipeline.BatchEmitter) and moves
	// it through its queues whole; the next batch comes from its pool.
	handOver, _ := out.(pipeline.BatchEmitter)
	var batch []pipeline.Event
	if handOver != nil {
		batch = pipeline.NewBatch(g.cfg.BatchSize)
	} else {
		batch = make([]pipeline.Event, 0, g.cfg.BatchSize)
	}
	clockLeft := 0 // see below
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		var err error
		if handOver != nil {
			err = handOver.EmitBatch(emitCtx, batch)
			batch = pipeline.NewBatch(g.cfg.BatchSize)
			// The handover woke the pipeline's worker onto this P's
			// run queue. Yielding runs it here and now, on a thread
			// that has a CPU, and the reader goes on after it (or on
			// another P, if one is free to take it). Without the
			// yield the runtime woke an idle thread to steal the
			// worker (a futex wake, then a wait for a CPU, which a
			// loaded machine makes long), and the reader, never
			// giving its P up, was preempted by sysmon's signal: the
			// agent spent a fifth more CPU per event (RATIONALE.md).
			runtime.Gosched()
		} else {
			err = out.Emit(emitCtx, batch)
			// The emitter copied the events it kept (pipeline.Emitter):
			// the slice is ours again. Clearing it lets the arenas go
			// once the pipeline is done with their events.
			clear(batch)
			batch = batch[:0]
		}
		clockLeft = 0 // Emit may have waited for room
		if err != nil && emitCtx.Err() == nil {
			return fmt.Errorf("gadget %q stream %q: emit: %w", g.spec.Name, st.Name, err)
		}
		return nil
	}
	draining := false
	// The wall clock is read once per clockEvery records (a burst is read
	// in microseconds) and after every wait, and the read deadline is set
	// from it: reading it per record cost more than decoding some records.
	// A deadline set up to clockEvery records ago is as good: it only
	// bounds a wait, and a wait follows an empty ring, which refreshes it.
	const clockEvery = 64
	var now time.Time
	tick := func() {
		now, clockLeft = time.Now(), clockEvery
		if draining {
			r.SetDeadline(now.Add(-time.Second))
		} else {
			// On a grid of the interval, shared by every reader: idle
			// readers' deadlines fall due together, and the runtime
			// wakes once for all of them instead of once for each.
			r.SetDeadline(now.Add(g.cfg.PollInterval).Truncate(g.cfg.PollInterval))
		}
	}
	for {
		if !draining && ctx.Err() != nil {
			// Detached by now (Run's AfterFunc): read what is left, with
			// a deadline in the past so reads stop at the end of the data.
			draining = true
			var cancel context.CancelFunc
			emitCtx, cancel = context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
			defer cancel()
			clockLeft = 0
		}
		if clockLeft == 0 {
			tick()
		}
		sample, lost, err := r.Read()
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			clockLeft = 0
			if err := flush(); err != nil {
				return err
			}
			pipeline.TrimArenaPool() // the ring was idle: what a burst left pooled goes
			if draining {
				return nil
			}
			continue
		case errors.Is(err, os.ErrClosed):
			if err := flush(); err != nil {
				return err
			}
			if ctx.Err() == nil {
				// Close ran while the gadget was still meant to run.
				return fmt.Errorf("gadget %q: reader of map %q closed while running", g.spec.Name, st.Map)
			}
			return nil
		default:
			return fmt.Errorf("gadget %q: read map %q: %w", g.spec.Name, st.Map, err)
		}
		if lost > 0 {
			// A gadget that counts its failed outputs in <map>_lost_samples
			// is exact; the kernel's perf lost records would count the
			// same events again (and late: only when the next record
			// fits), so they are used only when there is no counter.
			if st.LostMap == "" {
				g.lost[i].Add(lost)
				reportLoss(out, g.cfg.Source, g.spec.Name, lost)
			}
			continue
		}
		if len(sample) == 0 {
			continue
		}
		if cap(arena)-len(arena) < room {
			if plan.Size()*8 > pipeline.ArenaSize || room*4 > pipeline.ArenaSize {
				arena = make([]byte, 0, max(plan.Size()*8, room*4)) // records too large for the pool's arenas
			} else {
				arena = pipeline.NewArena()
			}
		}
		clockLeft--
		seq := g.seq.Add(1)
		start := len(arena)
		arena = plan.Append(arena, sample, seq, now)
		data := arena[start:len(arena):len(arena)]
		batch = append(batch, pipeline.Event{Data: data, Schema: schema, Source: g.cfg.Source, Seq: seq, MntNS: uint32(plan.MntNS(sample))})
		if len(batch) >= g.cfg.BatchSize {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

func reportFiltered(out pipeline.Emitter, source string, n uint64) {
	if fr, ok := out.(pipeline.FilterReporter); ok {
		fr.ReportFiltered(source, n)
	}
}

func reportLoss(out pipeline.Emitter, source, gadget string, n uint64) {
	if lr, ok := out.(pipeline.LossReporter); ok {
		lr.ReportLoss(source, gadget, pipeline.ReasonKernel, n)
	}
}

// pollLost reads the gadgets' <map>_lost_samples counters, which the
// gadget header increments when a ring buffer reserve fails, and reports the
// increase since the last read. Counters are per CPU and only grow, so the
// sum is compared with the previous sum rather than overwritten.
func (g *Gadget) pollLost(ctx context.Context, coll *ebpf.Collection, out pipeline.Emitter) error {
	type counter struct {
		stream int
		m      *ebpf.Map
		last   uint64
	}
	var counters []*counter
	for i, st := range g.spec.Streams {
		if st.LostMap == "" {
			continue
		}
		if m := coll.Maps[st.LostMap]; m != nil {
			counters = append(counters, &counter{stream: i, m: m})
		}
	}
	var discarded *ebpf.Map
	var discardedLast uint64
	if !g.cfg.Filter.IsZero() {
		discarded = g.coll.Maps[filterDiscardedMap]
	}
	if len(counters) == 0 && discarded == nil {
		return nil
	}
	read := func() {
		if discarded != nil {
			if sum, err := sumCounter(discarded); err != nil {
				g.log.Warn("read filter counter", "error", err)
			} else if sum > discardedLast {
				reportFiltered(out, g.cfg.Source, sum-discardedLast)
				g.filtered.Add(sum - discardedLast)
				discardedLast = sum
			}
		}
		for _, c := range counters {
			sum, err := sumCounter(c.m)
			if err != nil {
				g.log.Warn("read lost samples counter", "map", c.m.String(), "error", err)
				continue
			}
			if sum > c.last {
				g.lost[c.stream].Add(sum - c.last)
				reportLoss(out, g.cfg.Source, g.spec.Name, sum-c.last)
				c.last = sum
			}
		}
	}
	t := time.NewTicker(lostPollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			read()
			return nil
		case <-t.C:
			read()
		}
	}
}

func sumCounter(m *ebpf.Map) (uint64, error) {
	var key uint32
	if m.Type() == ebpf.PerCPUArray {
		var vals []uint64
		if err := m.Lookup(&key, &vals); err != nil {
			return 0, err
		}
		var sum uint64
		for _, v := range vals {
			sum += v
		}
		return sum, nil
	}
	var v uint64
	err := m.Lookup(&key, &v)
	return v, err
}

// Close detaches the programs and frees the gadget's kernel resources. It is
// safe to call more than once, and while Run runs: Run then returns an
// error (its readers closed while it was meant to run), and the rest is
// freed as it returns.
func (g *Gadget) Close() error {
	g.closeMu.Lock()
	defer g.closeMu.Unlock()
	if g.running {
		g.closeEnd = true
		if len(g.readers) == 0 && g.stopRun != nil {
			g.stopRun() // only iterators run: nothing to close makes Run end
		}
		var errs []error
		for _, r := range g.readers {
			if err := r.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	var errs []error
	for _, r := range g.readers {
		if err := r.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	g.readers = nil
	g.detach()
	g.filterMu.Lock()
	g.kfilter = nil
	g.filterMu.Unlock()
	g.stacks.clear()
	for _, po := range g.periodic {
		po.iters = nil
	}
	if g.coll != nil {
		g.coll.Close()
		g.coll = nil
	}
	if err := g.removePins(); err != nil {
		errs = append(errs, err)
	}
	if g.enricherHeld {
		enricher.release()
		g.enricherHeld = false
		g.mapReplacements = nil
	}
	return errors.Join(errs...)
}
