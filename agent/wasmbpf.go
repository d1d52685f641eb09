package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/hcl/v2"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/oci"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/wasmbpf"
	"github.com/sluice-dev/sluice/wasmstages"
)

// A wasm_bpf source runs a wasm-bpf application (docs/wasm-bpf.md): a Wasm
// module whose guest loads, attaches and polls its own eBPF objects
// through the wasm_bpf host interface; package wasmbpf runs it, and every
// record it polls becomes an event of the source.

// wasmBPFPlan is a wasm_bpf source's application, resolved but not
// compiled: its module and its config without the running agent's parts.
type wasmBPFPlan struct {
	cfg    wasmbpf.Config // without Cache, Logger, Metrics and Seq
	origin string         // the module's path or image reference, for logs
}

// resolvedApp is a wasm_bpf source resolved by resolveWasmBPF.
type resolvedApp struct {
	source  *config.Source
	plan    *wasmBPFPlan
	schemas []*pipeline.Schema
	digest  string // of the module
}

// resolveWasmBPF reads the module of every wasm_bpf source of f (a file
// relative to the config, or an image FetchImages fetched), checks that it
// is a wasm-bpf application and forecasts its events from the objects it
// embeds. Nothing is compiled; problems are diagnostics at the module
// value, and outputs whose records will not be decoded are warnings.
func resolveWasmBPF(f *config.File, images *Images) ([]*resolvedApp, hcl.Diagnostics) {
	var out []*resolvedApp
	var diags hcl.Diagnostics
	for _, src := range f.Sources {
		w := src.WasmBPF
		if src.Type != "wasm_bpf" || w == nil {
			continue
		}
		module, app, origin, err := resolveWasmBPFModule(w.Module, configDir(w.ModuleRange), images)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown wasm-bpf application", Detail: err.Error(), Subject: rangePtr(w.ModuleRange)})
			continue
		}
		if !wasmbpf.IsWasmBPF(module) {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Not a wasm-bpf application",
				Detail:  fmt.Sprintf("%s is not a wasm-bpf application: it imports nothing from the wasm_bpf host interface (a Wasm stage goes in a stage \"wasm\" block)", origin),
				Subject: rangePtr(w.ModuleRange)})
			continue
		}
		emit, err := wasmbpf.ParseEmit(w.Emit)
		if err != nil { // the config checked it
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid emit", Detail: err.Error(), Subject: rangePtr(w.EmitRange)})
			continue
		}
		cfg := wasmbpf.Config{
			Source: src.Name, App: app, Host: f.Agent.Name, Module: module, Args: w.Args, Emit: emit,
			EventType: w.EventType, BufferSize: int(w.BufferSize), MemoryLimit: uint64(w.MemoryLimit),
			StopGrace: w.StopGrace, Grants: wasmbpf.Grants{Env: w.Grants.Env},
		}
		for _, d := range w.Grants.Dirs {
			host := d.Host
			if !filepath.IsAbs(host) {
				host = filepath.Join(configDir(d.Range), host)
			}
			cfg.Grants.Dirs = append(cfg.Grants.Dirs, wasmbpf.Dir{Host: host, Guest: d.Guest, Writable: d.Writable})
		}
		in, err := wasmbpf.Inspect(cfg)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid wasm-bpf application", Detail: err.Error(), Subject: rangePtr(w.ModuleRange)})
			continue
		}
		for _, warn := range in.Warnings(emit) {
			subject := w.ModuleRange
			if w.EventType != "" {
				subject = w.EventTypeRange
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Records without events",
				Detail: warn + " (set event_type, or emit = \"stdout\" for the application's printed lines)", Subject: rangePtr(subject)})
		}
		out = append(out, &resolvedApp{source: src, plan: &wasmBPFPlan{cfg: cfg, origin: origin}, schemas: in.Schemas(emit), digest: sha256Hex(module)})
	}
	return out, diags
}

// resolveWasmBPFModule returns a module value's bytes, the application's
// name (the file's name without .wasm, or the image repository's last
// element) and where it came from.
func resolveWasmBPFModule(value, baseDir string, images *Images) (module []byte, app, origin string, err error) {
	if IsImageReference(value) {
		img, ok := images.WasmBPF(value)
		if !ok {
			return nil, "", "", fmt.Errorf("wasm-bpf image %q was not fetched: the agent fetches images before it starts (agent.FetchImages)", value)
		}
		ref, err := oci.ParseReference(value)
		if err != nil {
			return nil, "", "", err
		}
		return img.Module, ref.Repository[strings.LastIndex(ref.Repository, "/")+1:], "image " + img.Digest.String(), nil
	}
	path := value
	if !filepath.IsAbs(path) && baseDir != "" {
		path = filepath.Join(baseDir, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", "", fmt.Errorf("read wasm-bpf application %q: %w", value, err)
	}
	return b, strings.TrimSuffix(filepath.Base(path), ".wasm"), path, nil
}

// InspectApp forecasts the events of f's first wasm_bpf source (what
// `sluice run APP --help` shows); images holds its image when it is one.
func InspectApp(f *config.File, images *Images) (*wasmbpf.Inspection, hcl.Diagnostics) {
	apps, diags := resolveWasmBPF(f, images)
	if diags.HasErrors() || len(apps) == 0 {
		return nil, diags
	}
	in, err := wasmbpf.Inspect(apps[0].plan.cfg)
	if err != nil {
		return nil, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid wasm-bpf application", Detail: err.Error()})
	}
	return in, diags
}

// WasmBPFModuleRefs returns the OCI module values of the config's
// wasm_bpf sources, which FetchImages fetches.
func WasmBPFModuleRefs(f *config.File) []StageModuleRef {
	var refs []StageModuleRef
	for _, src := range f.Sources {
		if w := src.WasmBPF; w != nil && IsImageReference(w.Module) {
			refs = append(refs, StageModuleRef{Value: w.Module, Range: w.ModuleRange})
		}
	}
	return refs
}

// checkWasmBPF compiles every resolved application and checks it against
// the wasm_bpf host interface, without running it (see Check).
func checkWasmBPF(ctx context.Context, apps []*resolvedApp, cache *wasmstages.Cache) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, r := range apps {
		cfg := r.plan.cfg
		cfg.Cache = cache.CompilationCache()
		if err := wasmbpf.Check(ctx, cfg); err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid wasm-bpf application", Detail: err.Error(), Subject: rangePtr(r.source.WasmBPF.ModuleRange)})
		}
	}
	return diags
}

// openApp builds the application of sp (compiled, or loaded from the
// cache); it loads no eBPF: its guest does when the source runs.
func (a *Agent) openApp(ctx context.Context, sp *sourcePlan, seq *atomic.Uint64) (*sourceInstance, error) {
	cfg := sp.app.cfg
	cfg.Seq, cfg.Logger, cfg.Metrics = seq, a.log, a.metrics
	if a.cache != nil {
		cfg.Cache = a.cache.CompilationCache()
	}
	app, err := wasmbpf.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("start source %q: %w", sp.name, err)
	}
	a.log.Info("wasm-bpf application ready", "source", sp.name, "app", cfg.App, "module", sp.app.origin, "digest", app.Digest()[:12])
	return &sourceInstance{app: app}, nil
}
