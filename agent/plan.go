package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/hashicorp/hcl/v2"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/pipeline"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/sources"
	"github.com/sluice-dev/sluice/wasmstages"
)

// A plan is what New makes of a config: every component as a spec, plain
// values that nothing runs yet (the spec-before-live-object split of
// cilium/ebpf). Run creates the live objects from a plan; a reload builds
// a second plan and compares the two by each component's fingerprint, a
// digest of everything the component is built from (its config block
// without source positions, the bytes of its gadget or module, the files
// it reads), so that only what changed is rebuilt.
type plan struct {
	cfg       *config.File
	sources   []*sourcePlan // config order
	sinks     []*sinkPlan
	pipelines []*pipelinePlan
	// images is how the stage followers fetch versions: the config's image
	// policy and store.
	images *imageAccess
}

type sourcePlan struct {
	name    string
	block   *config.Source
	spec    *sources.GadgetSpec // a gadget's; nil for a wasm_bpf source
	params  map[string]string
	wasm    *gadgetWasm
	app     *wasmBPFPlan // a wasm_bpf source's application
	host    string
	digest  string // of the gadget's ELF, or of the application's module
	schemas []*pipeline.Schema
	fp      string
	// filter is how the source's filters run (workloads.go), hostFilter
	// its host-side part (nil: none).
	filter     *sourceFilter
	hostFilter *pipeline.FieldFilter
}

// kind is what runs in the source: the gadget's name, or the wasm-bpf
// application's.
func (sp *sourcePlan) kind() string {
	if sp.app != nil {
		return sp.app.cfg.App
	}
	return sp.spec.Name
}

// ref is the config value the source's gadget or module came from.
func (sp *sourcePlan) ref() string {
	if sp.app != nil {
		return sp.block.WasmBPF.Module
	}
	return sp.block.Gadget
}

type sinkPlan struct {
	name, kind string
	block      *config.Sink
	// open builds the live sink: the agent calls it when it starts (after
	// the embedded NATS server) or when a reload brings the sink in.
	open func(ctx context.Context, reg *pipeline.Registry, log *slog.Logger) (pipeline.Sink, error)
	fp   string
}

type stagePlan struct {
	name       string
	block      *config.Stage
	cfg        wasmstages.Config // without the agent's parts (cache, logger, metrics) and the dead-letter sink
	deadLetter string            // the dead-letter sink's name; "" for none
	digest     string            // of the module
	// moduleBytes is the module, kept for a stage whose module is a file:
	// a reload that finds only the file changed swaps it in place.
	moduleBytes []byte
	// cfgFP digests the stage's config and its dead-letter sink's (whose
	// value the stage holds); fp adds the module.
	cfgFP, fp string
}

type pipelinePlan struct {
	name    string
	block   *config.Pipeline
	sources []string
	stages  []*stagePlan
	sinks   []string
	spec    pipeline.Spec // settings only: no components, metrics or logger
	// hostFilters are the host-side filters of the pipeline's sources,
	// by source name, which its builtin.filter stage applies.
	hostFilters map[string]*pipeline.FieldFilter
}

func (p *plan) source(name string) *sourcePlan {
	for _, s := range p.sources {
		if s.name == name {
			return s
		}
	}
	return nil
}

func (p *plan) sink(name string) *sinkPlan {
	for _, s := range p.sinks {
		if s.name == name {
			return s
		}
	}
	return nil
}

func (p *plan) pipeline(name string) *pipelinePlan {
	for _, pp := range p.pipelines {
		if pp.name == name {
			return pp
		}
	}
	return nil
}

// buildPlan checks cfg as Validate does and turns it into a plan, touching
// nothing outside the process: gadgets are parsed and their decode plans
// built, stage modules read, sinks described. Problems come back as
// diagnostics pointing into the config.
func buildPlan(cfg *config.File, images *Images, stdout io.Writer, log *slog.Logger) (*plan, hcl.Diagnostics) {
	resolved, diags := resolveGadgets(cfg, images, log)
	apps, ds := resolveWasmBPF(cfg, images)
	diags = append(diags, ds...)
	modules, ds := resolveStages(cfg, images)
	diags = append(diags, ds...)
	diags = append(diags, validateGraph(cfg)...)
	diags = append(diags, validateControlSocket(cfg)...)
	diags = append(diags, validateNATSFiles(cfg)...)
	diags = append(diags, checkContainerRuntimes(cfg, resolved)...)
	if diags.HasErrors() {
		return nil, diags
	}
	pl := &plan{cfg: cfg}
	bySource := map[*config.Source]*sourcePlan{}
	for _, r := range resolved {
		sp := &sourcePlan{
			name: r.source.Name, block: r.source, spec: r.gadget.Spec(), params: r.params,
			wasm: r.wasm, host: cfg.Agent.Name, digest: r.digest, schemas: r.gadget.Schemas(),
			filter: r.filter, hostFilter: r.hostFilter,
		}
		var wasmDigest string
		if r.wasm != nil {
			wasmDigest = r.wasm.fingerprint()
		}
		// The self filter is the agent's setting and the agent's pid.
		sp.fp = fingerprint(r.source, r.params, r.digest, wasmDigest, cfg.Agent.Name, cfg.Agent.FilterSelf)
		bySource[r.source] = sp
	}
	for _, r := range apps {
		sp := &sourcePlan{name: r.source.Name, block: r.source, app: r.plan, host: cfg.Agent.Name, digest: r.digest, schemas: r.schemas}
		sp.fp = fingerprint(r.source, r.digest, cfg.Agent.Name, cfg.Agent.FilterSelf)
		bySource[r.source] = sp
	}
	for _, src := range cfg.Sources { // config order
		if sp := bySource[src]; sp != nil {
			pl.sources = append(pl.sources, sp)
		}
	}
	schemasBySink := sinkSchemas(cfg, func(src *config.Source) []*pipeline.Schema {
		if sp := pl.source(src.Name); sp != nil {
			return sp.schemas
		}
		return nil
	})
	if d := validateSinkSettings(cfg, schemasBySink); d.HasErrors() {
		return nil, append(diags, d...)
	}
	for _, s := range cfg.Sinks {
		sp, err := newSinkPlan(s, stdout, schemasBySink[s.Ref], cfg)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid sink", Detail: err.Error(), Subject: rangePtr(s.DefRange)})
			continue
		}
		pl.sinks = append(pl.sinks, sp)
	}
	for _, p := range cfg.Pipelines {
		policy, err := pipeline.ParsePolicy(p.Queue.WhenFull)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid queue policy", Detail: err.Error(), Subject: rangePtr(p.DefRange)})
			continue
		}
		pp := &pipelinePlan{name: p.Name, block: p, spec: pipeline.Spec{
			Name:         p.Name,
			Host:         cfg.Agent.Name,
			Queue:        pipeline.QueueConfig{MaxEvents: p.Queue.MaxEvents, MaxBytes: int(p.Queue.MaxBytes), Policy: policy},
			BatchSize:    p.Batch.MaxEvents,
			BatchDelay:   p.Batch.MaxDelay,
			LossInterval: cfg.Agent.LossReportInterval,
		}}
		for _, ref := range p.Sources {
			if src := cfg.Source(ref); src != nil && pl.source(src.Name) != nil {
				pp.sources = append(pp.sources, src.Name)
				if ff := pl.source(src.Name).hostFilter; ff != nil {
					if pp.hostFilters == nil {
						pp.hostFilters = map[string]*pipeline.FieldFilter{}
					}
					pp.hostFilters[src.Name] = ff
				}
			}
		}
		for _, ref := range p.Sinks {
			if s := cfg.Sink(ref); s != nil && pl.sink(s.Name) != nil {
				pp.sinks = append(pp.sinks, s.Name)
			}
		}
		stages, ds := stagePlans(cfg, p, modules, pl)
		diags = append(diags, ds...)
		pp.stages = stages
		if len(pp.sources) == 0 || len(pp.sinks) == 0 {
			// The config reports a pipeline without sources or sinks.
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid pipeline",
				Detail: fmt.Sprintf("pipeline %q needs at least one source and one sink", p.Name), Subject: rangePtr(p.DefRange)})
			continue
		}
		pl.pipelines = append(pl.pipelines, pp)
	}
	if diags.HasErrors() {
		return nil, diags
	}
	// Stage versions: files, OCI tags, the fleet's control bucket.
	pl.images, ds = newImageAccess(cfg, images)
	if diags = append(diags, ds...); diags.HasErrors() {
		return nil, diags
	}
	return pl, diags
}

// newSinkPlan describes the sink of block s; opening it is left to Run.
func newSinkPlan(s *config.Sink, stdout io.Writer, schemas []*pipeline.Schema, cfg *config.File) (*sinkPlan, error) {
	sp := &sinkPlan{name: s.Name, kind: s.Type, block: s}
	switch s.Type {
	case "stdout":
		keys, err := sinks.ParseSortKeys(s.Stdout.Sort)
		if err != nil {
			return nil, fmt.Errorf("stdout sink %q: %w", s.Name, err)
		}
		opts := sinks.StdoutOptions{Format: s.Stdout.Format, Schemas: schemas, Sort: keys, MaxRows: s.Stdout.MaxRows, Redraw: s.Stdout.Redraw, Fields: s.Stdout.Fields}
		// Settings the schemas decide (a sort key no output has) fail
		// here, in the plan, not when the agent starts.
		if _, err := sinks.NewStdout(s.Name, io.Discard, opts); err != nil {
			return nil, err
		}
		sp.open = func(context.Context, *pipeline.Registry, *slog.Logger) (pipeline.Sink, error) {
			return sinks.NewStdout(s.Name, stdout, opts)
		}
		// The schemas decide the table's columns.
		sp.fp = fingerprint(s, schemaNames(schemas))
	case "nats":
		opts := natsOptions(s, cfg)
		sp.open = func(ctx context.Context, reg *pipeline.Registry, log *slog.Logger) (pipeline.Sink, error) {
			o := opts
			o.Logger, o.Metrics = log, reg
			return sinks.NewNATS(ctx, s.Name, o)
		}
		// Credentials and certificates are read when the sink connects:
		// a reload after they were rotated reconnects with the new ones.
		n := s.NATS
		sp.fp = fingerprint(s, cfg.Agent.Name, cfg.Agent.DataDir,
			fileDigests(n.CredsFile, n.NKeySeedFile, n.CAFile, n.CertFile, n.KeyFile))
	case "file":
		opts := fileOptions(s.File, cfg.Agent.DataDir) // its path checked by validateSinkSettings
		sp.open = func(_ context.Context, reg *pipeline.Registry, log *slog.Logger) (pipeline.Sink, error) {
			o := opts
			o.Metrics, o.Logger = reg, log
			return sinks.NewFile(s.Name, o)
		}
		sp.fp = fingerprint(s, cfg.Agent.DataDir)
	case "null":
		sp.open = func(context.Context, *pipeline.Registry, *slog.Logger) (pipeline.Sink, error) {
			return sinks.NewNull(s.Name), nil
		}
		sp.fp = fingerprint(s)
	default:
		return nil, fmt.Errorf("sink type %q is not supported by this agent", s.Type)
	}
	return sp, nil
}

func schemaNames(schemas []*pipeline.Schema) []string {
	var out []string
	for _, sc := range schemas {
		out = append(out, sc.Gadget+"/"+sc.Type)
		for _, f := range sc.Fields {
			out = append(out, f.Name)
		}
	}
	return out
}

// fileDigests digests the content of the named files ("" skipped); a
// file that cannot be read digests as its error, so that it changes when
// the file appears.
func fileDigests(paths ...string) []string {
	var out []string
	for _, p := range paths {
		if p == "" {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			out = append(out, p+": "+err.Error())
			continue
		}
		out = append(out, p+": "+sha256Hex(b))
	}
	return out
}
