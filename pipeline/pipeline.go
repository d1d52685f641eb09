package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// Defaults for the zero values of Spec. They are the config's defaults
// too (config.DefaultBatchMaxEvents and the rest are these constants), so
// a pipeline built from a config without a batch block and one built in
// Go without BatchSize behave alike.
const (
	DefaultBatchSize    = 256
	DefaultBatchDelay   = 50 * time.Millisecond
	DefaultLossInterval = 10 * time.Second
)

// Spec describes a pipeline. It is a plain value: New checks it and builds
// the queues; nothing runs until Pipeline.Run.
type Spec struct {
	Name    string
	Host    string // the agent's name, written into loss records
	Sources []Source
	Stages  []Stage
	Sinks   []Sink

	Queue     QueueConfig // the edge between the sources and the stages
	SinkQueue QueueConfig // one queue per sink; the zero value means "same as Queue"

	BatchSize    int           // most events per stage call and per Sink.Write; 0: DefaultBatchSize
	BatchDelay   time.Duration // longest wait for a full batch; 0: DefaultBatchDelay, < 0: none
	LossInterval time.Duration // how often loss records enter the stream; 0: DefaultLossInterval

	Metrics *Registry    // nil: a private registry (see Pipeline.Metrics)
	Logger  *slog.Logger // nil: discard
}

// Pipeline runs sources, stages and sinks joined by bounded queues. Build it
// with New and call Run once; while it runs, Update changes its components
// in place. Metrics, Name, Edges, Tap and Update are safe for concurrent
// use.
type Pipeline struct {
	name string
	reg  *Registry
	log  *slog.Logger
	loss *LossTracker
	taps *tapSet

	// Settings an update may change; read where they are used.
	host         atomic.Pointer[string]
	batch        atomic.Pointer[batchConfig]
	lossInterval atomic.Int64
	sinkQueue    QueueConfig // Run's loop owns it

	edge  *Queue
	edgeM *ComponentMetrics

	// mu guards the component lists for readers on other goroutines
	// (Edges, flushLoss); each list has one writer, which takes mu to
	// change it: srcs and routes belong to Run's loop, stages and sinks to
	// the worker.
	mu     sync.Mutex
	srcs   []*sourceRT // the running sources
	stages []*stageRT
	// routes are the queues to the sinks, each with its writer: one per
	// sink of the spec, then one per dead-letter sink of the stages, fed
	// only by failed batches (no loss records), and those an update
	// removed that are still draining.
	routes []*sinkRT
	sinks  []*sinkRT // the routes of spec.Sinks: what fanOut and flushLoss feed

	updates chan *update
	stopped chan struct{} // closed when Run stops taking updates
	kick    chan struct{} // wakes the worker for a pending workerUpdate
	pending atomic.Pointer[workerUpdate]
	ran     atomic.Bool
}

type batchConfig struct {
	size  int
	delay time.Duration
}

type sourceRT struct {
	src Source
	m   *ComponentMetrics
	em  *sourceEmitter

	// Set when the source starts (Run's loop); done is closed once its
	// Run has returned, and err then holds its failure.
	cancel  context.CancelFunc
	done    chan struct{}
	err     error
	removed bool
}

type sinkRT struct {
	key      string // the queue's name: "sink.NAME" or "deadletter.NAME"
	sinkName string
	m        *ComponentMetrics
	q        *Queue
	sinkErr  *Counter
	shutdown *Counter
	latency  *Histogram
	tap      *tapPoint

	sink Sink // owned by the writer once Run starts
	// want is the sink the route writes to once pending swaps are done
	// (Run's loop owns it); next hands a new sink to the writer.
	want Sink
	next atomic.Pointer[sinkSwap]
	kick chan struct{}
	// removed is set when an update drops the route.
	removed atomic.Bool
	done    chan struct{} // closed when the writer has returned
	cancel  context.CancelFunc
	// kept are loss records of failed writes, written again ahead of the
	// next batch; owned by the sink's writer goroutine.
	kept            []Event
	keptReason      string // why the last write that kept loss records failed
	lossRecordsLost *Counter
	// inflight is the batch the writer has handed to Sink.Write and not
	// had back yet; abandoned is set when Run gave up waiting for that
	// Write (a sink stuck in a write past the grace period): the batch is
	// then counted as dropped, and the writer counts nothing more.
	inflightMu sync.Mutex
	inflight   []Event
	abandoned  bool
}

type sinkSwap struct {
	sink Sink
	done chan struct{} // closed once the writer writes to sink
}

// New checks spec and builds a pipeline from it.
func New(spec Spec) (*Pipeline, error) {
	if err := checkSpec(spec); err != nil {
		return nil, fmt.Errorf("create pipeline %q: %w", spec.Name, err)
	}
	p := &Pipeline{
		name:    spec.Name,
		reg:     spec.Metrics,
		log:     spec.Logger,
		loss:    NewLossTracker(),
		taps:    newTapSet(),
		updates: make(chan *update),
		stopped: make(chan struct{}),
		kick:    make(chan struct{}, 1),
	}
	if p.reg == nil {
		p.reg = NewRegistry()
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.log = p.log.With("pipeline", spec.Name)
	p.setSettings(spec)

	var err error
	p.edgeM = p.reg.Component("pipeline", spec.Name)
	if p.edge, err = NewQueue("pipeline."+spec.Name, spec.Queue, p.edgeM, p.loss); err != nil {
		return nil, fmt.Errorf("create pipeline %q: %w", spec.Name, err)
	}
	for _, src := range spec.Sources {
		p.srcs = append(p.srcs, p.newSourceRT(src))
	}
	lay, err := p.layout(spec)
	if err != nil {
		return nil, fmt.Errorf("create pipeline %q: %w", spec.Name, err)
	}
	p.stages, p.sinks, p.routes = lay.stages, lay.sinks, lay.newRoutes
	return p, nil
}

// setSettings stores the settings of spec that are not components.
func (p *Pipeline) setSettings(spec Spec) {
	host := spec.Host
	p.host.Store(&host)
	p.batch.Store(&batchConfig{size: cmp.Or(spec.BatchSize, DefaultBatchSize), delay: cmp.Or(spec.BatchDelay, DefaultBatchDelay)})
	p.lossInterval.Store(int64(cmp.Or(spec.LossInterval, DefaultLossInterval)))
	p.sinkQueue = spec.SinkQueue
	if p.sinkQueue == (QueueConfig{}) {
		p.sinkQueue = spec.Queue
	}
}

func (p *Pipeline) newSourceRT(src Source) *sourceRT {
	m := p.reg.Component("source", src.Name())
	if dr, ok := src.(DropReasonsReporter); ok {
		m.DropReasons(dr.DropReasons()...)
	}
	return &sourceRT{
		src: src,
		m:   m,
		em: &sourceEmitter{component: "source." + src.Name(), m: m, q: p.edge, loss: p.loss,
			tap: p.taps.point("source." + src.Name())},
	}
}

func (p *Pipeline) newRoute(key string, sk Sink) (*sinkRT, error) {
	m := p.reg.Component("sink", sk.Name())
	if dr, ok := sk.(DropReasonsReporter); ok {
		m.DropReasons(dr.DropReasons()...)
	}
	q, err := NewQueue(key, p.sinkQueue, m, p.loss)
	if err != nil {
		return nil, err
	}
	return &sinkRT{
		key: key, sinkName: sk.Name(), m: m, q: q,
		sinkErr:  m.Dropped(ReasonSinkError),
		shutdown: m.Dropped(ReasonShutdown),
		latency: p.reg.latencyHistogram(MetricSinkLatency, "Time from an event's timestamp to the end of the sink write that delivered it.",
			"component", "sink", "name", sk.Name()),
		tap:  p.taps.point("sink." + sk.Name()),
		sink: sk, want: sk,
		kick:            make(chan struct{}, 1),
		done:            make(chan struct{}),
		lossRecordsLost: m.Counter(MetricLossRecordsLost, "Loss records a sink could not write, after keeping them for later writes."),
	}, nil
}

// layout is what a spec's stages and sinks come to, given the routes and
// stages the pipeline has: components the spec names by the same value are
// kept (their queues, their state), the others are new.
type layout struct {
	stages    []*stageRT
	sinks     []*sinkRT // routes of spec.Sinks, in order
	routes    []*sinkRT // every route the spec needs
	newRoutes []*sinkRT
	swaps     []*sinkRT // kept routes whose sink is a new value (in want)
}

func (p *Pipeline) layout(spec Spec) (*layout, error) {
	lay := &layout{}
	existing := map[string]*sinkRT{}
	for _, r := range p.routes {
		if !r.removed.Load() {
			existing[r.key] = r
		}
	}
	route := func(key string, sk Sink) (*sinkRT, error) {
		if r := slices.IndexFunc(lay.routes, func(r *sinkRT) bool { return r.key == key }); r >= 0 {
			return lay.routes[r], nil
		}
		r := existing[key]
		switch {
		case r == nil:
			var err error
			if r, err = p.newRoute(key, sk); err != nil {
				return nil, err
			}
			lay.newRoutes = append(lay.newRoutes, r)
		case r.want != sk:
			lay.swaps = append(lay.swaps, r)
		}
		lay.routes = append(lay.routes, r)
		return r, nil
	}
	for _, sk := range spec.Sinks {
		r, err := route("sink."+sk.Name(), sk)
		if err != nil {
			return nil, err
		}
		lay.sinks = append(lay.sinks, r)
	}
	for _, st := range spec.Stages {
		i := slices.IndexFunc(p.stages, func(rt *stageRT) bool { return rt.st == st })
		if i >= 0 {
			lay.stages = append(lay.stages, p.stages[i])
			continue
		}
		rt := p.newStageRT(st)
		var sk Sink
		if ep, ok := st.(ErrorPolicy); ok {
			rt.action, sk = ep.OnError()
		}
		if rt.action == ErrorDeadLetter {
			if sk == nil {
				return nil, fmt.Errorf("stage %s routes failed batches to a dead-letter sink but names none", st.Name())
			}
			r, err := route("deadletter."+sk.Name(), sk)
			if err != nil {
				return nil, err
			}
			rt.deadLetter = r
		}
		lay.stages = append(lay.stages, rt)
	}
	// A kept stage keeps its dead-letter route.
	for _, rt := range lay.stages {
		if rt.deadLetter != nil && !slices.Contains(lay.routes, rt.deadLetter) {
			lay.routes = append(lay.routes, rt.deadLetter)
		}
	}
	return lay, nil
}

func checkSpec(spec Spec) error {
	if spec.Name == "" {
		return errors.New("check spec: name is empty")
	}
	if len(spec.Sources) == 0 {
		return errors.New("check spec: no sources")
	}
	if len(spec.Sinks) == 0 {
		return errors.New("check spec: no sinks")
	}
	if spec.BatchSize < 0 {
		return fmt.Errorf("check spec: batch size %d is negative", spec.BatchSize)
	}
	if spec.LossInterval < 0 {
		return fmt.Errorf("check spec: loss interval %s is negative", spec.LossInterval)
	}
	return errors.Join(
		uniqueNames("source", spec.Sources),
		uniqueNames("stage", spec.Stages),
		uniqueNames("sink", spec.Sinks),
	)
}

// uniqueNames checks that items are non-nil and named apart, since metrics
// and loss records tell components by name.
func uniqueNames[T interface{ Name() string }](kind string, items []T) error {
	seen := make(map[string]bool, len(items))
	for i, it := range items {
		if any(it) == nil {
			return fmt.Errorf("check spec: %s %d is nil", kind, i)
		}
		if seen[it.Name()] {
			return fmt.Errorf("check spec: %s name %q is used twice", kind, it.Name())
		}
		seen[it.Name()] = true
	}
	return nil
}

// Name returns the pipeline's name. Safe for concurrent use.
func (p *Pipeline) Name() string { return p.name }

// Metrics returns the registry the pipeline counts on. Safe for concurrent
// use.
func (p *Pipeline) Metrics() *Registry { return p.reg }

// QueueStat is the fill of one of a pipeline's queues at one moment.
type QueueStat struct {
	Name   string // pipeline.NAME (the edge), sink.NAME, deadletter.NAME
	Events int
	Bytes  int
	Config QueueConfig // the limits, defaults applied
}

// Queues returns the fill of the edge queue and of every sink queue. Safe
// for concurrent use.
func (p *Pipeline) Queues() []QueueStat {
	p.mu.Lock()
	routes := slices.Clone(p.routes)
	p.mu.Unlock()
	out := make([]QueueStat, 0, 1+len(routes))
	for _, q := range append([]*Queue{p.edge}, queuesOf(routes)...) {
		n, b, cfg := q.Fill()
		out = append(out, QueueStat{Name: q.name, Events: n, Bytes: b, Config: cfg})
	}
	return out
}

func queuesOf(routes []*sinkRT) []*Queue {
	out := make([]*Queue, len(routes))
	for i, r := range routes {
		out[i] = r.q
	}
	return out
}

// Run runs the pipeline until ctx is cancelled or every source has returned,
// then shuts down: the edge queue is closed and drained through the stages
// into the sink queues, loss records are flushed, the sink queues drain, and
// the stages and sinks are closed. The shutdown is bounded by grace, counted
// from the moment the sources have stopped, on a context detached from ctx;
// whatever is still queued when grace runs out is counted as dropped
// ("shutdown"). A source that fails is logged and counted and the others go
// on. Run returns nil after a clean shutdown, else the joined errors of the
// sources and of Stage.Close and Sink.Close. Run may be called once; it is
// not safe to call concurrently.
func (p *Pipeline) Run(ctx context.Context, grace time.Duration) error {
	if !p.ran.CompareAndSwap(false, true) {
		return fmt.Errorf("run pipeline %q: already run", p.name)
	}
	// Stages and sinks keep running after ctx is cancelled, to drain; only
	// the grace timer stops them.
	base := context.WithoutCancel(ctx)
	drainCtx, cancelDrain := context.WithCancel(base)
	defer cancelDrain()

	rs := &runState{drainCtx: drainCtx, grace: grace, exited: make(chan *sourceRT), workerDone: make(chan struct{})}
	for _, s := range p.routes {
		p.startWriter(rs, s)
	}
	tickCtx, stopTick := context.WithCancel(drainCtx)
	tickDone := make(chan struct{})
	rs.g.Go(func() error {
		defer close(tickDone)
		p.flushLossEvery(tickCtx)
		return nil
	})
	rs.g.Go(func() error {
		defer close(rs.workerDone)
		p.work(drainCtx, stopTick, tickDone)
		return nil
	})

	srcErr := p.runSources(ctx, rs)

	deadline := time.Now().Add(grace)
	graceTimer := time.AfterFunc(grace, cancelDrain)
	defer graceTimer.Stop()
	p.edge.Close()
	p.waitDrained(rs, drainCtx)

	// Everything still queued now missed the grace period. The queues are
	// closed, so nothing can arrive after the count.
	dropped := p.edge.discard(ReasonShutdown)
	for _, s := range p.routes {
		dropped += s.q.discard(ReasonShutdown)
	}
	if dropped > 0 {
		p.log.Warn("grace period ran out; dropped queued events", "grace", grace, "dropped", dropped)
	}

	closeCtx, cancelClose := context.WithDeadline(base, deadline)
	defer cancelClose()
	err := errors.Join(srcErr, p.closeAll(closeCtx))
	p.taps.closeAll()
	return err
}

// stuckWriteGrace is how long Run waits, past the grace period, for a
// sink's Write that ignores its context before it gives up on it.
const stuckWriteGrace = time.Second

// waitDrained waits for the writers, the worker and the loss ticker to
// return. They all return once the grace period ends (drainCtx), except a
// writer inside a Sink.Write that does not return (a write(2) into a pipe
// nobody reads, a server that accepts no bytes): stuckWriteGrace after the
// grace period such writers are abandoned, their batches counted as
// dropped (shutdown), so that a stalled sink cannot keep the agent from
// stopping.
func (p *Pipeline) waitDrained(rs *runState, drainCtx context.Context) {
	all := make(chan struct{})
	go func() {
		_ = rs.g.Wait() // the goroutines return nil; failures are counted where they happen
		close(all)
	}()
	select {
	case <-all:
		return
	case <-drainCtx.Done():
	}
	select {
	case <-all:
		return
	case <-time.After(stuckWriteGrace):
	}
	p.mu.Lock()
	routes := slices.Clone(p.routes)
	p.mu.Unlock()
	for _, s := range routes {
		select {
		case <-s.done:
			continue
		default:
		}
		s.inflightMu.Lock()
		lost := s.inflight
		s.inflight, s.abandoned = nil, true
		s.inflightMu.Unlock()
		s.shutdown.Add(uint64(len(lost)))
		trackLoss(p.loss, s.q.name, ReasonShutdown, lost)
		s.q.Close()
		p.log.Warn("sink stuck in a write past the grace period; abandoned", "sink", s.sinkName, "dropped", len(lost))
	}
	// The worker and the loss ticker follow the grace period; only
	// abandoned writers are left out.
	<-rs.workerDone
}

// runState is what one Run shares with the updates it applies.
type runState struct {
	g          errgroup.Group // writers, the worker, the loss ticker, sink closes
	drainCtx   context.Context
	grace      time.Duration
	exited     chan *sourceRT // a source's Run returned
	workerDone chan struct{}
}

// runSources runs the sources and applies updates until ctx is cancelled
// or no source is left running; it then waits for every source to return.
// One failing source does not stop the others.
func (p *Pipeline) runSources(ctx context.Context, rs *runState) error {
	running := 0
	for _, s := range p.srcs {
		p.startSource(ctx, rs, s)
		running++
	}
	var errs []error
	exited := func(s *sourceRT) {
		running--
		if s.err != nil {
			errs = append(errs, s.err)
		}
		if !s.removed {
			p.mu.Lock()
			p.srcs = slices.DeleteFunc(p.srcs, func(x *sourceRT) bool { return x == s })
			p.mu.Unlock()
		}
	}
loop:
	for running > 0 {
		select {
		case <-ctx.Done():
			break loop
		case s := <-rs.exited:
			exited(s)
		case u := <-p.updates:
			running += p.apply(ctx, rs, u)
		}
	}
	close(p.stopped)
	for running > 0 {
		exited(<-rs.exited)
	}
	return errors.Join(errs...)
}

// startSource runs s on a context of its own, so that an update can stop
// it alone. runSources waits for it (rs.exited).
func (p *Pipeline) startSource(ctx context.Context, rs *runState, s *sourceRT) {
	sctx, cancel := context.WithCancel(ctx)
	s.cancel, s.done = cancel, make(chan struct{})
	go func() {
		err := s.src.Run(sctx, s.em)
		if err != nil && sctx.Err() != nil && errors.Is(err, sctx.Err()) {
			err = nil // a source that reports the cancellation it was asked for
		}
		switch {
		case err != nil:
			s.m.Errors.Inc()
			p.log.Error("source failed", "source", s.src.Name(), "error", err)
			s.err = fmt.Errorf("run source %s: %w", s.src.Name(), err)
		case sctx.Err() == nil:
			p.log.Info("source finished", "source", s.src.Name())
		}
		cancel()
		close(s.done)
		rs.exited <- s
	}()
}

// startWriter starts the writer of route s.
func (p *Pipeline) startWriter(rs *runState, s *sinkRT) {
	wctx, cancel := context.WithCancel(rs.drainCtx)
	s.cancel = cancel
	rs.g.Go(func() error {
		defer cancel()
		p.writeSink(wctx, s)
		return nil
	})
}

// work moves batches from the edge queue through the stages into every sink
// queue until the edge queue is drained (or the grace period ends), calling
// the stages' tickers when they are due and switching to the stages and
// sinks of an update between two batches, then ticks a last time, flushes
// the loss records one last time and closes the sink queues.
func (p *Pipeline) work(ctx context.Context, stopTick context.CancelFunc, tickDone <-chan struct{}) {
	var lim LogLimiter
	tickTimer := time.NewTimer(time.Hour)
	tickTimer.Stop()
	defer tickTimer.Stop()
	var tickC <-chan time.Time
	resetTick := func() {
		tickC = nil
		if next := p.nextTick(); !next.IsZero() {
			tickTimer.Reset(time.Until(next))
			tickC = tickTimer.C
		}
	}
	p.startTickers(time.Now())
	resetTick()
	for {
		if wu := p.pending.Swap(nil); wu != nil {
			p.switchTo(ctx, wu, &lim)
			resetTick()
		}
		bc := p.batch.Load()
		batch, err := p.edge.popBatch(ctx, bc.size, bc.delay, tickC, p.kick)
		if err == errWoken {
			if now := time.Now(); tickC != nil && !now.Before(p.nextTick()) {
				p.runTicks(ctx, now, false, &lim)
				resetTick()
			}
			continue
		}
		if err != nil {
			break // io.EOF, or the grace period ended: Run counts what is left
		}
		if ctx.Err() != nil {
			// Popped after the grace period ended: no time to process it.
			p.edge.drop(p.edge.dropShutdown, ReasonShutdown, batch)
			ReleaseBatch(batch)
			break
		}
		p.edgeM.Sent.Add(uint64(len(batch)))
		cur, owned := batch, true
		for _, st := range p.stages {
			cur, owned = p.runStage(ctx, st, cur, owned, &lim)
		}
		p.fanOut(ctx, cur, owned)
		if tickC != nil {
			if now := time.Now(); !now.Before(p.nextTick()) {
				p.runTicks(ctx, now, false, &lim)
				resetTick()
			}
		}
	}
	if tickC != nil && ctx.Err() == nil {
		p.runTicks(ctx, time.Now(), true, &lim)
	}
	stopTick()
	<-tickDone // no periodic flush may race the final one past the close below
	p.flushLoss()
	p.mu.Lock()
	routes := slices.Clone(p.routes)
	p.mu.Unlock()
	for _, s := range routes {
		s.q.Close()
	}
}

// fanOut hands a batch to every sink's queue. When the worker owns the
// batch's array (owned), the last sink's queue takes it over and the
// others get copies.
func (p *Pipeline) fanOut(ctx context.Context, batch []Event, owned bool) {
	// Drops and a cancelled context are counted by the queues.
	for i, s := range p.sinks {
		if owned && i == len(p.sinks)-1 {
			_ = s.q.pushBatch(ctx, batch)
			return
		}
		_ = s.q.Push(ctx, batch)
	}
	if owned {
		ReleaseBatch(batch)
	}
}

// sameBacking reports whether a and b share a backing array end, which
// slices of the same array do.
func sameBacking(a, b []Event) bool {
	if cap(a) == 0 || cap(b) == 0 {
		return false
	}
	return &a[:cap(a)][cap(a)-1] == &b[:cap(b)][cap(b)-1]
}

// writeSink feeds one sink from its queue until the queue is closed and
// drained, or ctx ends (the grace period, or an update giving up on a
// removed route). Between two writes it switches to the sink an update
// swapped in.
func (p *Pipeline) writeSink(ctx context.Context, s *sinkRT) {
	defer close(s.done)
	var lim LogLimiter
	// write reports false when Run abandoned the write (see waitDrained):
	// the route is over, and the batch was counted there.
	write := func(batch []Event) bool {
		s.tap.offer(batch)
		s.inflightMu.Lock()
		s.inflight = batch
		s.inflightMu.Unlock()
		err := s.sink.Write(ctx, batch)
		s.inflightMu.Lock()
		s.inflight = nil
		abandoned := s.abandoned
		s.inflightMu.Unlock()
		switch {
		case abandoned:
			return false
		case err != nil:
			lost := p.countWriteError(s, batch, err, ctx.Err() != nil)
			if ok, suppressed := lim.Allow(time.Now()); ok {
				p.log.Warn("sink write failed; events dropped", "sink", s.sinkName,
					"events", lost, "of", len(batch), "error", err, "suppressed", suppressed)
			}
		default:
			s.m.Sent.Add(uint64(len(batch)))
			s.latency.observeSince(time.Now().UnixNano(), batch)
		}
		return true
	}
	// Loss records kept from failed writes go ahead of the next batch, or,
	// when none comes, on their own after a backoff (from the loss
	// interval, at most 1s, doubling to 30s).
	var retry *time.Timer
	firstRetry := min(time.Duration(p.lossInterval.Load()), time.Second)
	retryDelay := firstRetry
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		if sw := s.next.Swap(nil); sw != nil {
			// The update that swapped closes the old sink, unless another
			// route still writes to it.
			s.sink = sw.sink
			close(sw.done)
		}
		batchSize, batchDelay := p.sinkBatch(s.sink)
		var wake <-chan time.Time
		if len(s.kept) > 0 {
			if retry == nil {
				retry = time.NewTimer(retryDelay)
			}
			wake = retry.C
		}
		buf, err := s.q.popBatch(ctx, batchSize, batchDelay, wake, s.kick)
		if err == errWoken {
			if retry != nil && !retry.Stop() { // the retry timer fired
				if !write(s.withKept(nil)) {
					return
				}
				retryDelay = min(2*retryDelay, 30*time.Second)
			}
			retry = nil // an update kicked: the timer starts again after the swap
			continue
		}
		if err != nil {
			break
		}
		if ctx.Err() != nil {
			// Popped after the grace period ended: there is no time to write.
			s.shutdown.Add(uint64(len(buf)))
			trackLoss(p.loss, s.q.name, ReasonShutdown, buf)
			ReleaseBatch(buf)
			break
		}
		if !write(s.withKept(buf)) {
			return // abandoned: the sink may still hold buf
		}
		if len(s.kept) == 0 {
			retryDelay = firstRetry
		}
		ReleaseBatch(buf) // written: the events' Data goes while waiting for the next batch
	}
	// Loss records kept from failed writes get a last try.
	if len(s.kept) > 0 && ctx.Err() == nil {
		write(s.withKept(nil))
	}
	p.dropKept(s, ctx.Err() != nil)
}

func (p *Pipeline) closeSink(ctx context.Context, s *sinkRT, sk Sink) {
	if err := sk.Close(ctx); err != nil {
		s.m.Errors.Inc()
		p.log.Warn("close sink", "sink", sk.Name(), "error", err)
	}
}

func (p *Pipeline) flushLossEvery(ctx context.Context) {
	interval := time.Duration(p.lossInterval.Load())
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.flushLoss()
			if d := time.Duration(p.lossInterval.Load()); d != interval {
				interval = d
				t.Reset(d)
			}
		}
	}
}

// flushLoss puts the loss records gathered since the last flush into every
// sink's queue.
func (p *Pipeline) flushLoss() {
	p.mu.Lock()
	sinks := slices.Clone(p.sinks)
	p.mu.Unlock()
	for _, rec := range p.loss.Flush(time.Now(), *p.host.Load()) {
		for _, s := range sinks {
			s.q.PushControl(rec)
		}
	}
}

func (p *Pipeline) closeAll(ctx context.Context) error {
	stages := p.stages
	if wu := p.pending.Swap(nil); wu != nil { // an update the worker never took
		for _, st := range wu.stages {
			if !slices.Contains(stages, st) {
				stages = append(stages, st)
			}
		}
	}
	var errs []error
	for _, st := range stages {
		if err := st.st.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close stage %s: %w", st.st.Name(), err))
		}
	}
	// Sinks close in parallel so that one slow flush does not eat the
	// others' share of the grace period. A sink with two routes (ordinary
	// and dead-letter) is closed once.
	type closing struct {
		sink Sink
		rt   *sinkRT
	}
	var toClose []closing
	add := func(sk Sink, rt *sinkRT) {
		if !slices.ContainsFunc(toClose, func(c closing) bool { return c.sink == sk }) {
			toClose = append(toClose, closing{sk, rt})
		}
	}
	for _, s := range p.routes {
		add(s.sink, s)
		if sw := s.next.Swap(nil); sw != nil {
			close(sw.done)
			add(sw.sink, s)
		}
	}
	// A sink whose Close ignores ctx (stuck behind a write that never
	// returns) is not waited for past the deadline, or stuckWriteGrace
	// when the grace period is already spent.
	type closed struct {
		i   int
		err error
	}
	results := make(chan closed, len(toClose))
	for i, c := range toClose {
		go func() {
			err := c.sink.Close(ctx)
			if err != nil {
				c.rt.m.Errors.Inc()
				err = fmt.Errorf("close sink %s: %w", c.sink.Name(), err)
			}
			results <- closed{i, err}
		}()
	}
	wait := stuckWriteGrace
	if d, ok := ctx.Deadline(); ok {
		wait = max(time.Until(d), stuckWriteGrace)
	}
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	sinkErrs := make([]error, len(toClose))
	pending := len(toClose)
	for pending > 0 {
		select {
		case r := <-results:
			sinkErrs[r.i] = r.err
			toClose[r.i].sink = nil
			pending--
		case <-timeout.C:
			for i, c := range toClose {
				if c.sink != nil {
					c.rt.m.Errors.Inc()
					sinkErrs[i] = fmt.Errorf("close sink %s: still closing after the grace period; abandoned", c.sink.Name())
				}
			}
			pending = 0
		}
	}
	return errors.Join(append(errs, sinkErrs...)...)
}

// sourceEmitter is the Emitter each source gets: it counts the source's
// events and reports its kernel-side losses.
type sourceEmitter struct {
	component string
	m         *ComponentMetrics
	q         *Queue
	loss      *LossTracker
	tap       *tapPoint
}

var (
	_ BatchEmitter   = (*sourceEmitter)(nil)
	_ LossReporter   = (*sourceEmitter)(nil)
	_ FilterReporter = (*sourceEmitter)(nil)
	_ Emitter        = (*Queue)(nil)
)

// Emit hands batch to the edge queue. The source counts every event as sent;
// the queue counts its own drops.
func (e *sourceEmitter) Emit(ctx context.Context, batch []Event) error {
	n := uint64(len(batch))
	e.m.Received.Add(n)
	e.tap.offer(batch)
	err := e.q.Push(ctx, batch)
	e.m.Sent.Add(n)
	return err
}

// EmitBatch is Emit of a batch the edge queue takes over
// (BatchEmitter).
func (e *sourceEmitter) EmitBatch(ctx context.Context, batch []Event) error {
	n := uint64(len(batch))
	e.m.Received.Add(n)
	e.tap.offer(batch)
	err := e.q.pushBatch(ctx, batch)
	e.m.Sent.Add(n)
	return err
}

// ReportLoss counts events lost before the source saw them as received and
// dropped, so that received = sent + dropped holds for the source.
func (e *sourceEmitter) ReportLoss(source, gadget, reason string, count uint64) {
	if count == 0 {
		return
	}
	e.m.Received.Add(count)
	e.m.Dropped(reason).Add(count)
	e.loss.Add(source, gadget, e.component, reason, count, 0, 0)
}

// ReportFiltered counts events a source filtered out before emitting them
// as received and dropped ("filtered").
func (e *sourceEmitter) ReportFiltered(_ string, count uint64) {
	if count == 0 {
		return
	}
	e.m.Received.Add(count)
	e.m.Dropped(ReasonFiltered).Add(count)
}
