package sources

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"os"
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

// Defaults for buffer sizing; see DESIGN.md §1 on why they are MiBs.
const (
	DefaultRingBufferSize = 8 << 20
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
	Logger       *slog.Logger
	// Seq numbers the events; nil gives the gadget a counter of its own.
	// A source that is restarted or replaced (a reload) passes the
	// counter of its predecessor, so that its numbers go on.
	Seq *atomic.Uint64
}

// Gadget is a pipeline source reading one gadget's output streams.
type Gadget struct {
	spec   *GadgetSpec
	cfg    GadgetConfig
	params map[string][]byte
	plans  []*decode.Plan
	log    *slog.Logger
	seq    *atomic.Uint64
	lost   []atomic.Uint64 // kernel losses per stream, summed over CPUs
	coll   *ebpf.Collection
	// closeMu serialises Close with Run's start and end: Close while Run
	// runs closes the readers (which ends Run with an error) and leaves
	// the rest to Run's end, when nothing reads the maps any more.
	closeMu  sync.Mutex
	running  bool
	closeEnd bool
	linksMu  sync.Mutex
	links    []link.Link
	readers  []recordReader
	skipped  []string // optional programs that did not attach
}

var _ pipeline.Source = (*Gadget)(nil)

// NewGadget validates parameters and compiles one decode plan per stream.
// It does not touch the kernel.
func NewGadget(spec *GadgetSpec, cfg GadgetConfig) (*Gadget, error) {
	params, err := spec.encodeParams(cfg.Params)
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
	g := &Gadget{spec: spec, cfg: cfg, params: params, log: log.With("source", cfg.Source, "gadget", spec.Name), seq: cfg.Seq}
	if g.seq == nil {
		g.seq = new(atomic.Uint64)
	}
	for _, st := range spec.Streams {
		plan, err := decode.Compile(st.EventType, decode.Options{Gadget: spec.Name, Source: cfg.Source, Host: cfg.Host})
		if err != nil {
			return nil, fmt.Errorf("gadget %q stream %q: %w", spec.Name, st.Name, err)
		}
		g.plans = append(g.plans, plan)
	}
	g.lost = make([]atomic.Uint64, len(spec.Streams))
	return g, nil
}

// Name returns the source's config name.
func (g *Gadget) Name() string { return g.cfg.Source }

// Spec returns the gadget's spec.
func (g *Gadget) Spec() *GadgetSpec { return g.spec }

// Schemas returns the event schema of each stream, in stream order.
func (g *Gadget) Schemas() []*pipeline.Schema {
	out := make([]*pipeline.Schema, len(g.plans))
	for i, p := range g.plans {
		out[i] = p.Schema()
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
	g.sizeBuffers(cs)
	skipped, err := g.loadCollection(cs)
	if err != nil {
		return err
	}
	g.skipped = skipped
	for _, ps := range g.spec.Programs {
		prog, ok := g.coll.Programs[ps.Name]
		if !ok {
			continue // an optional program the kernel refused to load
		}
		l, err := attachProgram(ps, prog)
		if err != nil {
			perr := &ProgramError{Gadget: g.spec.Name, Program: ps.Name, Section: ps.Section, Op: "attach", Err: err}
			if ps.Optional {
				g.log.Warn("optional program not attached", "program", ps.Name, "error", perr.Err)
				g.skipped = append(g.skipped, ps.Name)
				continue
			}
			return perr
		}
		g.links = append(g.links, l)
	}
	if len(g.links) == 0 {
		return fmt.Errorf("gadget %q: no program could be attached", g.spec.Name)
	}
	for _, st := range g.spec.Streams {
		r, err := openReader(g.coll.Maps[st.Map], st, g.perfBufferSize())
		if err != nil {
			return fmt.Errorf("gadget %q: open reader for map %q: %w", g.spec.Name, st.Map, err)
		}
		g.readers = append(g.readers, r)
	}
	return nil
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
		coll, err := ebpf.NewCollectionWithOptions(cs, ebpf.CollectionOptions{})
		if err == nil {
			g.coll = coll
			return skipped, nil
		}
		ps, found := g.failingProgram(cs, err)
		if !found {
			return skipped, fmt.Errorf("load gadget %q: %w", g.spec.Name, err)
		}
		perr := &ProgramError{Gadget: g.spec.Name, Program: ps.Name, Section: ps.Section, Op: "load", Err: err}
		if hint := loadFeatureHint(ps.Attach); hint != "" {
			perr.Err = fmt.Errorf("%w (%s): %w", ErrKernelFeature, hint, err)
		}
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
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

// failingProgram finds the program a collection load error is about;
// cilium/ebpf prefixes such errors with "program <name>:".
func (g *Gadget) failingProgram(cs *ebpf.CollectionSpec, err error) (ProgramSpec, bool) {
	msg := err.Error()
	for _, ps := range g.spec.Programs {
		if _, ok := cs.Programs[ps.Name]; !ok {
			continue
		}
		if strings.Contains(msg, "program "+ps.Name+":") {
			return ps, true
		}
	}
	return ProgramSpec{}, false
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
	if len(readers) == 0 {
		g.closeMu.Unlock()
		return fmt.Errorf("gadget %q: Run before Open", g.spec.Name)
	}
	g.running = true
	g.closeMu.Unlock()
	defer func() {
		g.closeMu.Lock()
		g.running = false
		closeNow := g.closeEnd
		g.closeMu.Unlock()
		if closeNow {
			g.Close()
		}
	}()
	// A stream that fails stops the others (and detaches the programs):
	// the gadget as a whole has failed, and its owner decides what next.
	grp, rctx := errgroup.WithContext(ctx)
	stop := context.AfterFunc(rctx, g.detach)
	defer stop()
	for i, r := range readers {
		grp.Go(func() error { return g.readStream(rctx, r, i, out) })
	}
	grp.Go(func() error { return g.pollLost(rctx, coll, out) })
	return grp.Wait()
}

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
}

func (g *Gadget) readStream(ctx context.Context, r recordReader, i int, out pipeline.Emitter) error {
	plan, st := g.plans[i], g.spec.Streams[i]
	schema := plan.Schema()
	emitCtx := ctx

	const arenaSize = 256 << 10
	arena := make([]byte, 0, arenaSize)
	batch := make([]pipeline.Event, 0, g.cfg.BatchSize)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := out.Emit(emitCtx, batch)
		// The queue keeps the events it accepted; give it a fresh slice.
		batch = make([]pipeline.Event, 0, g.cfg.BatchSize)
		if err != nil && emitCtx.Err() == nil {
			return fmt.Errorf("gadget %q stream %q: emit: %w", g.spec.Name, st.Name, err)
		}
		return nil
	}
	draining := false
	for {
		if !draining && ctx.Err() != nil {
			// Detached by now (Run's AfterFunc): read what is left, with
			// a deadline in the past so reads stop at the end of the data.
			draining = true
			var cancel context.CancelFunc
			emitCtx, cancel = context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
			defer cancel()
		}
		if draining {
			r.SetDeadline(time.Now().Add(-time.Second))
		} else {
			r.SetDeadline(time.Now().Add(g.cfg.PollInterval))
		}
		sample, lost, err := r.Read()
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			if err := flush(); err != nil {
				return err
			}
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
		if cap(arena)-len(arena) < plan.Size()*2+512 {
			arena = make([]byte, 0, max(arenaSize, plan.Size()*8))
		}
		seq := g.seq.Add(1)
		start := len(arena)
		arena = plan.Append(arena, sample, seq, time.Now())
		data := arena[start:len(arena):len(arena)]
		batch = append(batch, pipeline.Event{Data: data, Schema: schema, Source: g.cfg.Source, Seq: seq})
		if len(batch) >= g.cfg.BatchSize {
			if err := flush(); err != nil {
				return err
			}
		}
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
	if len(counters) == 0 {
		return nil
	}
	read := func() {
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
	if g.coll != nil {
		g.coll.Close()
		g.coll = nil
	}
	return errors.Join(errs...)
}
