package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"
)

// ErrStopped is returned by Update once the pipeline has stopped taking
// updates (its Run is shutting down or has returned).
var ErrStopped = errors.New("pipeline stopped")

// update is one Update call, applied by Run's loop.
type update struct {
	ctx  context.Context
	spec Spec
	done chan error
}

// workerUpdate is what the worker switches to between two batches.
type workerUpdate struct {
	stages []*stageRT
	sinks  []*sinkRT
	done   chan struct{}
}

// Update changes the running pipeline to spec without stopping it. Its
// components are matched by value with the ones running: a source, stage or
// sink that spec names by the same value keeps running untouched (its
// queue keeps its events, a source keeps reading). Then:
//
//   - new sources start, then sources spec no longer names stop (they drain
//     into the edge queue as at shutdown);
//   - the worker switches to spec's stages and sinks between two batches,
//     so that no batch is split across the two; a removed stage with a
//     timer ticks a last time first; removed stages are closed;
//   - a sink spec names by a new value under the name of a running one is
//     swapped in on that sink's queue between two writes, and the sink it
//     replaces is closed; a new sink gets its own queue, a removed one
//     drains its queue and is closed;
//   - queue limits, batching and the loss interval take their new values.
//
// Update returns once all of that is done, or when ctx ends first: then the
// update still completes in the background, and the removed components
// that had not drained lose what they held (counted, "shutdown"). The
// pipeline closes what it stops using, as Run does at shutdown; the caller
// must not. Safe for concurrent use; updates apply one at a time.
func (p *Pipeline) Update(ctx context.Context, spec Spec) error {
	if spec.Name != p.name {
		return fmt.Errorf("update pipeline %q: spec names pipeline %q", p.name, spec.Name)
	}
	if err := checkSpec(spec); err != nil {
		return fmt.Errorf("update pipeline %q: %w", p.name, err)
	}
	if err := spec.Queue.validate(); err != nil {
		return fmt.Errorf("update pipeline %q: %w", p.name, err)
	}
	u := &update{ctx: ctx, spec: spec, done: make(chan error, 1)}
	select {
	case p.updates <- u:
	case <-p.stopped:
		return fmt.Errorf("update pipeline %q: %w", p.name, ErrStopped)
	case <-ctx.Done():
		return fmt.Errorf("update pipeline %q: %w", p.name, ctx.Err())
	}
	select {
	case err := <-u.done:
		if err != nil {
			return fmt.Errorf("update pipeline %q: %w", p.name, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("update pipeline %q: %w (the update goes on in the background)", p.name, ctx.Err())
	}
}

// apply carries out u on Run's loop and returns how many sources it
// started.
func (p *Pipeline) apply(ctx context.Context, rs *runState, u *update) int {
	spec := u.spec
	p.sinkQueue = spec.SinkQueue
	if p.sinkQueue == (QueueConfig{}) {
		p.sinkQueue = spec.Queue
	}
	if err := p.sinkQueue.validate(); err != nil {
		u.done <- err
		return 0
	}
	lay, err := p.layout(spec)
	if err != nil {
		u.done <- err
		return 0
	}
	p.setSettings(spec)
	p.edge.SetConfig(spec.Queue)
	for _, r := range lay.routes {
		r.q.SetConfig(p.sinkQueue)
	}

	// New routes and sources first: nothing that stays loses its way out
	// or its input while the old ones go.
	p.mu.Lock()
	p.routes = append(p.routes, lay.newRoutes...)
	p.mu.Unlock()
	for _, r := range lay.newRoutes {
		p.startWriter(rs, r)
	}
	started := 0
	var removedSrcs []*sourceRT
	for _, src := range spec.Sources {
		if slices.ContainsFunc(p.srcs, func(s *sourceRT) bool { return s.src == src }) {
			continue
		}
		s := p.newSourceRT(src)
		p.mu.Lock()
		p.srcs = append(p.srcs, s)
		p.mu.Unlock()
		p.startSource(ctx, rs, s)
		started++
	}
	for _, s := range p.srcs {
		if !slices.Contains(spec.Sources, s.src) {
			removedSrcs = append(removedSrcs, s)
		}
	}

	// The worker switches between two batches.
	oldStages := p.stages
	wu := &workerUpdate{stages: lay.stages, sinks: lay.sinks, done: make(chan struct{})}
	p.pending.Store(wu)
	wake(p.kick)
	var errs []error
	select {
	case <-wu.done:
	case <-rs.workerDone:
	case <-ctx.Done():
		// Shutting down: the worker takes the update with its next batch.
	case <-u.ctx.Done():
		errs = append(errs, fmt.Errorf("wait for the worker: %w", u.ctx.Err()))
	}

	// Sinks: the values the routes write to before and after, so that
	// each value no route uses any more is closed once.
	before := p.sinkValues()
	for _, r := range lay.swaps {
		sw := &sinkSwap{sink: spec.sinkNamed(r.sinkName, r.key), done: make(chan struct{})}
		r.want = sw.sink
		r.next.Store(sw)
		wake(r.kick)
		// The writer switches before its next write; it cannot be told to
		// hurry, a write in flight finishes first.
		select {
		case <-sw.done:
		case <-r.done:
			// The writer stopped (shutdown) before it switched: the old
			// sink stays the route's, and closeAll closes both.
			r.want = r.sink
		}
	}

	for _, s := range removedSrcs {
		s.removed = true
		s.cancel()
	}
	for _, s := range removedSrcs {
		select {
		case <-s.done:
		case <-u.ctx.Done():
			errs = append(errs, fmt.Errorf("stop source %s: %w", s.src.Name(), u.ctx.Err()))
		}
		p.mu.Lock()
		p.srcs = slices.DeleteFunc(p.srcs, func(x *sourceRT) bool { return x == s })
		p.mu.Unlock()
	}

	var removedRoutes []*sinkRT
	for _, r := range p.routes {
		if !slices.Contains(lay.routes, r) {
			removedRoutes = append(removedRoutes, r)
		}
	}
	for _, r := range removedRoutes {
		r.removed.Store(true)
		r.q.Close()
	}
	for _, r := range removedRoutes {
		select {
		case <-r.done:
		case <-u.ctx.Done():
			errs = append(errs, fmt.Errorf("drain sink %s: %w", r.sinkName, u.ctx.Err()))
			r.cancel() // the writer stops; what is left is dropped, counted
			<-r.done
		}
		if n := r.q.discard(ReasonShutdown); n > 0 {
			p.log.Warn("removed sink did not drain in time; dropped queued events", "sink", r.sinkName, "dropped", n)
		}
		p.mu.Lock()
		p.routes = slices.DeleteFunc(p.routes, func(x *sinkRT) bool { return x == r })
		p.mu.Unlock()
	}
	closeCtx := u.ctx
	if closeCtx.Err() != nil {
		var cancel context.CancelFunc
		closeCtx, cancel = context.WithTimeout(context.WithoutCancel(closeCtx), time.Second)
		defer cancel()
	}
	// The sinks no route uses any more close in parallel, as at shutdown.
	after := p.sinkValues()
	var closing errgroup.Group
	for sk, r := range before {
		if _, used := after[sk]; !used {
			closing.Go(func() error {
				p.closeSink(closeCtx, r, sk)
				return nil
			})
		}
	}
	_ = closing.Wait()
	for _, st := range oldStages {
		if slices.Contains(lay.stages, st) {
			continue
		}
		if err := st.st.Close(closeCtx); err != nil {
			errs = append(errs, fmt.Errorf("close stage %s: %w", st.st.Name(), err))
		}
	}
	u.done <- errors.Join(errs...)
	return started
}

// sinkValues maps every sink value the routes write to, or will once their
// swaps are done, to one of its routes.
func (p *Pipeline) sinkValues() map[Sink]*sinkRT {
	out := map[Sink]*sinkRT{}
	for _, r := range p.routes {
		out[r.want] = r
	}
	return out
}

// sinkNamed finds the sink a route key stands for in spec: one of its
// sinks, or the dead-letter sink of one of its stages.
func (spec Spec) sinkNamed(name, key string) Sink {
	if key == "sink."+name {
		if i := slices.IndexFunc(spec.Sinks, func(s Sink) bool { return s.Name() == name }); i >= 0 {
			return spec.Sinks[i]
		}
	}
	for _, st := range spec.Stages {
		if ep, ok := st.(ErrorPolicy); ok {
			if a, sk := ep.OnError(); a == ErrorDeadLetter && sk != nil && sk.Name() == name {
				return sk
			}
		}
	}
	return nil
}

// switchTo makes the worker run wu's stages and feed wu's sinks. A removed
// stage with a timer ticks a last time first, through the stages after it.
func (p *Pipeline) switchTo(ctx context.Context, wu *workerUpdate, lim *LogLimiter) {
	now := time.Now()
	for i, st := range p.stages {
		if st.ticker != nil && !slices.Contains(wu.stages, st) {
			p.tickStage(ctx, i, now, lim)
		}
	}
	p.mu.Lock()
	p.stages, p.sinks = wu.stages, wu.sinks
	p.mu.Unlock()
	p.startTickers(now)
	close(wu.done)
}

// wake signals a goroutine waiting in Queue.pop on kick, without blocking.
func wake(kick chan struct{}) {
	select {
	case kick <- struct{}{}:
	default:
	}
}
