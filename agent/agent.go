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
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/sources"
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
}

// Agent is a configured set of pipelines, ready to run once.
type Agent struct {
	cfg       *config.File
	log       *slog.Logger
	metrics   *pipeline.Registry
	gadgets   []*sources.Gadget
	pipelines []*pipeline.Pipeline
	sinks     []pipeline.Sink
	stages    []*lazyStage // every pipeline's Wasm stages; started by Run
	// gadgetModules are the gadgets' embedded Wasm modules (gadgetwasm.go).
	gadgetModules map[*sources.Gadget]*gadgetSource
	// cache holds the compiled code of the stages and the gadget modules;
	// Run opens it when there are any.
	cache *wasmstages.Cache
}

// New validates cfg and builds the agent's components without touching the
// kernel. Config problems come back as diagnostics pointing into the config.
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
	resolved, diags := resolveGadgets(cfg, opts.Images, log)
	modules, ds := resolveStages(cfg, opts.Images)
	diags = append(diags, ds...)
	diags = append(diags, validateGraph(cfg)...)
	if diags.HasErrors() {
		return nil, diags
	}
	a := &Agent{cfg: cfg, log: log, metrics: reg}

	gadgetsBySource := map[*config.Source]*sources.Gadget{}
	for _, r := range resolved {
		gadgetsBySource[r.source] = r.gadget
		a.gadgets = append(a.gadgets, r.gadget)
		if r.wasm != nil {
			a.addGadgetModule(r.gadget, r.wasm)
		}
	}

	schemasBySink := sinkSchemas(cfg, func(src *config.Source) []*pipeline.Schema {
		if g := gadgetsBySource[src]; g != nil {
			return g.Schemas()
		}
		return nil
	})
	if d := validateSinkSettings(cfg, schemasBySink); d.HasErrors() {
		return nil, append(diags, d...)
	}
	sinksByRef := map[string]*sharedSink{}
	for _, s := range cfg.Sinks {
		sink, err := newSink(s, stdout, schemasBySink[s.Ref], cfg, reg, log)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid sink", Detail: err.Error(), Subject: rangePtr(s.DefRange)})
			continue
		}
		sinksByRef[s.Ref] = &sharedSink{Sink: sink}
		a.sinks = append(a.sinks, sink)
	}
	if diags.HasErrors() {
		return nil, diags
	}

	for _, p := range cfg.Pipelines {
		policy, err := pipeline.ParsePolicy(p.Queue.WhenFull)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid queue policy", Detail: err.Error(), Subject: rangePtr(p.DefRange)})
			continue
		}
		spec := pipeline.Spec{
			Name:         p.Name,
			Host:         cfg.Agent.Name,
			Queue:        pipeline.QueueConfig{MaxEvents: p.Queue.MaxEvents, MaxBytes: int(p.Queue.MaxBytes), Policy: policy},
			BatchSize:    p.Batch.MaxEvents,
			BatchDelay:   p.Batch.MaxDelay,
			LossInterval: cfg.Agent.LossReportInterval,
			Metrics:      reg,
			Logger:       log.With("pipeline", p.Name),
		}
		for _, ref := range p.Sources {
			src := cfg.Source(ref)
			if g := gadgetsBySource[src]; g != nil {
				spec.Sources = append(spec.Sources, a.pipelineSource(g))
			}
		}
		// The pipeline closes each sink it writes to once, whether as a sink
		// or a stage's dead-letter sink: it is one of the sink's users.
		users := map[*sharedSink]bool{}
		for _, ref := range p.Sinks {
			if s := sinksByRef[ref.String()]; s != nil {
				users[s] = true
				spec.Sinks = append(spec.Sinks, s)
			}
		}
		pstages, ds := stagesOf(cfg, p, modules, sinksByRef)
		diags = append(diags, ds...)
		for _, st := range pstages {
			spec.Stages = append(spec.Stages, st)
			if dl, ok := st.deadLetter.(*sharedSink); ok {
				users[dl] = true
			}
		}
		for s := range users {
			s.users++
		}
		a.stages = append(a.stages, pstages...)
		pl, err := pipeline.New(spec)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid pipeline", Detail: err.Error(), Subject: rangePtr(p.DefRange)})
			continue
		}
		a.pipelines = append(a.pipelines, pl)
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return a, diags
}

// Metrics returns the agent's metrics registry.
func (a *Agent) Metrics() *pipeline.Registry { return a.metrics }

// Gadgets returns the agent's gadget sources.
func (a *Agent) Gadgets() []*sources.Gadget { return a.gadgets }

// Run loads and attaches every gadget, serves metrics when configured, and
// runs the pipelines until ctx is cancelled. Shutdown then detaches the
// programs, drains the queues and flushes the sinks within the configured
// grace period. It returns nil after a clean shutdown.
func (a *Agent) Run(ctx context.Context) error {
	// One compilation cache for the stages and the gadget modules.
	if len(a.stages) > 0 || len(a.gadgetModules) > 0 {
		a.cache = openStageCache(a.cfg, a.log)
	}
	defer a.closeCache(ctx)
	// The stages compile (or load from the cache) while the sinks and
	// gadgets start: they touch nothing outside the process, and a large
	// module takes as long as loading the gadgets. Every return below waits
	// for them (Wait may be called again; it returns the same error).
	var stagesStarted errgroup.Group
	stagesStarted.Go(func() error { return a.openStages(ctx) })
	// failStart undoes the stages when a later step fails.
	failStart := func(err error) error {
		if stagesStarted.Wait() == nil {
			a.closeStages(ctx)
		}
		return err
	}
	if ns := a.cfg.Agent.NATSServer; ns != nil {
		srv, err := startNATSServer(ns, a.log)
		if err != nil {
			return failStart(err)
		}
		// Deferred first, so it runs last: after the sinks have flushed.
		defer srv.Shutdown()
		a.log.Info("embedded nats server started", "listen", ns.Listen, "jetstream", ns.JetStream)
	}
	for _, s := range a.sinks {
		if o, ok := s.(openableSink); ok {
			if err := o.Open(ctx); err != nil {
				a.closeSinks(ctx)
				return failStart(fmt.Errorf("start sink %q: %w", s.Name(), err))
			}
		}
	}
	defer a.closeGadgetModules(ctx)
	for _, g := range a.gadgets {
		// A gadget's module initialises before the gadget loads (it may
		// set its parameters) and starts once it is attached.
		err := a.initGadgetModule(ctx, g)
		if err == nil {
			err = g.Open()
		}
		if err == nil {
			err = a.startGadgetModule(ctx, g)
		}
		if err != nil {
			a.closeGadgets()
			a.closeSinks(ctx)
			return failStart(fmt.Errorf("start source %q: %w", g.Name(), err))
		}
		a.log.Info("gadget loaded", "source", g.Name(), "gadget", g.Spec().Name, "streams", len(g.Spec().Streams), "skipped_programs", g.SkippedPrograms())
	}
	if err := stagesStarted.Wait(); err != nil {
		a.closeGadgets()
		a.closeSinks(ctx)
		return err
	}
	defer a.closeGadgets()

	var metricsSrv errgroup.Group
	if addr := a.cfg.Agent.MetricsListen; addr != "" {
		srv, ln, err := a.metricsServer(addr)
		if err != nil {
			a.closeSinks(ctx)
			a.closeStages(ctx)
			return err
		}
		metricsSrv.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve metrics: %w", err)
			}
			return nil
		})
		defer func() {
			// Keep /metrics up until the pipelines have drained, so the
			// final counts can be scraped during shutdown.
			shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			defer cancel()
			srv.Shutdown(shutdownCtx)
			if err := metricsSrv.Wait(); err != nil {
				a.log.Warn("metrics server", "error", err)
			}
		}()
		a.log.Info("serving metrics", "address", ln.Addr().String())
	}
	// Stages whose module is a file swap in its new versions until the
	// pipelines stop.
	watchCtx, stopWatching := context.WithCancel(ctx)
	var watchers errgroup.Group
	for _, l := range a.stages {
		if l.watch {
			watchers.Go(func() error { return l.stage.WatchFile(watchCtx, l.poll) })
		}
	}
	grace := a.cfg.Agent.ShutdownGrace
	var pipelineErrs []error
	var mu sync.Mutex
	var pipes errgroup.Group
	for _, p := range a.pipelines {
		pipes.Go(func() error {
			if err := p.Run(ctx, grace); err != nil {
				mu.Lock()
				pipelineErrs = append(pipelineErrs, err)
				mu.Unlock()
			}
			return nil
		})
	}
	pipes.Wait()
	stopWatching()
	_ = watchers.Wait() // WatchFile returns nil once its context ends
	a.log.Info("pipelines stopped")
	return errors.Join(pipelineErrs...)
}

// closeSinks releases sinks when the agent fails before its pipelines run
// (pipelines close their sinks themselves).
func (a *Agent) closeSinks(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	for _, s := range a.sinks {
		if err := s.Close(ctx); err != nil {
			a.log.Warn("close sink", "sink", s.Name(), "error", err)
		}
	}
}

func (a *Agent) closeGadgets() {
	for _, g := range a.gadgets {
		if err := g.Close(); err != nil {
			a.log.Warn("close gadget", "source", g.Name(), "error", err)
		}
	}
}

func (a *Agent) metricsServer(addr string) (*http.Server, net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", a.metrics.Handler())
	mux.HandleFunc("/healthz", a.serveHealth)
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln, nil
}

// sharedSink lets several pipelines write to one sink; the sink closes when
// the last pipeline closes it.
type sharedSink struct {
	pipeline.Sink
	mu     sync.Mutex
	users  int
	closed int
}

func (s *sharedSink) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed++
	last := s.closed == s.users
	s.mu.Unlock()
	if !last {
		return nil
	}
	return s.Sink.Close(ctx)
}
