package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

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
	// version names it: the image's digest for an OCI module, else the
	// module's own; the config's value.
	version wasmstages.Version
}

// resolveStageModule resolves the module value of a Wasm stage to its
// bytes: an OCI reference (read as gadget values are: oci://..., or
// HOST/REPO:TAG; fetched beforehand by FetchImages into images), the name
// of a built-in stage (package stages), or a path to a .wasm file, taken
// from baseDir when relative. It is the one place that knows where modules
// come from.
func resolveStageModule(value, baseDir string, images *Images) (stageModule, error) {
	if IsImageReference(value) {
		img, err := images.stageImage(value)
		if err != nil {
			return stageModule{}, fmt.Errorf("stage module %q: %w", value, err)
		}
		return stageModule{bytes: img.Module, version: wasmstages.Version{Digest: img.Digest.String(), Ref: value}}, nil
	}
	if b, ok := stages.Builtin(value); ok {
		return stageModule{bytes: b, version: wasmstages.Version{Digest: wasmstages.ModuleDigest(b), Ref: value}}, nil
	}
	if !strings.ContainsAny(value, "/.") {
		hint := ""
		if s := closest(value, stages.Names()); s != "" {
			hint = fmt.Sprintf("; did you mean %q?", s)
		}
		return stageModule{}, fmt.Errorf("unknown stage module %q: not a built-in stage (%s), a path to a .wasm file, or an image reference (HOST/REPO:TAG or oci://...)%s",
			value, strings.Join(stages.Names(), ", "), hint)
	}
	path := value
	if !filepath.IsAbs(path) && baseDir != "" {
		path = filepath.Join(baseDir, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return stageModule{}, fmt.Errorf("read stage module %q: %w%s", value, err, referenceHint(value, err))
	}
	return stageModule{bytes: b, path: path, version: wasmstages.Version{Digest: wasmstages.ModuleDigest(b), Ref: path}}, nil
}

// StageModuleRefs returns the OCI module values of the config's Wasm
// stages, which FetchImages fetches.
func StageModuleRefs(f *config.File) []StageModuleRef {
	var refs []StageModuleRef
	for _, st := range f.Stages {
		if st.Wasm != nil && IsImageReference(st.Wasm.Module) {
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
		Name:         st.Name,
		Module:       m.path,
		Params:       w.Params,
		Timeout:      w.Timeout,
		MemoryLimit:  uint64(w.MemoryLimit),
		OnError:      st.OnError,
		Workers:      w.Workers,
		Tick:         w.Tick,
		Version:      m.version,
		StampVersion: w.StampVersion,
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
	case errors.Is(err, wasmstages.ErrNoTick):
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

// stagePlans plans the stages of pipeline p in their config order. A
// stage's fingerprint includes its dead-letter sink's: the stage holds
// that sink's value, so a new sink means a new stage.
func stagePlans(f *config.File, p *config.Pipeline, modules map[*config.Stage]stageModule, pl *plan) ([]*stagePlan, hcl.Diagnostics) {
	var out []*stagePlan
	var diags hcl.Diagnostics
	for _, ref := range p.Stages {
		st := f.Stage(ref)
		m, ok := modules[st]
		if st == nil || !ok {
			continue // reported by the config or resolveStages
		}
		sp := &stagePlan{name: st.Name, block: st, cfg: wasmConfig(st, m), digest: sha256Hex(m.bytes)}
		if _, err := pipeline.ParseErrorAction(st.OnError); err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid stage", Detail: err.Error(), Subject: rangePtr(st.OnErrorRange)})
			continue
		}
		var dlFP string
		if r := st.DeadLetter; r != nil {
			dl := f.Sink(*r)
			if dl == nil || pl.sink(dl.Name) == nil {
				continue // a dangling reference: reported by the config
			}
			sp.deadLetter = dl.Name
			dlFP = pl.sink(dl.Name).fp
		}
		sp.cfgFP = fingerprint(st, dlFP)
		sp.fp = fingerprint(sp.cfgFP, sp.digest)
		if m.path != "" {
			sp.moduleBytes = m.bytes
		}
		out = append(out, sp)
	}
	return out, diags
}

// openStage compiles (or loads from the cache) and initialises the stage
// of sp, writing failed batches to deadLetter when it has one.
func (a *Agent) openStage(ctx context.Context, sp *stagePlan, deadLetter pipeline.Sink) (*wasmstages.Stage, error) {
	cfg := sp.cfg
	cfg.Cache, cfg.Logger, cfg.Metrics = a.cache, a.log, a.metrics
	if f := a.followers.get(sp.name); f != nil {
		if v := f.overridden(); v != nil {
			// The control bucket names the stage's version: an instance a
			// reload builds starts on it, not on the config's.
			cfg.Module, cfg.ModuleBytes, cfg.Version = "", v.module, v.version
		}
	}
	if deadLetter != nil {
		cfg.DeadLetter = deadLetter
	}
	start := time.Now()
	s, err := wasmstages.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: start stage %q: %w", sp.block.Wasm.ModuleRange, sp.name, err)
	}
	a.log.Info("stage started", "stage", sp.name, "digest", s.Digest()[:12], "workers", cfg.Workers,
		"tick", s.TickInterval(), "took", time.Since(start).Round(time.Millisecond))
	return s, nil
}
