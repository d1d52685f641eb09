package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/sources"
	"github.com/sluice-dev/sluice/wasmbpf"
	"github.com/sluice-dev/sluice/wasmstages"
)

// cleanupStack undoes what Run created, in reverse order, whatever step
// failed: one place instead of an unwinding per step.
type cleanupStack struct {
	fns []func(ctx context.Context)
}

func (s *cleanupStack) push(fn func(ctx context.Context)) { s.fns = append(s.fns, fn) }

// unwind runs the cleanups, last first, on a context detached from ctx:
// they must run when ctx is what was cancelled.
func (s *cleanupStack) unwind(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	for i := len(s.fns) - 1; i >= 0; i-- {
		s.fns[i](ctx)
	}
	s.fns = nil
}

// handover is a resource the agent owns until a running pipeline takes it
// over (a pipeline closes its sources, stages and sinks when it stops); the
// cleanup stack then leaves it alone.
type handover struct{ taken atomic.Bool }

// sharedSink is one sink value that several pipelines write to. Each user
// holds a reference; the sink closes when the last is released. The agent
// holds one from opening the sink until the pipelines that use it run, so
// that a failure in between closes it; each pipeline holds one from its
// start (or the update that brings the sink in) and releases it with the
// Close it makes when it stops using the sink.
type sharedSink struct {
	pipeline.Sink
	plan *sinkPlan

	mu     sync.Mutex
	refs   int
	closed bool
	agent  sync.Once     // the agent's reference, released once
	gone   chan struct{} // closed once the sink has closed
}

// releaseAgent releases the agent's reference (once).
func (s *sharedSink) releaseAgent(ctx context.Context) {
	s.agent.Do(func() {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			slog.Default().Warn("close sink", "sink", s.Name(), "error", err)
		}
	})
}

func newSharedSink(s pipeline.Sink, sp *sinkPlan) *sharedSink {
	return &sharedSink{Sink: s, plan: sp, refs: 1, gone: make(chan struct{})}
}

func (s *sharedSink) acquire() {
	s.mu.Lock()
	s.refs++
	s.mu.Unlock()
}

// Close releases one reference, and closes the sink with the last.
func (s *sharedSink) Close(ctx context.Context) error {
	s.mu.Lock()
	s.refs--
	last := s.refs == 0 && !s.closed
	if last {
		s.closed = true
	}
	s.mu.Unlock()
	if !last {
		return nil
	}
	defer close(s.gone)
	return s.Sink.Close(ctx)
}

// handoffSink stands in for a sink that a reload brings in to replace one
// holding a resource two sinks must not share (a NATS sink's on-disk
// spool, which the new sink would replay while the old one still appends
// to it). It opens the new sink at its first write, once the old one has
// closed; meanwhile the events wait in the pipeline's queue for the sink.
// A failed open fails the write (counted by the pipeline) and is tried
// again at the next one. Safe for concurrent use.
type handoffSink struct {
	name  string
	after <-chan struct{} // closed when the sink replaced has closed
	open  func(ctx context.Context) (pipeline.Sink, error)
	batch func() (int, time.Duration)

	mu   sync.Mutex
	sink pipeline.Sink
}

var _ pipeline.BatchingSink = (*handoffSink)(nil)

func (h *handoffSink) Name() string { return h.name }

func (h *handoffSink) WriteBatch() (int, time.Duration) {
	if h.batch == nil {
		return 0, 0
	}
	return h.batch()
}

func (h *handoffSink) get(ctx context.Context) (pipeline.Sink, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sink != nil {
		return h.sink, nil
	}
	select {
	case <-h.after:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for the sink %q it replaces to close: %w", h.name, ctx.Err())
	}
	s, err := h.open(ctx)
	if err != nil {
		return nil, err
	}
	h.sink = s
	return s, nil
}

func (h *handoffSink) Write(ctx context.Context, batch []pipeline.Event) error {
	s, err := h.get(ctx)
	if err != nil {
		return err
	}
	return s.Write(ctx, batch)
}

func (h *handoffSink) Close(ctx context.Context) error {
	h.mu.Lock()
	s := h.sink
	h.mu.Unlock()
	if s == nil {
		return nil
	}
	return s.Close(ctx)
}

// sourceInstance is one loaded gadget, with its module when it has one,
// or one wasm-bpf application.
type sourceInstance struct {
	g   *sources.Gadget
	mod *gadgetSource
	app *wasmbpf.App
}

// openSource builds the gadget of sp and loads it: its module initialises
// before the gadget loads (it may set its parameters) and starts once the
// gadget is attached. On failure nothing stays loaded. A wasm_bpf source's
// application is compiled; its guest loads what it loads when it runs.
func (a *Agent) openSource(ctx context.Context, sp *sourcePlan, seq *atomic.Uint64) (*sourceInstance, error) {
	if sp.app != nil {
		return a.openApp(ctx, sp, seq)
	}
	cfg := gadgetConfig(sp.block, sp.host, sp.params, a.log)
	cfg.Seq = seq
	cfg.Filter = a.containers.kernelFilter(sp)
	g, err := sources.NewGadget(sp.spec, cfg)
	if err != nil {
		return nil, fmt.Errorf("start source %q: %w", sp.name, err)
	}
	si := &sourceInstance{g: g}
	if sp.wasm != nil {
		si.mod = newGadgetSource(g, sp.wasm, a.metrics, a.log)
		si.mod.containers = &igContainers{filter: sp.filter, g: g, ci: a.containers}
		if err := si.mod.init(ctx, a.cache, a.metrics); err != nil {
			return nil, fmt.Errorf("start source %q: %w", sp.name, err)
		}
	}
	if err := g.Open(); err != nil {
		si.close(ctx)
		return nil, fmt.Errorf("start source %q: %w", sp.name, err)
	}
	a.containers.catchUp(sp, g)
	if si.mod != nil {
		if err := si.mod.mod.Start(ctx); err != nil {
			si.close(ctx)
			return nil, fmt.Errorf("start source %q: %w", sp.name, err)
		}
	}
	a.log.Info("gadget loaded", "source", sp.name, "gadget", sp.spec.Name, "streams", len(sp.spec.Streams), "skipped_programs", g.SkippedPrograms())
	return si, nil
}

func (si *sourceInstance) run(ctx context.Context, out pipeline.Emitter) error {
	switch {
	case si.app != nil:
		return si.app.Run(ctx, out)
	case si.mod != nil:
		return si.mod.run(ctx, out)
	}
	return si.g.Run(ctx, out)
}

// finished says whether a source that returned nil ended on its own as it
// may (a gadget whose iterators took all their snapshots, a wasm-bpf
// application that exited with status 0), and why; "" when it should
// still be running.
func (si *sourceInstance) finished() (kind, why string) {
	switch {
	case si.app != nil:
		return "wasm-bpf", "its application exited with status 0"
	case si.g.Finished():
		return "gadget", "its iterators took all their snapshots"
	}
	return "", ""
}

func (si *sourceInstance) close(ctx context.Context) {
	if si.app != nil {
		if err := si.app.Close(ctx); err != nil {
			slog.Default().Debug("close wasm-bpf application", "source", si.app.Name(), "error", err)
		}
		return
	}
	if si.mod != nil {
		si.mod.close(ctx)
	}
	if err := si.g.Close(); err != nil {
		slog.Default().Debug("close gadget", "source", si.g.Name(), "error", err)
	}
}

// Restart backoff of a failed source: doubling from the first to the
// longest wait; a source that ran for stableAfter starts over at the first.
var (
	restartFirst = time.Second
	restartMax   = 30 * time.Second
	stableAfter  = time.Minute
)

// liveSource is a pipeline source that supervises a gadget: when the
// gadget fails while it should run (a reader that broke), the failure is
// logged, counted and shown on /healthz at once, and the gadget is loaded
// again with backoff, its sequence numbers going on. Run owns the gadget
// from its start and closes it when it returns.
type liveSource struct {
	handover
	a    *Agent
	plan *sourcePlan
	seq  *atomic.Uint64
	cur  *sourceInstance // loaded by the agent before the pipeline runs

	restarts *pipeline.Counter
	errs     *pipeline.Counter
	log      *slog.Logger
}

var _ pipeline.Source = (*liveSource)(nil)

func (a *Agent) newLiveSource(sp *sourcePlan, si *sourceInstance, seq *atomic.Uint64) *liveSource {
	return &liveSource{
		a: a, plan: sp, seq: seq, cur: si,
		restarts: a.metrics.Component("source", sp.name).Counter(MetricSourceRestarts, "Times a failed source was loaded again."),
		errs:     a.metrics.Component("source", sp.name).Errors,
		log:      a.log.With("source", sp.name, "gadget", sp.kind()),
	}
}

// MetricSourceRestarts counts the restarts of failed sources.
const MetricSourceRestarts = "sluice_source_restarts_total"

func (ls *liveSource) Name() string { return ls.plan.name }

// Gadget returns the running gadget, nil while the source restarts.
func (ls *liveSource) gadget() *sources.Gadget {
	ls.a.mu.Lock()
	defer ls.a.mu.Unlock()
	if ls.cur == nil {
		return nil
	}
	return ls.cur.g // nil for a wasm-bpf application
}

func (ls *liveSource) Run(ctx context.Context, out pipeline.Emitter) error {
	h := ls.a.health
	ls.a.mu.Lock()
	done := ls.cur == nil
	ls.a.mu.Unlock()
	if done {
		// The source finished before (an application that exited 0), and
		// a reload that kept it hands it to the pipeline again: it stays
		// finished rather than running its application a second time.
		return nil
	}
	h.set("source", ls.plan.name, stateRunning, "")
	backoff := restartFirst
	for {
		started := time.Now()
		err := ls.cur.run(ctx, out)
		// A gadget whose outputs are iterators with a number of runs (or
		// one snapshot) ends on its own, and so does a wasm-bpf
		// application that exits with status 0: done, not failed.
		finished, why := "", ""
		if err == nil {
			finished, why = ls.cur.finished()
		}
		ls.cur.close(ctx)
		ls.a.mu.Lock()
		ls.cur = nil
		ls.a.mu.Unlock()
		if ctx.Err() != nil {
			h.set("source", ls.plan.name, stateStopped, "")
			return nil
		}
		if finished != "" {
			ls.log.Info("source finished: "+why, "kind", finished)
			h.set("source", ls.plan.name, stateStopped, "")
			return nil
		}
		if err == nil {
			err = errors.New("the gadget stopped reading before it was asked to")
		}
		if time.Since(started) > stableAfter {
			backoff = restartFirst
		}
		ls.errs.Inc()
		for {
			ls.log.Error("source failed; restarting it", "error", err, "retry_in", backoff)
			h.set("source", ls.plan.name, stateFailing, err.Error())
			select {
			case <-ctx.Done():
				h.set("source", ls.plan.name, stateStopped, "")
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, restartMax)
			si, err2 := ls.a.openSource(ctx, ls.plan, ls.seq)
			if err2 == nil {
				ls.a.mu.Lock()
				ls.cur = si
				ls.a.mu.Unlock()
				break
			}
			if ctx.Err() != nil {
				h.set("source", ls.plan.name, stateStopped, "")
				return nil
			}
			err = err2
			ls.errs.Inc()
		}
		ls.restarts.Inc()
		ls.log.Info("source restarted", "seq", ls.seq.Load())
		h.set("source", ls.plan.name, stateRunning, "")
	}
}

// close releases the source's gadget when no pipeline ran it.
func (ls *liveSource) close(ctx context.Context) {
	if ls.taken.Load() || ls.cur == nil {
		return
	}
	ls.cur.close(ctx)
	ls.cur = nil
}

// liveStage is a running Wasm stage of one pipeline. Its versions (a
// module file that changes, a tag that moves, a rollout) are the stage
// follower's to swap (stagefollow.go): one per stage name, for every
// pipeline's instance.
type liveStage struct {
	handover
	plan  *stagePlan
	stage *wasmstages.Stage
}

// ErrorKinds are a Wasm stage's (pipeline.ErrorKindsReporter).
func (ls *liveStage) ErrorKinds() []string { return wasmstages.ErrorKinds() }

// close releases the stage when no pipeline ran it.
func (ls *liveStage) close(ctx context.Context) {
	if ls.taken.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_ = ls.stage.Close(ctx)
}
