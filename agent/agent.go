package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/wasmstages"
)

// Options are the process-level inputs of an agent besides its config.
type Options struct {
	Logger *slog.Logger
	// Stdout receives the stdout sinks' output; nil means os.Stdout.
	Stdout io.Writer
	// Metrics is the registry counters go to; nil creates one.
	Metrics *pipeline.Registry
	// Images holds the OCI images the config references, as FetchImages
	// fetched them; nil when it references none.
	Images *Images
	// Version is the agent's version, as status and sluice_build_info
	// report it; Commit the commit it was built from.
	Version string
	Commit  string
	// Load reads the config again for a reload (SIGHUP, `sluice ctl
	// reload`); nil means the agent cannot reload. LoadFile makes one.
	Load LoadFunc
}

// Agent is a configured set of pipelines, ready to run once. Run owns its
// live objects; Reload, Status, Tap, Top and Summary may be called from
// other goroutines while it runs.
type Agent struct {
	opts    Options
	log     *slog.Logger
	metrics *pipeline.Registry
	stdout  io.Writer
	health  *health
	reloads chan *reloadRequest
	ran     atomic.Bool

	// mu guards what Run and its reloads change and the control API
	// reads.
	mu        sync.Mutex
	plan      *plan
	started   time.Time
	cache     *wasmstages.Cache
	sinks     map[string]*sharedSink
	sources   map[string]*liveSource
	pipelines map[string]*livePipeline
	// seqs are the sources' sequence counters, kept across restarts and
	// reloads so that a source's numbers go on.
	seqs       map[string]*atomic.Uint64
	lastReload *ReloadResult
	// containers is container identity and the filters that follow
	// containers (workloads.go).
	containers *containerIdentity
	// followers keep every Wasm stage on its desired version
	// (stagefollow.go); they have their own lock.
	followers *stageFollowers
}

// livePipeline is a running pipeline and the components it holds.
type livePipeline struct {
	plan   *pipelinePlan
	p      *pipeline.Pipeline
	stages []*liveStage
	// sinks are the distinct sink values the pipeline holds a reference
	// to (sinks and dead-letter sinks).
	sinks  []*sharedSink
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// New validates cfg and plans the agent's components without touching the
// kernel or starting anything. Config problems come back as diagnostics
// pointing into the config.
func New(cfg *config.File, opts Options) (*Agent, hcl.Diagnostics) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	stdout := opts.Stdout
	if stdout == nil {
		stdout = os.Stdout
	}
	reg := opts.Metrics
	if reg == nil {
		reg = pipeline.NewRegistry()
	}
	pl, diags := buildPlan(cfg, opts.Images, stdout, log)
	if diags.HasErrors() {
		return nil, diags
	}
	a := &Agent{
		opts: opts, log: log, metrics: reg, stdout: stdout, health: newHealth(),
		reloads: make(chan *reloadRequest), plan: pl,
		sinks: map[string]*sharedSink{}, sources: map[string]*liveSource{}, pipelines: map[string]*livePipeline{},
		seqs:       map[string]*atomic.Uint64{},
		containers: newContainerIdentity(cfg, reg, log),
	}
	registerPlanned(reg, pl)
	a.followers = &stageFollowers{a: a}
	return a, diags
}

// Metrics returns the agent's metrics registry.
func (a *Agent) Metrics() *pipeline.Registry { return a.metrics }

// Config returns the config the agent runs (the last one a reload applied).
func (a *Agent) Config() *config.File {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.plan.cfg
}

// Run creates the live objects of the plan in order (the compilation
// cache, the embedded NATS server, the sinks, the stages and gadgets, the
// metrics and control endpoints, the pipelines) and runs the pipelines
// until ctx is cancelled, applying reloads meanwhile. Shutdown then
// detaches the programs, drains the queues and flushes the sinks within
// the configured grace period; what Run created is released in reverse
// order, also when a step fails. It returns nil after a clean shutdown.
func (a *Agent) Run(ctx context.Context) error {
	if !a.ran.CompareAndSwap(false, true) {
		return errors.New("run agent: already run")
	}
	var stack cleanupStack
	defer stack.unwind(ctx)
	a.mu.Lock()
	a.started = time.Now()
	pl := a.plan
	a.mu.Unlock()
	for _, pp := range pl.pipelines {
		a.health.set("pipeline", pp.name, stateStarting, "")
	}

	// One compilation cache for the stages and the gadget modules, opened
	// when the first is needed (here, or by a reload that brings one in).
	a.ensureCache(pl)
	stack.push(func(ctx context.Context) {
		if a.cache != nil {
			_ = a.cache.Close(ctx)
		}
	})

	if ns := pl.cfg.Agent.NATSServer; ns != nil {
		srv, err := startNATSServer(ns, pl.cfg.Agent.DataDir, a.log)
		if err != nil {
			return err
		}
		// Pushed first, so it runs last: after the sinks have flushed.
		stack.push(func(context.Context) { srv.Shutdown() })
		a.log.Info("embedded nats server started", "listen", ns.Listen, "jetstream", ns.JetStream)
	}

	sinks, err := a.openSinks(ctx, pl.sinks, &stack)
	if err != nil {
		return err
	}
	// The stages compile (or load from the cache) while the gadgets load:
	// they touch nothing outside the process, and a large module takes as
	// long as loading the gadgets.
	var stagesReady errgroup.Group
	stages := map[*stagePlan]*liveStage{}
	var stagesMu sync.Mutex
	stagesReady.SetLimit(runtime.GOMAXPROCS(0))
	for _, pp := range pl.pipelines {
		for _, sp := range pp.stages {
			stagesReady.Go(func() error {
				ls, err := a.newLiveStage(ctx, sp, sinks)
				if err != nil {
					return err
				}
				stagesMu.Lock()
				stages[sp] = ls
				stagesMu.Unlock()
				return nil
			})
		}
	}
	// Whatever happens below, the stages are released once compiled.
	stack.push(func(ctx context.Context) {
		_ = stagesReady.Wait()
		for _, ls := range stages {
			ls.close(ctx)
		}
	})
	// Containers are listed before the gadgets load, so that a filter on
	// containers opens with their namespaces.
	stack.push(a.containers.start(ctx, a))
	srcs, err := a.openSources(ctx, pl.sources, &stack)
	if err != nil {
		return err
	}
	if err := stagesReady.Wait(); err != nil {
		return err
	}

	if addr := pl.cfg.Agent.MetricsListen; addr != "" {
		if err := a.serveMetrics(ctx, addr, &stack); err != nil {
			return err
		}
	}
	if path := pl.cfg.Agent.ControlSocket; path != "" {
		if err := a.serveControl(ctx, path, &stack); err != nil {
			return err
		}
	}

	var lps []*livePipeline
	for _, pp := range pl.pipelines {
		lp, err := a.newLivePipeline(pp, srcs, stages, sinks)
		if err != nil {
			return err
		}
		lps = append(lps, lp)
	}
	a.mu.Lock()
	a.sinks, a.sources = sinks, srcs
	a.mu.Unlock()
	// Every module is compiled and none can be closed before the
	// pipelines run: the moment to move their machine code onto a file.
	if n := fileBackCode(pl.cfg.Agent.DataDir); n > 0 {
		a.log.Debug("compiled wasm code backed by a file", "bytes", n)
	}
	pipeDone := make(chan *livePipeline)
	for _, lp := range lps {
		a.startPipeline(ctx, lp, pipeDone)
	}
	// The pipelines hold their sinks now.
	for _, s := range sinks {
		s.releaseAgent(ctx)
	}
	// Stage versions (stagefollow.go): files, tags, the control bucket.
	a.followers.start(ctx, pl)
	stack.push(func(context.Context) { a.followers.stop() })
	a.health.setReady(true)
	a.log.Info("agent running", "pipelines", len(lps))
	trimStartup()
	applyMemorySettings(pl.cfg.Agent, a.log)

	err = a.loop(ctx, pipeDone)
	a.health.setReady(false)
	a.log.Info("pipelines stopped")
	return err
}

// ensureCache opens the compilation cache if pl has Wasm to compile and
// it is not open yet. Run's goroutine only.
func (a *Agent) ensureCache(pl *plan) {
	if a.cache != nil {
		return
	}
	need := slices.ContainsFunc(pl.sources, func(sp *sourcePlan) bool { return sp.wasm != nil || sp.app != nil }) ||
		slices.ContainsFunc(pl.pipelines, func(pp *pipelinePlan) bool { return len(pp.stages) > 0 })
	if need {
		a.cache = openStageCache(pl.cfg, a.log)
	}
}

// loop applies reloads until ctx is cancelled or no pipeline runs, then
// waits for the pipelines to stop and returns their errors.
func (a *Agent) loop(ctx context.Context, pipeDone chan *livePipeline) error {
	var errs []error
	running := func() int {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.pipelines)
	}
	ended := func(lp *livePipeline) {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.pipelines[lp.plan.name] == lp {
			delete(a.pipelines, lp.plan.name)
			if lp.err != nil {
				errs = append(errs, lp.err)
			}
		}
	}
	for running() > 0 {
		select {
		case <-ctx.Done():
			a.mu.Lock()
			for _, lp := range a.pipelines {
				a.health.set("pipeline", lp.plan.name, stateStopping, "")
			}
			a.mu.Unlock()
			for running() > 0 {
				ended(<-pipeDone)
			}
		case lp := <-pipeDone:
			ended(lp)
		case req := <-a.reloads:
			req.done <- a.reload(ctx, req.ctx, pipeDone)
		}
	}
	return errors.Join(errs...)
}

// openSinks opens the sinks of plans; each holds the agent's reference
// until the pipelines hold theirs, and the stack releases it on failure.
func (a *Agent) openSinks(ctx context.Context, plans []*sinkPlan, stack *cleanupStack) (map[string]*sharedSink, error) {
	out := map[string]*sharedSink{}
	for _, sp := range plans {
		s, err := sp.open(ctx, a.metrics, a.log)
		if err != nil {
			return nil, fmt.Errorf("start %w", err) // the sink names itself: "nats sink \"bus\": ..."
		}
		sh := newSharedSink(s, sp)
		stack.push(sh.releaseAgent) // a no-op once the pipelines hold the sink
		out[sp.name] = sh
	}
	return out, nil
}

// openSources loads the gadget of every source plan. Each is the stack's
// to close until a pipeline runs it.
func (a *Agent) openSources(ctx context.Context, plans []*sourcePlan, stack *cleanupStack) (map[string]*liveSource, error) {
	out := map[string]*liveSource{}
	for _, sp := range plans {
		seq := a.seqOf(sp.name)
		si, err := a.openSource(ctx, sp, seq)
		if err != nil {
			return nil, err
		}
		ls := a.newLiveSource(sp, si, seq)
		stack.push(ls.close)
		out[sp.name] = ls
	}
	return out, nil
}

// seqOf returns the sequence counter of the source called name.
func (a *Agent) seqOf(name string) *atomic.Uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.seqs[name]
	if c == nil {
		c = new(atomic.Uint64)
		a.seqs[name] = c
	}
	return c
}

// newLiveStage compiles and initialises the stage of sp.
func (a *Agent) newLiveStage(ctx context.Context, sp *stagePlan, sinks map[string]*sharedSink) (*liveStage, error) {
	var dl pipeline.Sink
	if sp.deadLetter != "" {
		dl = sinks[sp.deadLetter]
	}
	s, err := a.openStage(ctx, sp, dl)
	if err != nil {
		return nil, err
	}
	return &liveStage{plan: sp, stage: s}, nil
}

// newLivePipeline builds the pipeline of pp from live components.
func (a *Agent) newLivePipeline(pp *pipelinePlan, srcs map[string]*liveSource, stages map[*stagePlan]*liveStage, sinks map[string]*sharedSink) (*livePipeline, error) {
	lp := &livePipeline{plan: pp}
	spec := a.pipelineSpec(pp)
	for _, name := range pp.sources {
		spec.Sources = append(spec.Sources, srcs[name])
	}
	spec.Stages = a.containers.headStages(pp, a.metrics)
	for _, sp := range pp.stages {
		ls := stages[sp]
		lp.stages = append(lp.stages, ls)
		spec.Stages = append(spec.Stages, ls.stage)
	}
	for _, name := range pp.sinks {
		spec.Sinks = append(spec.Sinks, sinks[name])
	}
	lp.sinks = pipelineSinks(pp, sinks)
	p, err := pipeline.New(spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pp.block.DefRange, err)
	}
	lp.p = p
	return lp, nil
}

// pipelineSpec is pp's spec with the agent's parts, without components.
func (a *Agent) pipelineSpec(pp *pipelinePlan) pipeline.Spec {
	spec := pp.spec
	spec.Metrics, spec.Logger = a.metrics, a.log
	return spec
}

// pipelineSinks lists the distinct sink values pp writes to, dead-letter
// sinks included: the pipeline holds one reference to each.
func pipelineSinks(pp *pipelinePlan, sinks map[string]*sharedSink) []*sharedSink {
	var out []*sharedSink
	add := func(name string) {
		if s := sinks[name]; s != nil && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, name := range pp.sinks {
		add(name)
	}
	for _, sp := range pp.stages {
		if sp.deadLetter != "" {
			add(sp.deadLetter)
		}
	}
	return out
}

// startPipeline hands lp its components and runs it until ctx ends or its
// own cancel; it reports on pipeDone when Run returned. Run's loop owns the
// goroutine: it waits for every pipeline it started.
func (a *Agent) startPipeline(ctx context.Context, lp *livePipeline, pipeDone chan<- *livePipeline) {
	for _, s := range lp.sinks {
		s.acquire()
	}
	for _, ls := range lp.stages {
		ls.taken.Store(true)
	}
	for _, src := range lp.plan.sources {
		a.sources[src].taken.Store(true)
	}
	pctx, cancel := context.WithCancel(ctx)
	lp.cancel, lp.done = cancel, make(chan struct{})
	a.mu.Lock()
	a.pipelines[lp.plan.name] = lp
	a.mu.Unlock()
	a.health.set("pipeline", lp.plan.name, stateRunning, "")
	grace := a.plan.cfg.Agent.ShutdownGrace
	go func() {
		lp.err = lp.p.Run(pctx, grace)
		cancel()
		a.health.set("pipeline", lp.plan.name, stateStopped, "")
		close(lp.done)
		pipeDone <- lp
	}()
}

// allStages lists the stages of the running pipelines; a.mu held.
func (a *Agent) allStages() []*liveStage {
	var out []*liveStage
	for _, lp := range a.pipelines {
		out = append(out, lp.stages...)
	}
	return out
}

// serveMetrics serves /metrics, /healthz, /readyz and /livez on addr until
// the stack shuts it down, after the pipelines have drained so that the
// final counts can be scraped during shutdown.
func (a *Agent) serveMetrics(ctx context.Context, addr string, stack *cleanupStack) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", metricsHandler(a.metrics, a.opts.Version, a.opts.Commit))
	a.healthRoutes(mux)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	stack.push(func(ctx context.Context) {
		shutdownCtx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		srv.Shutdown(shutdownCtx)
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			a.log.Warn("metrics server", "error", err)
		}
	})
	a.log.Info("serving metrics", "address", ln.Addr().String())
	return nil
}

func (a *Agent) healthRoutes(mux *http.ServeMux) {
	mux.HandleFunc("/healthz", a.healthz)
	mux.HandleFunc("/readyz", a.readyz)
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
}
