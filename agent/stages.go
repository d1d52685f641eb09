package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/stages"
	"github.com/sluice-dev/sluice/wasmstages"
)

// stageModule is a Wasm stage's module, resolved but not compiled.
type stageModule struct {
	bytes []byte
	// path is the file the module was read from, which the stage watches
	// for new versions; "" for built-in stages and images.
	path string
}

// ociPrefix marks a module value that names an OCI image.
const ociPrefix = "oci://"

// resolveStageModule resolves the module value of a Wasm stage to its
// bytes: the name of a built-in stage (package stages), an OCI reference
// (oci://..., fetched beforehand by FetchImages into images), or a path to
// a .wasm file, taken from baseDir when relative. It is the one place that
// knows where modules come from.
func resolveStageModule(value, baseDir string, images *Images) (stageModule, error) {
	if strings.HasPrefix(value, ociPrefix) {
		b, err := images.StageModule(value)
		if err != nil {
			return stageModule{}, fmt.Errorf("stage module %q: %w", value, err)
		}
		return stageModule{bytes: b}, nil
	}
	if b, ok := stages.Builtin(value); ok {
		return stageModule{bytes: b}, nil
	}
	if !strings.ContainsAny(value, "/.") {
		hint := ""
		if s := closest(value, stages.Names()); s != "" {
			hint = fmt.Sprintf("; did you mean %q?", s)
		}
		return stageModule{}, fmt.Errorf("unknown stage module %q: not a built-in stage (%s), a path to a .wasm file, or an %sREF%s",
			value, strings.Join(stages.Names(), ", "), ociPrefix, hint)
	}
	path := value
	if !filepath.IsAbs(path) && baseDir != "" {
		path = filepath.Join(baseDir, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return stageModule{}, fmt.Errorf("read stage module %q: %w", value, err)
	}
	return stageModule{bytes: b, path: path}, nil
}

// StageModuleRefs returns the OCI module values of the config's Wasm
// stages, which FetchImages fetches.
func StageModuleRefs(f *config.File) []StageModuleRef {
	var refs []StageModuleRef
	for _, st := range f.Stages {
		if st.Wasm != nil && strings.HasPrefix(st.Wasm.Module, ociPrefix) {
			refs = append(refs, StageModuleRef{Value: st.Wasm.Module, Range: st.Wasm.ModuleRange})
		}
	}
	return refs
}

// configDir is the directory relative paths in the config are taken from:
// the directory of the file the range is in; "" for the built-in config.
func configDir(r hcl.Range) string {
	if fn := r.Filename; fn != "" && !strings.HasPrefix(fn, "<") {
		return filepath.Dir(fn)
	}
	return ""
}

// resolveStages resolves the module of every Wasm stage of f.
func resolveStages(f *config.File, images *Images) (map[*config.Stage]stageModule, hcl.Diagnostics) {
	out := map[*config.Stage]stageModule{}
	var diags hcl.Diagnostics
	for _, st := range f.Stages {
		if st.Wasm == nil {
			continue
		}
		m, err := resolveStageModule(st.Wasm.Module, configDir(st.Wasm.ModuleRange), images)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown stage module", Detail: err.Error(), Subject: rangePtr(st.Wasm.ModuleRange)})
			continue
		}
		out[st] = m
	}
	return out, diags
}

// wasmConfig is the wasmstages.Config of a stage block, without the parts
// that belong to one pipeline (dead-letter sink) or to the running agent
// (cache, logger, metrics).
func wasmConfig(st *config.Stage, m stageModule) wasmstages.Config {
	w := st.Wasm
	cfg := wasmstages.Config{
		Name:        st.Name,
		Module:      m.path,
		Params:      w.Params,
		Timeout:     w.Timeout,
		MemoryLimit: uint64(w.MemoryLimit),
		OnError:     st.OnError,
		Workers:     w.Workers,
		Tick:        w.Tick,
		Grants: wasmstages.Grants{
			Env:    w.Grants.Env,
			Stdout: w.Grants.Stdout,
			Stderr: w.Grants.Stderr,
		},
	}
	if m.path == "" {
		cfg.ModuleBytes = m.bytes
	}
	for _, d := range w.Grants.Dirs {
		host := d.Host
		if !filepath.IsAbs(host) {
			host = filepath.Join(configDir(d.Range), host)
		}
		cfg.Grants.Dirs = append(cfg.Grants.Dirs, wasmstages.Dir{Host: host, Guest: d.Guest, Writable: d.Writable})
	}
	return cfg
}

// stageDiag turns a stage's load error into a diagnostic at the config
// value it concerns: params for a failing init, tick for a tick the module
// cannot honour, the module value otherwise.
func stageDiag(st *config.Stage, err error) *hcl.Diagnostic {
	d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid stage module", Detail: err.Error(), Subject: rangePtr(st.Wasm.ModuleRange)}
	switch {
	case errors.Is(err, wasmstages.ErrInit):
		d.Summary = "Stage rejected its params"
		d.Subject = rangePtr(st.Wasm.ParamsRange)
	case errors.Is(err, wasmstages.ErrABI):
		d.Summary = "Stage module does not implement the stage ABI"
	case st.Wasm.Tick > 0 && strings.Contains(err.Error(), "sluice_tick"):
		d.Summary = "Stage has no timer"
		d.Subject = rangePtr(st.Wasm.TickRange)
	}
	return d
}

// checkStages compiles every resolved Wasm stage of f, checks it against
// the stage ABI and runs its sluice_init with the config's params, without
// running anything else (see Check).
func checkStages(ctx context.Context, f *config.File, modules map[*config.Stage]stageModule, cache *wasmstages.Cache) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, st := range f.Stages {
		m, ok := modules[st]
		if !ok {
			continue
		}
		cfg := wasmConfig(st, m)
		cfg.Cache = cache
		if err := wasmstages.Check(ctx, cfg); err != nil {
			diags = append(diags, stageDiag(st, err))
		}
	}
	return diags
}

// openStageCache opens the compilation cache under data_dir, or one in
// memory when the directory cannot be made (an unprivileged user).
func openStageCache(f *config.File, log *slog.Logger) *wasmstages.Cache {
	dir := filepath.Join(f.Agent.DataDir, "wasm-cache")
	c, err := wasmstages.NewCache(dir)
	if err == nil {
		return c
	}
	log.Warn("cannot use the wasm compilation cache; compiling every start", "dir", dir, "error", err)
	c, _ = wasmstages.NewCache("") // in memory: cannot fail
	return c
}

// lazyStage is a pipeline's Wasm stage. New builds it from the config; the
// module is compiled and initialised by open, when the agent starts (New
// has no context, and compiling can take seconds).
type lazyStage struct {
	cfg        wasmstages.Config
	block      *config.Stage
	action     pipeline.ErrorAction
	deadLetter pipeline.Sink
	watch      bool
	poll       time.Duration

	stage *wasmstages.Stage // set by open
}

var (
	_ pipeline.Stage       = (*lazyStage)(nil)
	_ pipeline.ErrorPolicy = (*lazyStage)(nil)
	_ pipeline.Ticker      = (*lazyStage)(nil)
)

func newLazyStage(st *config.Stage, m stageModule, deadLetter pipeline.Sink) (*lazyStage, error) {
	action, err := pipeline.ParseErrorAction(st.OnError)
	if err != nil {
		return nil, err
	}
	l := &lazyStage{cfg: wasmConfig(st, m), block: st, action: action, deadLetter: deadLetter}
	l.cfg.DeadLetter = deadLetter
	l.watch = st.Wasm.Reload.Watch && m.path != ""
	l.poll = st.Wasm.Reload.Poll
	return l, nil
}

// open compiles (or loads from cache) and initialises the stage.
func (l *lazyStage) open(ctx context.Context, cache *wasmstages.Cache, log *slog.Logger, reg *pipeline.Registry) error {
	cfg := l.cfg
	cfg.Cache, cfg.Logger, cfg.Metrics = cache, log, reg
	s, err := wasmstages.New(ctx, cfg)
	if err != nil {
		return fmt.Errorf("%s: start stage %q: %w", l.block.Wasm.ModuleRange, l.block.Name, err)
	}
	l.stage = s
	return nil
}

func (l *lazyStage) Name() string { return l.block.Name }

func (l *lazyStage) OnError() (pipeline.ErrorAction, pipeline.Sink) { return l.action, l.deadLetter }

func (l *lazyStage) TickInterval() time.Duration {
	if l.stage == nil {
		return 0
	}
	return l.stage.TickInterval()
}

func (l *lazyStage) Process(ctx context.Context, in, out []pipeline.Event) ([]pipeline.Event, error) {
	if l.stage == nil {
		return out, errors.New("stage used before the agent started it")
	}
	return l.stage.Process(ctx, in, out)
}

func (l *lazyStage) Tick(ctx context.Context, now time.Time, out []pipeline.Event) ([]pipeline.Event, error) {
	if l.stage == nil {
		return out, nil
	}
	return l.stage.Tick(ctx, now, out)
}

func (l *lazyStage) Close(ctx context.Context) error {
	if l.stage == nil {
		return nil
	}
	return l.stage.Close(ctx)
}

// stagesOf builds the stages of pipeline p in their config order. The
// dead-letter sinks are the shared sinks of the agent.
func stagesOf(f *config.File, p *config.Pipeline, modules map[*config.Stage]stageModule, sinksByRef map[string]*sharedSink) ([]*lazyStage, hcl.Diagnostics) {
	var out []*lazyStage
	var diags hcl.Diagnostics
	for _, ref := range p.Stages {
		st := f.Stage(ref)
		m, ok := modules[st]
		if st == nil || !ok {
			continue // reported by the config or resolveStages
		}
		var dl pipeline.Sink
		if r := st.DeadLetter; r != nil {
			s := sinksByRef[r.String()]
			if s == nil {
				continue // a dangling reference: reported by the config
			}
			dl = s
		}
		l, err := newLazyStage(st, m, dl)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid stage", Detail: err.Error(), Subject: rangePtr(st.OnErrorRange)})
			continue
		}
		out = append(out, l)
	}
	return out, diags
}

// openStages starts every pipeline's Wasm stages, as many at once as there
// are CPUs (compiling is CPU-bound). On failure every stage started is
// closed again.
func (a *Agent) openStages(ctx context.Context) error {
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, l := range a.stages {
		g.Go(func() error {
			start := time.Now()
			if err := l.open(ctx, a.cache, a.log, a.metrics); err != nil {
				return err
			}
			a.log.Info("stage started", "stage", l.Name(), "digest", l.stage.Digest()[:12], "workers", l.cfg.Workers,
				"tick", l.stage.TickInterval(), "took", time.Since(start).Round(time.Millisecond))
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		a.closeStages(ctx)
		return err
	}
	return nil
}

// closeStages releases the stages when the agent fails before its
// pipelines run (pipelines close their stages themselves).
func (a *Agent) closeStages(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	for _, l := range a.stages {
		if err := l.Close(ctx); err != nil {
			a.log.Warn("close stage", "stage", l.Name(), "error", err)
		}
	}
}

func (a *Agent) closeCache(ctx context.Context) {
	if a.cache != nil {
		_ = a.cache.Close(context.WithoutCancel(ctx))
		a.cache = nil
	}
}
