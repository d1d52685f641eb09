package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/pipeline"
)

// LoadFunc reads the config again for a reload.
type LoadFunc func(ctx context.Context) (Loaded, hcl.Diagnostics)

// Loaded is a config a LoadFunc read.
type Loaded struct {
	File   *config.File
	Images *Images
	// Parser holds the file's source, to render diagnostics with
	// snippets; nil renders them without.
	Parser *config.Parser
}

// LoadFile is the LoadFunc of a config file (the built-in default when
// path is ""), fetching the images it references as fetch says.
func LoadFile(path string, fetch FetchOptions) LoadFunc {
	return func(ctx context.Context) (Loaded, hcl.Diagnostics) {
		p := config.NewParser()
		var f *config.File
		var diags hcl.Diagnostics
		if path == "" {
			f, diags = p.ParseDefault()
		} else {
			f, diags = p.ParseFile(path)
		}
		l := Loaded{File: f, Parser: p}
		if diags.HasErrors() {
			return l, diags
		}
		images, ds := FetchImages(ctx, f, fetch)
		l.Images = images
		return l, append(diags, ds...)
	}
}

// ReloadResult is what a reload did, as `sluice ctl reload` shows it.
type ReloadResult struct {
	Time time.Time `json:"time"`
	// OK is false when the new config was refused: nothing changed.
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Diagnostics are the new config's, errors and warnings; Rendered is
	// them as text with file:line:col and snippets, as logged.
	Diagnostics []Diagnostic `json:"diagnostics,omitempty"`
	Rendered    string       `json:"rendered,omitempty"`
	Changes     []Change     `json:"changes,omitempty"`
	TookMS      int64        `json:"took_ms"`
}

// Diagnostic is an hcl.Diagnostic as plain data.
type Diagnostic struct {
	Severity string `json:"severity"` // error, warning
	Summary  string `json:"summary"`
	Detail   string `json:"detail,omitempty"`
	File     string `json:"file,omitempty"`
	Line     int    `json:"line,omitempty"`
	Column   int    `json:"column,omitempty"`
}

// Change is what a reload did to one component.
type Change struct {
	Kind     string `json:"kind"` // pipeline, source, stage, sink
	Name     string `json:"name"`
	Pipeline string `json:"pipeline,omitempty"`
	// Action is added, removed, replaced (built beside the old one and
	// swapped in) or module (a stage's module file swapped in place).
	Action string `json:"action"`
}

// ErrNoReload is returned by Reload when the agent cannot reload: it was
// built without Options.Load, or it is not running.
var ErrNoReload = errors.New("the agent cannot reload")

type reloadRequest struct {
	ctx  context.Context
	done chan *ReloadResult
}

// Reload re-reads the config and applies it to the running agent (see the
// package documentation); it waits for a reload in progress first. The
// result says what changed, or why nothing did. Safe for concurrent use.
func (a *Agent) Reload(ctx context.Context) (*ReloadResult, error) {
	if a.opts.Load == nil {
		return nil, fmt.Errorf("reload: %w: it was started without a config file to read again", ErrNoReload)
	}
	req := &reloadRequest{ctx: ctx, done: make(chan *ReloadResult, 1)}
	select {
	case a.reloads <- req:
	case <-ctx.Done():
		return nil, fmt.Errorf("reload: %w", ctx.Err())
	}
	return <-req.done, nil
}

// LastReload returns the result of the last reload, nil before the first.
func (a *Agent) LastReload() *ReloadResult {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastReload
}

// reload runs on Run's loop. It prepares every new or changed component
// beside the running ones; if any fails, it releases what it prepared and
// nothing changed. Then it updates the pipelines in place.
func (a *Agent) reload(runCtx, ctx context.Context, pipeDone chan *livePipeline) *ReloadResult {
	start := time.Now()
	res := &ReloadResult{Time: start}
	defer func() {
		res.TookMS = time.Since(start).Milliseconds()
		a.mu.Lock()
		a.lastReload = res
		a.mu.Unlock()
	}()
	a.log.Info("reloading the config")
	loaded, diags := a.opts.Load(ctx)
	var pl *plan
	if !diags.HasErrors() {
		var ds hcl.Diagnostics
		pl, ds = buildPlan(loaded.File, loaded.Images, a.stdout, a.log)
		diags = append(diags, ds...)
	}
	if !diags.HasErrors() {
		diags = append(diags, a.restartOnly(loaded.File)...)
	}
	res.Diagnostics, res.Rendered = plainDiagnostics(loaded.Parser, diags)
	for _, d := range res.Diagnostics {
		level := slog.LevelWarn
		if d.Severity == "error" {
			level = slog.LevelError
		}
		a.log.Log(ctx, level, "reload: "+d.Summary, "at", fmt.Sprintf("%s:%d:%d", d.File, d.Line, d.Column), "detail", d.Detail)
	}
	if diags.HasErrors() {
		res.Error = "the new config has errors; nothing changed"
		a.log.Error("reload refused: the new config has errors; nothing changed", "errors", len(diags.Errs()))
		return res
	}
	changes, err := a.apply(runCtx, ctx, pl, pipeDone)
	res.Changes = changes
	if err != nil {
		res.Error = err.Error()
		a.log.Error("reload failed", "error", err)
		return res
	}
	res.OK = true
	a.log.Info("config reloaded", "changes", len(changes), "took", time.Since(start).Round(time.Millisecond))
	return res
}

// restartOnly warns about settings a running agent cannot change.
func (a *Agent) restartOnly(f *config.File) hcl.Diagnostics {
	old := a.plan.cfg.Agent
	nw := f.Agent
	var diags hcl.Diagnostics
	warn := func(what string, changed bool, r hcl.Range) {
		if changed {
			if r.Filename == "" {
				r = nw.DefRange
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Setting needs a restart",
				Detail:  fmt.Sprintf("The running agent keeps its %s; the new value takes effect when the agent restarts. Everything else was reloaded.", what),
				Subject: rangePtr(r)})
		}
	}
	warn("data_dir", old.DataDir != nw.DataDir, hcl.Range{})
	warn("metrics_listen", old.MetricsListen != nw.MetricsListen, hcl.Range{})
	warn("control_socket", old.ControlSocket != nw.ControlSocket, nw.ControlSocketRange)
	warn("log_level and log_format", old.LogLevel != nw.LogLevel || old.LogFormat != nw.LogFormat, hcl.Range{})
	warn("shutdown_grace", old.ShutdownGrace != nw.ShutdownGrace, hcl.Range{})
	warn("nats_server", fingerprint(old.NATSServer) != fingerprint(nw.NATSServer), hcl.Range{})
	warn("control connection and group", fingerprint(old.Control) != fingerprint(nw.Control) || old.Group != nw.Group, hcl.Range{})
	return diags
}

// plainDiagnostics turns diags into data and text, with snippets when p
// holds the file.
func plainDiagnostics(p *config.Parser, diags hcl.Diagnostics) ([]Diagnostic, string) {
	var out []Diagnostic
	for _, d := range diags {
		pd := Diagnostic{Severity: "error", Summary: d.Summary, Detail: d.Detail}
		if d.Severity == hcl.DiagWarning {
			pd.Severity = "warning"
		}
		if d.Subject != nil {
			pd.File, pd.Line, pd.Column = d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column
		}
		out = append(out, pd)
	}
	if len(diags) == 0 {
		return nil, ""
	}
	if p == nil {
		p = config.NewParser()
	}
	var buf bytes.Buffer
	p.WriteDiagnostics(&buf, diags, false)
	return out, buf.String()
}

// prepared is what a reload built beside the running components.
type prepared struct {
	sinks   map[string]*sharedSink // every sink of the new plan: kept or new
	opened  []*sharedSink          // the new ones
	stages  map[*stagePlan]*liveStage
	built   []*liveStage // the new ones
	sources map[string]*liveSource
	loaded  []*liveSource // the new ones
	swaps   map[*liveStage][]byte
	changes []Change
}

// release undoes a prepare that is not applied.
func (pr *prepared) release(ctx context.Context) {
	for _, ls := range pr.loaded {
		ls.close(ctx)
	}
	for _, ls := range pr.built {
		ls.close(ctx)
	}
	for _, s := range pr.opened {
		s.releaseAgent(ctx)
	}
}

// prepare builds and starts the new and changed components of pl beside
// the running ones: nothing running is touched.
func (a *Agent) prepare(ctx context.Context, pl *plan) (*prepared, error) {
	a.ensureCache(pl)
	pr := &prepared{sinks: map[string]*sharedSink{}, stages: map[*stagePlan]*liveStage{}, sources: map[string]*liveSource{}, swaps: map[*liveStage][]byte{}}
	for _, sp := range pl.sinks {
		old := a.sinks[sp.name]
		if old != nil && old.plan.fp == sp.fp {
			pr.sinks[sp.name] = old
			continue
		}
		s, err := a.openReplacement(ctx, pl.cfg, sp, old)
		if err != nil {
			pr.release(ctx)
			return nil, fmt.Errorf("start %w", err) // the sink names itself: "nats sink \"bus\": ..."
		}
		sh := newSharedSink(s, sp)
		pr.sinks[sp.name] = sh
		pr.opened = append(pr.opened, sh)
		pr.changes = append(pr.changes, Change{Kind: "sink", Name: sp.name, Action: changeAction(old != nil)})
	}
	for _, pp := range pl.pipelines {
		oldLP := a.pipelines[pp.name]
		for _, sp := range pp.stages {
			var old *liveStage
			if oldLP != nil {
				if i := slices.IndexFunc(oldLP.stages, func(ls *liveStage) bool { return ls.plan.name == sp.name }); i >= 0 {
					old = oldLP.stages[i]
				}
			}
			switch {
			case old != nil && old.plan.fp == sp.fp:
				pr.stages[sp] = old
				continue
			case old != nil && old.plan.cfgFP == sp.cfgFP && (sp.cfg.Module != "" || a.followers.get(sp.name) != nil):
				// Only the module changed (a file's content, the digest a
				// tag names): the stage's follower swaps it in place, as it
				// would at its next poll.
				pr.stages[sp] = old
				pr.swaps[old] = planVersion(sp).module
				pr.changes = append(pr.changes, Change{Kind: "stage", Name: sp.name, Pipeline: pp.name, Action: "module"})
				continue
			}
			ls, err := a.newLiveStage(ctx, sp, pr.sinks)
			if err != nil {
				pr.release(ctx)
				return nil, err
			}
			pr.stages[sp] = ls
			pr.built = append(pr.built, ls)
			pr.changes = append(pr.changes, Change{Kind: "stage", Name: sp.name, Pipeline: pp.name, Action: changeAction(old != nil)})
		}
		for _, name := range pp.sources {
			sp := pl.source(name)
			old := a.sources[name]
			if old != nil && old.plan.fp == sp.fp && oldLP != nil && slices.Contains(oldLP.plan.sources, name) {
				pr.sources[name] = old
				continue
			}
			// Loaded beside the old one, which stops once the pipeline
			// runs the new one: events may come twice meanwhile, never
			// not at all, and the numbers go on.
			seq := a.seqOf(name)
			si, err := a.openSource(ctx, sp, seq)
			if err != nil {
				pr.release(ctx)
				return nil, err
			}
			ls := a.newLiveSource(sp, si, seq)
			pr.sources[name] = ls
			pr.loaded = append(pr.loaded, ls)
			pr.changes = append(pr.changes, Change{Kind: "source", Name: name, Pipeline: pp.name, Action: changeAction(old != nil)})
		}
	}
	return pr, nil
}

func changeAction(replaced bool) string {
	if replaced {
		return "replaced"
	}
	return "added"
}

// openReplacement opens the sink of sp. A NATS sink with a spool that
// replaces a running one waits for it to close before it opens (the two
// must not share the spool): see handoffSink.
func (a *Agent) openReplacement(ctx context.Context, cfg *config.File, sp *sinkPlan, old *sharedSink) (pipeline.Sink, error) {
	if old != nil && sp.block.NATS != nil && sp.block.NATS.Spool.Enabled && old.plan.block.NATS != nil && old.plan.block.NATS.Spool.Enabled {
		opts := natsOptions(sp.block, cfg)
		return &handoffSink{name: sp.name, after: old.gone, batch: opts.WriteBatch,
			open: func(ctx context.Context) (pipeline.Sink, error) { return sp.open(ctx, a.metrics, a.log) }}, nil
	}
	return sp.open(ctx, a.metrics, a.log)
}

// apply prepares pl and, when that worked, switches the running agent to
// it: pipelines are updated in place (see pipeline.Update), new ones
// started, removed ones drained and stopped.
func (a *Agent) apply(runCtx, ctx context.Context, pl *plan, pipeDone chan *livePipeline) ([]Change, error) {
	pr, err := a.prepare(ctx, pl)
	if err != nil {
		return nil, fmt.Errorf("%w; nothing changed", err)
	}
	changes := pr.changes
	// An update is bounded by the grace period: what removed components
	// hold and cannot hand on within it is dropped, counted.
	grace := a.plan.cfg.Agent.ShutdownGrace
	var errs []error
	// The stages' followers get the new config first: a changed module
	// file is theirs to swap in (unless the control bucket names another
	// version), and the reload waits for them. A reload is an operator
	// asking: each stage looks at its desired version at once (an
	// immediate tag check) and retries a version it refused.
	for _, pp := range pl.pipelines {
		for _, sp := range pp.stages {
			if f := a.followers.get(sp.name); f != nil {
				f.configure(sp, pl.images)
				f.CheckNow(true)
			}
		}
	}
	for ls, module := range pr.swaps {
		f := a.followers.get(ls.plan.name)
		switch {
		case f != nil && ls.plan.cfg.Module != "":
			f.checkWait(ctx) // a file: the reload reports it swapped
		case f != nil:
			f.CheckNow(false) // a tag: its registry is asked without holding the reload up
		default:
			if err := ls.stage.Swap(ctx, module); err != nil {
				errs = append(errs, fmt.Errorf("swap the module of stage %q: %w", ls.plan.name, err))
			}
		}
		ls.plan.digest = sha256Hex(module)
	}
	var added []*livePipeline
	for _, pp := range pl.pipelines {
		old := a.pipelines[pp.name]
		if old == nil {
			lp, err := a.newLivePipeline(pp, pr.sources, pr.stages, pr.sinks)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			added = append(added, lp)
			changes = append(changes, Change{Kind: "pipeline", Name: pp.name, Action: "added"})
			continue
		}
		spec := a.pipelineSpec(pp)
		var stages []*liveStage
		for _, name := range pp.sources {
			spec.Sources = append(spec.Sources, pr.sources[name])
		}
		spec.Stages = a.containers.headStages(pp, a.metrics)
		for _, sp := range pp.stages {
			ls := pr.stages[sp]
			stages = append(stages, ls)
			spec.Stages = append(spec.Stages, ls.stage)
		}
		for _, name := range pp.sinks {
			spec.Sinks = append(spec.Sinks, pr.sinks[name])
		}
		sinks := pipelineSinks(pp, pr.sinks)
		// The pipeline closes (releases) the sinks it stops using; it
		// takes a reference to those it starts using.
		for _, s := range sinks {
			if !slices.Contains(old.sinks, s) {
				s.acquire()
			}
		}
		for _, ls := range stages {
			if !slices.Contains(old.stages, ls) {
				ls.taken.Store(true)
			}
		}
		for _, name := range pp.sources {
			pr.sources[name].taken.Store(true)
		}
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
		err := old.p.Update(uctx, spec)
		cancel()
		if errors.Is(err, pipeline.ErrStopped) {
			// The pipeline ended on its own meanwhile: what was meant for
			// it is released here, not by it.
			for _, s := range sinks {
				if !slices.Contains(old.sinks, s) {
					_ = s.Close(ctx)
				}
			}
			for _, ls := range stages {
				if !slices.Contains(old.stages, ls) {
					ls.taken.Store(false)
					ls.close(ctx)
				}
			}
			for _, name := range pp.sources {
				if ls := pr.sources[name]; ls != a.sources[name] {
					ls.taken.Store(false)
					ls.close(ctx)
				}
			}
			errs = append(errs, err)
			continue
		}
		if err != nil {
			errs = append(errs, err)
		}
		for _, name := range old.plan.sources {
			if !slices.Contains(pp.sources, name) || pr.sources[name] != a.sources[name] {
				if pl.source(name) == nil {
					a.health.forget("source", name)
				}
			}
		}
		a.mu.Lock()
		old.plan, old.stages, old.sinks = pp, stages, sinks
		a.mu.Unlock()
	}
	for _, lp := range a.pipelinesNotIn(pl) {
		a.health.set("pipeline", lp.plan.name, stateStopping, "")
		lp.cancel()
		<-lp.done
		a.mu.Lock()
		delete(a.pipelines, lp.plan.name)
		a.mu.Unlock()
		for _, name := range lp.plan.sources {
			if pl.source(name) == nil {
				a.health.forget("source", name)
			}
		}
		a.health.forget("pipeline", lp.plan.name)
		changes = append(changes, Change{Kind: "pipeline", Name: lp.plan.name, Action: "removed"})
	}
	a.mu.Lock()
	a.plan, a.sinks, a.sources = pl, pr.sinks, pr.sources
	a.mu.Unlock()
	applyMemorySettings(pl.cfg.Agent, a.log)
	for _, lp := range added {
		a.startPipeline(runCtx, lp, pipeDone)
	}
	a.followers.sync(pl)
	for _, s := range pr.opened {
		s.releaseAgent(ctx)
	}
	return changes, errors.Join(errs...)
}

// pipelinesNotIn lists the running pipelines pl does not have.
func (a *Agent) pipelinesNotIn(pl *plan) []*livePipeline {
	var out []*livePipeline
	for name, lp := range a.pipelines {
		if pl.pipeline(name) == nil {
			out = append(out, lp)
		}
	}
	return out
}
