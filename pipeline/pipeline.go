package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// Defaults for the zero values of Spec.
const (
	DefaultBatchSize    = 256
	DefaultBatchDelay   = 5 * time.Millisecond
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
// with New and call Run once. Metrics and Name are safe for concurrent use.
type Pipeline struct {
	name         string
	host         string
	batchSize    int
	batchDelay   time.Duration
	lossInterval time.Duration
	reg          *Registry
	log          *slog.Logger
	loss         *LossTracker

	edge    *Queue
	edgeM   *ComponentMetrics
	sources []*sourceRT
	stages  []*stageRT
	// routes are the queues to the sinks, each with its writer: one per
	// sink of the spec, then one per dead-letter sink of the stages, fed
	// only by failed batches (no loss records).
	routes []*sinkRT
	sinks  []*sinkRT // routes[:len(spec.Sinks)]: what fanOut and flushLoss feed
	ran    atomic.Bool
}

type sourceRT struct {
	src Source
	m   *ComponentMetrics
	em  *sourceEmitter
}

type sinkRT struct {
	sink     Sink
	m        *ComponentMetrics
	q        *Queue
	sinkErr  *Counter
	shutdown *Counter
	// kept are loss records of failed writes, written again ahead of the
	// next batch; owned by the sink's writer goroutine.
	kept            []Event
	lossRecordsLost *Counter
}

// New checks spec and builds a pipeline from it.
func New(spec Spec) (*Pipeline, error) {
	if err := checkSpec(spec); err != nil {
		return nil, fmt.Errorf("create pipeline %q: %w", spec.Name, err)
	}
	p := &Pipeline{
		name:         spec.Name,
		host:         spec.Host,
		batchSize:    cmp.Or(spec.BatchSize, DefaultBatchSize),
		batchDelay:   cmp.Or(spec.BatchDelay, DefaultBatchDelay),
		lossInterval: cmp.Or(spec.LossInterval, DefaultLossInterval),
		reg:          spec.Metrics,
		log:          spec.Logger,
		loss:         NewLossTracker(),
	}
	if p.reg == nil {
		p.reg = NewRegistry()
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.log = p.log.With("pipeline", spec.Name)
	sinkCfg := spec.SinkQueue
	if sinkCfg == (QueueConfig{}) {
		sinkCfg = spec.Queue
	}

	var err error
	p.edgeM = p.reg.Component("pipeline", spec.Name)
	if p.edge, err = NewQueue("pipeline."+spec.Name, spec.Queue, p.edgeM, p.loss); err != nil {
		return nil, fmt.Errorf("create pipeline %q: %w", spec.Name, err)
	}
	for _, src := range spec.Sources {
		m := p.reg.Component("source", src.Name())
		p.sources = append(p.sources, &sourceRT{
			src: src,
			m:   m,
			em:  &sourceEmitter{component: "source." + src.Name(), m: m, q: p.edge, loss: p.loss},
		})
	}
	newSinkRT := func(queueName string, sk Sink) (*sinkRT, error) {
		m := p.reg.Component("sink", sk.Name())
		q, err := NewQueue(queueName, sinkCfg, m, p.loss)
		if err != nil {
			return nil, fmt.Errorf("create pipeline %q: %w", spec.Name, err)
		}
		return &sinkRT{
			sink: sk, m: m, q: q,
			sinkErr:  m.Dropped(ReasonSinkError),
			shutdown: m.Dropped(ReasonShutdown),
			lossRecordsLost: p.reg.Counter(MetricLossRecordsLost, "Loss records a sink could not write, after keeping them for later writes.",
				"component", "sink", "name", sk.Name()),
		}, nil
	}
	for _, sk := range spec.Sinks {
		s, err := newSinkRT("sink."+sk.Name(), sk)
		if err != nil {
			return nil, err
		}
		p.routes = append(p.routes, s)
	}
	p.sinks = p.routes[:len(p.routes):len(p.routes)]
	deadLetters := map[Sink]*sinkRT{}
	for _, st := range spec.Stages {
		rt := newStageRT(p.reg, st)
		var sk Sink
		if ep, ok := st.(ErrorPolicy); ok {
			rt.action, sk = ep.OnError()
		}
		if rt.action == ErrorDeadLetter {
			if sk == nil {
				return nil, fmt.Errorf("create pipeline %q: stage %s routes failed batches to a dead-letter sink but names none", spec.Name, st.Name())
			}
			if rt.deadLetter = deadLetters[sk]; rt.deadLetter == nil {
				s, err := newSinkRT("deadletter."+sk.Name(), sk)
				if err != nil {
					return nil, err
				}
				deadLetters[sk] = s
				p.routes = append(p.routes, s)
				rt.deadLetter = s
			}
		}
		p.stages = append(p.stages, rt)
	}
	return p, nil
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

	var g errgroup.Group
	for _, s := range p.routes {
		g.Go(func() error {
			p.writeSink(drainCtx, s)
			return nil
		})
	}
	tickCtx, stopTick := context.WithCancel(drainCtx)
	tickDone := make(chan struct{})
	g.Go(func() error {
		defer close(tickDone)
		p.flushLossEvery(tickCtx)
		return nil
	})
	g.Go(func() error {
		p.work(drainCtx, stopTick, tickDone)
		return nil
	})

	srcErr := p.runSources(ctx)

	deadline := time.Now().Add(grace)
	graceTimer := time.AfterFunc(grace, cancelDrain)
	defer graceTimer.Stop()
	p.edge.Close()
	_ = g.Wait() // the goroutines return nil; failures are counted where they happen

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
	return errors.Join(srcErr, p.closeAll(closeCtx))
}

// runSources runs every source until it returns. One failing source does not
// stop the others, so this is not an errgroup.WithContext.
func (p *Pipeline) runSources(ctx context.Context) error {
	var g errgroup.Group
	errs := make([]error, len(p.sources))
	for i, s := range p.sources {
		g.Go(func() error {
			err := s.src.Run(ctx, s.em)
			if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				err = nil // a source that reports the cancellation it was asked for
			}
			switch {
			case err != nil:
				s.m.Errors.Inc()
				p.log.Error("source failed", "source", s.src.Name(), "error", err)
				errs[i] = fmt.Errorf("run source %s: %w", s.src.Name(), err)
			case ctx.Err() == nil:
				p.log.Info("source finished", "source", s.src.Name())
			}
			return nil
		})
	}
	_ = g.Wait()
	return errors.Join(errs...)
}

// work moves batches from the edge queue through the stages into every sink
// queue until the edge queue is drained (or the grace period ends), calling
// the stages' tickers when they are due, then ticks a last time, flushes the
// loss records one last time and closes the sink queues.
func (p *Pipeline) work(ctx context.Context, stopTick context.CancelFunc, tickDone <-chan struct{}) {
	batch := make([]Event, 0, p.batchSize)
	var lim LogLimiter
	var tickTimer *time.Timer
	var tickC <-chan time.Time
	if p.startTickers(time.Now()) {
		tickTimer = time.NewTimer(time.Until(p.nextTick()))
		defer tickTimer.Stop()
		tickC = tickTimer.C
	}
	for {
		var err error
		batch, err = p.edge.pop(ctx, batch[:0], p.batchSize, p.batchDelay, tickC)
		if err == errWoken {
			p.runTicks(ctx, time.Now(), false, &lim)
			tickTimer.Reset(time.Until(p.nextTick()))
			continue
		}
		if err != nil {
			break // io.EOF, or the grace period ended: Run counts what is left
		}
		if ctx.Err() != nil {
			// Popped after the grace period ended: no time to process it.
			p.edge.drop(p.edge.dropShutdown, ReasonShutdown, batch)
			break
		}
		p.edgeM.Sent.Add(uint64(len(batch)))
		cur := batch
		for _, st := range p.stages {
			cur = p.runStage(ctx, st, cur, &lim)
		}
		p.fanOut(ctx, cur)
		if tickTimer != nil {
			if now := time.Now(); !now.Before(p.nextTick()) {
				p.runTicks(ctx, now, false, &lim)
				tickTimer.Reset(time.Until(p.nextTick()))
			}
		}
	}
	clear(batch[:cap(batch)])
	if tickTimer != nil && ctx.Err() == nil {
		p.runTicks(ctx, time.Now(), true, &lim)
	}
	stopTick()
	<-tickDone // no periodic flush may race the final one past the close below
	p.flushLoss()
	for _, s := range p.routes {
		s.q.Close()
	}
}

// fanOut hands a batch to every sink's queue.
func (p *Pipeline) fanOut(ctx context.Context, batch []Event) {
	for _, s := range p.sinks {
		// Drops and a cancelled context are counted by the queue.
		_ = s.q.Push(ctx, batch)
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
// drained, or the grace period ends.
func (p *Pipeline) writeSink(ctx context.Context, s *sinkRT) {
	batchSize, batchDelay := p.sinkBatch(s.sink)
	buf := make([]Event, 0, batchSize)
	var lim LogLimiter
	write := func(batch []Event) {
		if err := s.sink.Write(ctx, batch); err != nil {
			lost := p.countWriteError(s, batch, err, ctx.Err() != nil)
			if ok, suppressed := lim.Allow(time.Now()); ok {
				p.log.Warn("sink write failed; events dropped", "sink", s.sink.Name(),
					"events", lost, "of", len(batch), "error", err, "suppressed", suppressed)
			}
		} else {
			s.m.Sent.Add(uint64(len(batch)))
		}
	}
	// Loss records kept from failed writes go ahead of the next batch, or,
	// when none comes, on their own after a backoff (from the loss
	// interval, at most 1s, doubling to 30s).
	var retry *time.Timer
	firstRetry := min(p.lossInterval, time.Second)
	retryDelay := firstRetry
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		var wake <-chan time.Time
		if len(s.kept) > 0 {
			if retry == nil {
				retry = time.NewTimer(retryDelay)
			}
			wake = retry.C
		}
		var err error
		buf, err = s.q.pop(ctx, buf[:0], batchSize, batchDelay, wake)
		if errors.Is(err, errWoken) {
			retry = nil
			write(s.withKept(nil))
			retryDelay = min(2*retryDelay, 30*time.Second)
			continue
		}
		if err != nil {
			break
		}
		if ctx.Err() != nil {
			// Popped after the grace period ended: there is no time to write.
			s.shutdown.Add(uint64(len(buf)))
			trackLoss(p.loss, s.q.name, ReasonShutdown, buf)
			break
		}
		write(s.withKept(buf))
		if len(s.kept) == 0 {
			retryDelay = firstRetry
		}
		clear(buf) // release the events' Data while waiting for the next batch
	}
	// Loss records kept from failed writes get a last try.
	if len(s.kept) > 0 && ctx.Err() == nil {
		write(s.withKept(nil))
	}
	reason := ReasonSinkError
	if ctx.Err() != nil {
		reason = ReasonShutdown
	}
	p.dropKept(s, reason)
}

func (p *Pipeline) flushLossEvery(ctx context.Context) {
	t := time.NewTicker(p.lossInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.flushLoss()
		}
	}
}

// flushLoss puts the loss records gathered since the last flush into every
// sink's queue.
func (p *Pipeline) flushLoss() {
	for _, rec := range p.loss.Flush(time.Now(), p.host) {
		for _, s := range p.sinks {
			s.q.PushControl(rec)
		}
	}
}

func (p *Pipeline) closeAll(ctx context.Context) error {
	var errs []error
	for _, st := range p.stages {
		if err := st.st.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close stage %s: %w", st.st.Name(), err))
		}
	}
	// Sinks close in parallel so that one slow flush does not eat the
	// others' share of the grace period. A sink with two routes (ordinary
	// and dead-letter) is closed once.
	var toClose []*sinkRT
	for _, s := range p.routes {
		if !slices.ContainsFunc(toClose, func(c *sinkRT) bool { return c.sink == s.sink }) {
			toClose = append(toClose, s)
		}
	}
	sinkErrs := make([]error, len(toClose))
	var g errgroup.Group
	for i, s := range toClose {
		g.Go(func() error {
			if err := s.sink.Close(ctx); err != nil {
				s.m.Errors.Inc()
				sinkErrs[i] = fmt.Errorf("close sink %s: %w", s.sink.Name(), err)
			}
			return nil
		})
	}
	_ = g.Wait()
	return errors.Join(append(errs, sinkErrs...)...)
}

// sourceEmitter is the Emitter each source gets: it counts the source's
// events and reports its kernel-side losses.
type sourceEmitter struct {
	component string
	m         *ComponentMetrics
	q         *Queue
	loss      *LossTracker
}

var (
	_ Emitter      = (*sourceEmitter)(nil)
	_ LossReporter = (*sourceEmitter)(nil)
	_ Emitter      = (*Queue)(nil)
)

// Emit hands batch to the edge queue. The source counts every event as sent;
// the queue counts its own drops.
func (e *sourceEmitter) Emit(ctx context.Context, batch []Event) error {
	n := uint64(len(batch))
	e.m.Received.Add(n)
	err := e.q.Push(ctx, batch)
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
